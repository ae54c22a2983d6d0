"""LayerWeightedSum: softmax weights, scale, layer norm, gradients."""

import pytest
import torch
from torch.nn import functional as F

from ent.features.layer_weighting import LayerWeightedSum


def hidden(n: int = 4, shape=(2, 5, 6)):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(*shape, generator=g) * (i + 1) for i in range(n)]


def test_starts_as_the_mean_and_weights_sum_to_one() -> None:
    ws = LayerWeightedSum(4)
    hs = hidden()
    assert torch.allclose(ws(hs), torch.stack(hs).mean(0), atol=1e-6)
    with torch.no_grad():
        ws.weight_logits.copy_(torch.tensor([2.0, -1.0, 0.5, 0.0]))
    assert torch.isclose(ws.weights.sum(), torch.tensor(1.0)) and bool((ws.weights > 0).all())


def test_equals_the_formula_and_learns_weights_and_scale() -> None:
    ws = LayerWeightedSum(4, layer_norm=True)
    with torch.no_grad():
        ws.weight_logits.copy_(torch.tensor([0.3, -0.2, 1.0, 0.1]))
        ws.scale.fill_(1.7)
    hs = hidden()
    w = torch.softmax(ws.weight_logits.detach(), 0)
    expected = 1.7 * sum(w[i] * F.layer_norm(h, h.shape[-1:]) for i, h in enumerate(hs))
    out = ws(hs)
    assert torch.allclose(out, expected, atol=1e-5)
    out.pow(2).sum().backward()
    assert ws.weight_logits.grad.abs().sum() > 0 and ws.scale.grad.abs() > 0


def test_half_precision_inputs_are_summed_in_float32() -> None:
    ws = LayerWeightedSum(2)
    hs = [h.to(torch.bfloat16) for h in hidden(2)]
    assert ws(hs).dtype == torch.float32


def test_wrong_number_of_layers_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 3 hidden states"):
        LayerWeightedSum(3)(hidden(2))
    with pytest.raises(ValueError):
        LayerWeightedSum(0)
