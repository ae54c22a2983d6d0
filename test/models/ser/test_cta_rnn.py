"""CTA-RNN on a tiny frozen ENT encoder."""

import pytest
import torch

from ent.models.ser import ser_model_class
from ent.models.ser.cta_rnn import CTARNN
from ser_checks import batch, check_gradients, check_overfits, check_padding_invariance
from tiny_ent_experiment import EMOTIONS


def build(ent_dir, **kw) -> CTARNN:
    torch.manual_seed(0)
    conf = dict(layers=[1, 2, 3], rnn_hidden=16, attention_size=16, channel_reduction=4, dropout=0.1)
    conf.update(kw)
    return CTARNN(EMOTIONS, ent_dir=str(ent_dir), **conf)


def test_registered() -> None:
    assert ser_model_class("cta_rnn") is CTARNN


def test_forward_backward_reach_only_the_trainable_parameters(ent_dir) -> None:
    model = build(ent_dir)
    check_gradients(model, model.asr_encoder)


def test_padding_invariance(ent_dir) -> None:
    check_padding_invariance(build(ent_dir))


def test_attention_weights_sum_to_one(ent_dir) -> None:
    model = build(ent_dir).eval()
    b = batch()
    with torch.no_grad():
        _, att = model.forward_with_attention(b["speech"], b["speech_lengths"])
        _, lens = model.asr_encoder(b["speech"], b["speech_lengths"])
    assert att["channel"].shape == (3, 3, 32)
    torch.testing.assert_close(att["channel"].sum(1), torch.ones(3, 32))
    torch.testing.assert_close(att["temporal"].sum(1), torch.ones(3))
    for i, n in enumerate(lens.tolist()):  # nothing on padding frames
        assert float(att["temporal"][i, n:].abs().sum()) == 0.0


def test_layers_are_checked(ent_dir) -> None:
    with pytest.raises(ValueError, match="out of range"):
        build(ent_dir, layers=[0, 1])


@pytest.mark.slow
def test_overfits_a_few_utterances(ent_dir) -> None:
    check_overfits(build(ent_dir, dropout=0.0), steps=200)
