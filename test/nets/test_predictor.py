"""Tests of the prediction networks: step == batched, padding ids, beam-search state helpers."""

from typing import Callable

import pytest
import torch

from ent.nets.predictor import Predictor, RNNPredictor, StatelessPredictor

VOCAB = 11

FACTORIES = {
    "rnn": lambda: RNNPredictor(VOCAB, embed_dim=8, hidden_dim=12, num_layers=2, dropout=0.1),
    "stateless": lambda: StatelessPredictor(VOCAB, embed_dim=8, context_size=3, dropout=0.1),
    "stateless1": lambda: StatelessPredictor(VOCAB, embed_dim=8, context_size=1),
}


def make(name: str) -> Predictor:
    torch.manual_seed(0)
    return FACTORIES[name]().eval()


def padded_labels() -> tuple:
    labels = torch.tensor([[3, 5, 1, 7, 2], [4, 4, 9, -1, -1], [6, -1, -1, -1, -1]])
    lens = torch.tensor([5, 3, 1])
    return labels, lens


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_step_equals_batched(name: str) -> None:
    predictor = make(name)
    labels, _ = padded_labels()
    with torch.no_grad():
        batched = predictor(labels)
        assert batched.shape == (3, 6, predictor.output_size())
        state = predictor.init_state(3)
        tokens = torch.zeros(3, dtype=torch.long)  # blank starts every sequence
        for u in range(6):
            out, state = predictor.step(tokens, state)
            assert (out - batched[:, u]).abs().max() < 1e-6, u
            if u < 5:
                tokens = labels[:, u]


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_padding_ids_do_not_change_valid_positions(name: str) -> None:
    predictor = make(name)
    labels, lens = padded_labels()
    pad = torch.arange(5).unsqueeze(0) >= lens.unsqueeze(1)
    with torch.no_grad():
        with_minus_one = predictor(labels)
        with_blank = predictor(labels.masked_fill(pad, 0))
        with_token = predictor(labels.masked_fill(pad, 7))
    assert torch.equal(with_minus_one, with_blank)
    for b, n in enumerate(lens.tolist()):
        assert torch.equal(with_token[b, : n + 1], with_minus_one[b, : n + 1])
    # and a padded sequence equals the same sequence alone
    with torch.no_grad():
        alone = predictor(labels[1:2, :3])
    assert (alone[0] - with_minus_one[1, :4]).abs().max() < 1e-6


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_select_and_batch_states(name: str) -> None:
    predictor = make(name)
    with torch.no_grad():
        state = predictor.init_state(3)
        _, state = predictor.step(torch.tensor([0, 0, 0]), state)
        _, state = predictor.step(torch.tensor([2, 5, 8]), state)
        picked = predictor.select_state(state, torch.tensor([2, 0, 0]))
        out, _ = predictor.step(torch.tensor([1, 1, 4]), picked)
        # reference: each sequence run on its own
        for row, (first, second) in enumerate([(8, 1), (2, 1), (2, 4)]):
            s = predictor.init_state(1)
            for tok in (0, first, second):
                ref, s = predictor.step(torch.tensor([tok]), s)
            assert (out[row] - ref[0]).abs().max() < 1e-6
        parts = [predictor.select_state(state, torch.tensor([i])) for i in range(3)]
        merged = predictor.batch_states(parts)
        a, _ = predictor.step(torch.tensor([3, 3, 3]), merged)
        b, _ = predictor.step(torch.tensor([3, 3, 3]), state)
    assert torch.equal(a, b)


def test_stateless_output_depends_only_on_the_last_tokens() -> None:
    predictor = make("stateless")  # context_size 3
    with torch.no_grad():
        out = predictor(torch.tensor([[1, 2, 3, 4, 5], [9, 9, 3, 4, 5]]))
    # output u has read [blank, y_1..y_u]: only u = 5 ends with the same three tokens
    assert (out[0, 5] - out[1, 5]).abs().max() < 1e-6
    assert (out[0, 4] - out[1, 4]).abs().max() > 1e-3


def test_rnn_predictor_has_long_memory_and_gradients() -> None:
    predictor = make("rnn").train()
    labels = torch.tensor([[1, 2, 3, 4, 5], [9, 9, 3, 4, 5]])
    out = predictor(labels)
    out.sum().backward()
    for name, param in predictor.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    predictor.eval()
    with torch.no_grad():
        out = predictor(labels)
    assert not torch.allclose(out[0, -1], out[1, -1])


@pytest.mark.parametrize("factory", [FACTORIES["rnn"], FACTORIES["stateless"]])
def test_bad_ids_raise(factory: Callable[[], Predictor]) -> None:
    predictor = factory()
    with pytest.raises(ValueError, match="vocab_size"):
        predictor(torch.tensor([[1, VOCAB]]))
    with pytest.raises(ValueError, match="labels must have shape"):
        predictor(torch.tensor([1, 2]))


def test_bad_constructor_arguments_raise() -> None:
    with pytest.raises(ValueError, match="blank_id"):
        RNNPredictor(5, 4, 4, 1, 0.0, blank_id=5)
    with pytest.raises(ValueError, match="context_size"):
        StatelessPredictor(5, 4, context_size=0)
