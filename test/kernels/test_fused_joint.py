"""Tests of ent.kernels.fused_joint: the fused lattice against the plain joint network."""

from __future__ import annotations

from typing import Dict, Tuple

import pytest
import torch

from ent.kernels.fused_joint import FUSED_MAX_OUTPUTS, fused_joint_lattice
from ent.nets.joint import JointNetwork


def plain_lattice(enc: torch.Tensor, pred: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.tanh(enc[:, :, None] + pred[:, None]) @ weight.T + bias


def random_inputs(seed: int, dtype: torch.dtype, batch: int = 3, max_t: int = 7, max_u1: int = 5,
                  num_j: int = 11, num_c: int = 3) -> Tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(batch, max_t, num_j), (batch, max_u1, num_j), (num_c, num_j), (num_c,)]
    # scale 3: many activations in tanh's saturated range, where the fast tanh's clamp acts
    return tuple((3 * torch.randn(*s, generator=g)).to(dtype).requires_grad_(True) for s in shapes)


@pytest.mark.parametrize("num_c", [1, 4, 30])
def test_forward_and_gradients_equal_the_plain_lattice(num_c: int) -> None:
    inputs = random_inputs(0, torch.float64, num_c=num_c)
    g = torch.Generator().manual_seed(1)
    grad_out = torch.randn(3, 7, 5, num_c, generator=g, dtype=torch.float64)
    grad_out[0, 4:] = 0  # padding frames a loss ignores: skipped by the backward kernel
    grad_out[2, :, 3:] = 0
    grad_out[1, 2, 1, 0] = 0  # one zero among live outputs still counts the others
    got = fused_joint_lattice(*inputs)
    got_grads = torch.autograd.grad(got, inputs, grad_out)
    want = plain_lattice(*inputs)
    want_grads = torch.autograd.grad(want, inputs, grad_out)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


def test_float32_matches_within_rounding() -> None:
    inputs = random_inputs(2, torch.float32, batch=4, max_t=30, max_u1=12, num_j=64, num_c=2)
    got = fused_joint_lattice(*inputs)
    want = plain_lattice(*inputs)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)
    grad_out = torch.randn_like(got)
    for a, b in zip(torch.autograd.grad(got, inputs, grad_out), torch.autograd.grad(want, inputs, grad_out)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_gradcheck() -> None:
    inputs = random_inputs(3, torch.float64, batch=2, max_t=3, max_u1=2, num_j=4, num_c=2)
    assert torch.autograd.gradcheck(fused_joint_lattice, inputs)


@pytest.mark.parametrize(
    "change, match",
    [
        ({0: torch.zeros(3, 7)}, "expected enc_proj"),
        ({1: torch.zeros(2, 5, 11)}, "expected enc_proj"),
        ({2: torch.zeros(3, 10)}, "sizes disagree"),
        ({3: torch.zeros(4)}, "sizes disagree"),
        ({3: torch.zeros(3, dtype=torch.float64)}, "one dtype"),
    ],
)
def test_bad_input_raises(change: Dict[int, torch.Tensor], match: str) -> None:
    inputs = [x.detach() for x in random_inputs(4, torch.float32)]
    for index, tensor in change.items():
        inputs[index] = tensor
    with pytest.raises(ValueError, match=match):
        fused_joint_lattice(*inputs)


def joint_outputs(joint: JointNetwork, enc: torch.Tensor, pred: torch.Tensor) -> Dict[str, torch.Tensor]:
    joint.zero_grad()
    out = joint(enc.unsqueeze(2), pred.unsqueeze(1))
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = {name: p.grad.clone() for name, p in joint.named_parameters()}
    return {"out": out.detach(), **grads}


@pytest.mark.parametrize("num_c", [1, 5, FUSED_MAX_OUTPUTS])
def test_joint_network_uses_the_fused_lattice_with_equal_results(num_c: int, monkeypatch) -> None:
    torch.manual_seed(0)
    joint = JointNetwork(6, 5, 16, num_c).double()
    enc, pred = torch.randn(2, 9, 6, dtype=torch.float64), torch.randn(2, 4, 5, dtype=torch.float64)
    calls = []
    import ent.nets.joint as joint_module

    monkeypatch.setattr(joint_module, "fused_joint_lattice",
                        lambda *a: calls.append(1) or fused_joint_lattice(*a))
    fused = joint_outputs(joint, enc, pred)
    assert calls == [1]
    joint.fused = False
    plain = joint_outputs(joint, enc, pred)
    assert calls == [1]
    for name in plain:
        torch.testing.assert_close(fused[name], plain[name], rtol=1e-11, atol=1e-11)


def test_joint_network_keeps_the_plain_path_elsewhere(monkeypatch) -> None:
    import ent.nets.joint as joint_module

    monkeypatch.setattr(joint_module, "fused_joint_lattice", lambda *a: pytest.fail("fused path taken"))
    torch.manual_seed(0)
    enc, pred = torch.randn(2, 9, 6), torch.randn(2, 4, 5)
    many = JointNetwork(6, 5, 16, FUSED_MAX_OUTPUTS + 1)
    assert many(enc.unsqueeze(2), pred.unsqueeze(1)).shape == (2, 9, 4, FUSED_MAX_OUTPUTS + 1)
    joint = JointNetwork(6, 5, 16, 3)
    assert joint(enc[:, 0], pred[:, 0]).shape == (2, 3)  # one decoding step
    assert JointNetwork(6, 5, 16, 3, activation="relu")(enc.unsqueeze(2), pred.unsqueeze(1)).shape == (2, 9, 4, 3)
    monkeypatch.setattr(joint_module, "numba_available", lambda: False)
    assert joint(enc.unsqueeze(2), pred.unsqueeze(1)).shape == (2, 9, 4, 3)  # no numba: plain path
