"""Tests of the joint network and the lattice mask against explicit loops."""

import pytest
import torch

from ent.nets.joint import JointNetwork, lattice_mask


def make_joint(activation: str = "tanh", output_size: int = 7) -> JointNetwork:
    torch.manual_seed(0)
    return JointNetwork(
        enc_dim=5, pred_dim=4, joint_dim=6, output_size=output_size, activation=activation
    )


@pytest.mark.parametrize(
    "activation,fn",
    [("tanh", torch.tanh), ("relu", torch.relu), ("swish", lambda x: x * torch.sigmoid(x))],
)
def test_joint_equals_loop_reference(activation: str, fn) -> None:
    joint = make_joint(activation)
    B, T, U1 = 2, 3, 4
    enc = torch.randn(B, T, 5)
    pred = torch.randn(B, U1, 4)
    with torch.no_grad():
        out = joint(enc.unsqueeze(2), pred.unsqueeze(1))
    assert out.shape == (B, T, U1, 7)
    We, be = joint.lin_enc.weight, joint.lin_enc.bias
    Wp = joint.lin_pred.weight
    Wo, bo = joint.lin_out.weight, joint.lin_out.bias
    for b in range(B):
        for t in range(T):
            for u in range(U1):
                hidden = fn(We @ enc[b, t] + be + Wp @ pred[b, u])
                ref = Wo @ hidden + bo
                assert (out[b, t, u] - ref).abs().max() < 1e-5, (b, t, u)


def test_projected_path_and_single_step_agree() -> None:
    joint = make_joint()
    enc = torch.randn(2, 3, 5)
    pred = torch.randn(2, 4, 4)
    with torch.no_grad():
        full = joint(enc.unsqueeze(2), pred.unsqueeze(1))
        reused = joint.joint_from_projected(
            joint.project_encoder(enc).unsqueeze(2), joint.project_predictor(pred).unsqueeze(1)
        )
        step = joint(enc[:, 1], pred[:, 2])  # (B, D_e) with (B, D_p): one decoding step
    assert torch.equal(full, reused)
    assert step.shape == (2, 7)
    assert (step - full[:, 1, 2]).abs().max() < 1e-6
    assert joint.output_size() == 7


def test_emotion_joint_builds_the_emotion_lattice_and_trains() -> None:
    joint = make_joint(output_size=4)  # C = 4 emotion classes
    enc = torch.randn(2, 3, 5)
    pred = torch.randn(2, 4, 4)
    lattice = joint(enc.unsqueeze(2), pred.unsqueeze(1))
    assert lattice.shape == (2, 3, 4, 4)
    lattice.logsumexp(-1).sum().backward()
    for name, param in joint.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_unknown_activation_raises() -> None:
    with pytest.raises(ValueError, match="valid: \\['relu', 'swish', 'tanh'\\]"):
        make_joint("gelu")


def test_lattice_mask_equals_loop() -> None:
    enc_lens = torch.tensor([4, 2, 1])
    label_lens = torch.tensor([0, 3, 2])
    T, U1 = 5, 4
    mask = lattice_mask(enc_lens, label_lens, T, U1)
    assert mask.shape == (3, T, U1) and mask.dtype == torch.bool
    for b in range(3):
        for t in range(T):
            for u in range(U1):
                expected = t < enc_lens[b] and u <= label_lens[b]
                assert bool(mask[b, t, u]) == bool(expected), (b, t, u)
    assert mask.sum().item() == 4 * 1 + 2 * 4 + 1 * 3
