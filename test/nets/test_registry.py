"""Tests of the config-name registry of the network building blocks."""

import pytest

from ent.nets.encoder import ConformerEncoder
from ent.nets.predictor import RNNPredictor, StatelessPredictor
from ent.nets.registry import available, build


def test_builds_each_registered_class() -> None:
    encoder = build(
        "encoder", "conformer", input_size=20, num_blocks=1, hidden_size=16,
        linear_size=32, heads=2, conv_mod_kernel_size=3,
    )
    assert isinstance(encoder, ConformerEncoder) and encoder.output_size() == 16
    rnn = build(
        "predictor", "rnn", vocab_size=9, embed_dim=4, hidden_dim=6, num_layers=1, dropout=0.0
    )
    assert isinstance(rnn, RNNPredictor) and rnn.output_size() == 6
    stateless = build("predictor", "stateless", vocab_size=9, embed_dim=4, context_size=2)
    assert isinstance(stateless, StatelessPredictor) and stateless.output_size() == 4


def test_available_names() -> None:
    assert available("encoder") == ["conformer"]
    assert available("predictor") == ["rnn", "stateless"]


def test_unknown_names_and_keys_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="predictor 'lstm'; valid predictor names: rnn, stateless"):
        build("predictor", "lstm", vocab_size=9)
    with pytest.raises(ValueError, match="valid kinds: encoder, predictor"):
        build("decoder", "rnn")
    expected = r"'rnn' config key\(s\) hidden_size; valid keys: vocab_size"
    with pytest.raises(ValueError, match=expected):
        build("predictor", "rnn", vocab_size=9, hidden_size=4)
    with pytest.raises(ValueError, match="unknown network kind"):
        available("joint")
