"""Tests of ent.losses.rnnt: both back ends against the pure-PyTorch recursion and each other."""

from __future__ import annotations

import math
import subprocess
import sys
from functools import partial

import pytest
import torch

from ent.losses.rnnt import rnnt_loss, rnnt_loss_reference

CPU_BACKENDS = ["torchaudio", "numba"]


def random_case(seed: int, batch: int = 3, max_t: int = 6, max_u: int = 4, vocab: int = 5, blank_id: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, max_t, max_u + 1, vocab, generator=g)
    enc_lens = torch.randint(1, max_t + 1, (batch,), generator=g)
    label_lens = torch.randint(0, max_u + 1, (batch,), generator=g)
    enc_lens[0], label_lens[1] = max_t, max_u
    non_blank = torch.tensor([v for v in range(vocab) if v != blank_id])
    labels = non_blank[torch.randint(0, vocab - 1, (batch, max_u), generator=g)]
    labels[torch.arange(max_u)[None, :] >= label_lens[:, None]] = -1  # padding
    return logits, labels, enc_lens, label_lens


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("blank_id", [0, 4])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_wrapper_matches_reference(backend: str, blank_id: int, reduction: str) -> None:
    for seed in range(3):
        logits, labels, enc_lens, label_lens = random_case(seed, blank_id=blank_id)
        x = logits.clone().requires_grad_(True)
        got = rnnt_loss(x, labels, enc_lens, label_lens, blank_id=blank_id, reduction=reduction, backend=backend)
        xr = logits.double().requires_grad_(True)
        want = rnnt_loss_reference(xr, labels, enc_lens, label_lens, blank_id=blank_id, reduction=reduction)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
        got.sum().backward()
        want.sum().backward()
        torch.testing.assert_close(x.grad.double(), xr.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_unfused_log_softmax(backend: str) -> None:
    logits, labels, enc_lens, label_lens = random_case(5)
    log_probs = logits.log_softmax(-1).requires_grad_(True)
    got = rnnt_loss(
        log_probs, labels, enc_lens, label_lens, fused_log_softmax=False, reduction="none", backend=backend
    )
    xr = log_probs.detach().double().requires_grad_(True)
    want = rnnt_loss_reference(xr, labels, enc_lens, label_lens, fused_log_softmax=False, reduction="none")
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got, rnnt_loss(logits, labels, enc_lens, label_lens, reduction="none", backend=backend))
    got.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(log_probs.grad.double(), xr.grad, rtol=1e-4, atol=1e-5)


def test_backends_agree_on_a_training_sized_lattice() -> None:
    """A lattice the size of a mini_emo batch (long paths: loss ~ 350 nats), float32 in both."""
    logits, labels, enc_lens, label_lens = random_case(11, batch=6, max_t=90, max_u=40, vocab=30)
    grads, losses = [], []
    for backend in CPU_BACKENDS:
        x = logits.clone().requires_grad_(True)
        loss = rnnt_loss(x, labels, enc_lens, label_lens, reduction="none", backend=backend)
        loss.sum().backward()
        losses.append(loss.detach())
        grads.append(x.grad)
    assert float(losses[0].min()) > 100.0
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=5e-5)


def test_numba_gradcheck_float64() -> None:
    logits, labels, enc_lens, label_lens = random_case(12, batch=2, max_t=4, max_u=3, vocab=4)
    x = logits.double().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: rnnt_loss(z, labels, enc_lens, label_lens, reduction="none", backend="numba"), (x,)
    )


def test_gradient_clamp() -> None:
    logits, labels, enc_lens, label_lens = random_case(13)
    grads = []
    for backend in CPU_BACKENDS:
        x = (3 * logits).requires_grad_(True)
        rnnt_loss(x, labels, enc_lens, label_lens, clamp=0.05, backend=backend).backward()
        grads.append(x.grad)
    assert float(grads[1].abs().max()) == pytest.approx(0.05 / 3)  # clamped, then the mean's 1/B
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


def test_importing_the_model_does_not_import_numba() -> None:
    """numba (about 0.3 s) is imported when a numba kernel first runs, not at start-up."""
    code = "import sys, ent.models.transducer, ent.decoding.recognizer; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_reference_hand_cases() -> None:
    logits = torch.randn(1, 2, 2, 3, dtype=torch.float64)
    lp = logits.log_softmax(-1)[0]
    one = torch.tensor([1]), torch.tensor([0])
    # T=1, U=0: the single blank.
    got = rnnt_loss_reference(logits, torch.tensor([[2]]), *one)
    assert got.item() == pytest.approx(-lp[0, 0, 0].item())
    # T=1, U=1: emit y then blank.
    got = rnnt_loss_reference(logits, torch.tensor([[2]]), torch.tensor([1]), torch.tensor([1]))
    assert got.item() == pytest.approx(-(lp[0, 0, 2] + lp[0, 1, 0]).item())
    # T=2, U=1: two paths (y at t=0 or at t=1).
    got = rnnt_loss_reference(logits, torch.tensor([[2]]), torch.tensor([2]), torch.tensor([1]))
    p1 = lp[0, 0, 2] + lp[0, 1, 0] + lp[1, 1, 0]
    p2 = lp[0, 0, 0] + lp[1, 0, 2] + lp[1, 1, 0]
    assert got.item() == pytest.approx(-math.log(math.exp(p1) + math.exp(p2)))
    assert torch.autograd.gradcheck(
        lambda z: rnnt_loss_reference(z, torch.tensor([[2]]), torch.tensor([2]), torch.tensor([1])),
        (logits.clone().requires_grad_(True),),
    )


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_half_and_bfloat16_inputs_are_computed_in_float32(backend: str) -> None:
    logits, labels, enc_lens, label_lens = random_case(7)
    for dtype in (torch.float16, torch.bfloat16):
        low = logits.to(dtype).requires_grad_(True)
        got = rnnt_loss(low, labels, enc_lens, label_lens, backend=backend)
        assert got.dtype == torch.float32
        want = rnnt_loss_reference(low.detach().double(), labels, enc_lens, label_lens)
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
        got.backward()
        assert low.grad is not None and low.grad.dtype == dtype


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_mean_is_sum_over_batch_size(backend: str) -> None:
    logits, labels, enc_lens, label_lens = random_case(8, batch=4)
    loss = partial(rnnt_loss, logits, labels, enc_lens, label_lens, backend=backend)
    none = loss(reduction="none")
    assert none.shape == (4,)
    torch.testing.assert_close(loss(reduction="sum"), none.sum())
    torch.testing.assert_close(loss(reduction="mean"), none.mean())


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_padding_invariance_and_int64_lengths(backend: str) -> None:
    logits, labels, enc_lens, label_lens = random_case(9)
    base = rnnt_loss(logits, labels, enc_lens, label_lens, reduction="none", backend=backend)
    # Extra frames and positions full of garbage, extra label padding, int64 everything.
    padded = torch.nn.functional.pad(logits, (0, 0, 0, 2, 0, 3), value=30.0).requires_grad_(True)
    padded_labels = torch.nn.functional.pad(labels, (0, 2), value=-1).long()
    got = rnnt_loss(padded, padded_labels, enc_lens.long(), label_lens.long(), reduction="none", backend=backend)
    torch.testing.assert_close(got, base)
    got.sum().backward()
    assert padded.grad[:, 6:].abs().sum() == 0 and padded.grad[:, :, 5:].abs().sum() == 0


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_all_empty_transcripts(backend: str) -> None:
    logits = torch.randn(2, 4, 1, 3)
    labels = torch.zeros(2, 0, dtype=torch.long)
    enc_lens, label_lens = torch.tensor([4, 2]), torch.tensor([0, 0])
    got = rnnt_loss(logits, labels, enc_lens, label_lens, reduction="none", backend=backend)
    want = -logits.log_softmax(-1)[..., 0, 0].cumsum(1)[[0, 1], [3, 1]]
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"logits": torch.zeros(3, 6, 4, 5)}, "labels.size\\(1\\) \\+ 1"),
        ({"logits": torch.zeros(3, 6, 5)}, "must be \\(B, T, U\\+1, V\\)"),
        ({"labels": torch.ones(2, 4, dtype=torch.long)}, "labels must be"),
        ({"enc_lens": torch.tensor([7, 1, 1])}, "enc_lens must lie"),
        ({"enc_lens": torch.tensor([6, 1])}, "enc_lens must have shape"),
        ({"label_lens": torch.tensor([5, 0, 0])}, "label_lens must lie"),
        ({"label_lens": torch.tensor([1.0, 0.0, 0.0])}, "integer"),
        ({"blank_id": 5}, "blank_id"),
        ({"reduction": "avg"}, "unknown reduction"),
        ({"labels": torch.zeros(3, 4, dtype=torch.long)}, "differ from blank_id"),
        ({"labels": torch.full((3, 4), 9)}, "lie in"),
    ],
)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bad_input_raises(backend: str, change: dict, match: str) -> None:
    logits, labels, enc_lens, label_lens = random_case(0)
    label_lens = torch.tensor([4, 4, 2])
    labels = torch.ones(3, 4, dtype=torch.long)
    args = {
        "logits": logits, "labels": labels, "enc_lens": enc_lens, "label_lens": label_lens,
        "blank_id": 0, "backend": backend,
    }
    args.update(change)
    with pytest.raises(ValueError, match=match):
        rnnt_loss(**args)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_reference() -> None:
    logits, labels, enc_lens, label_lens = random_case(3)
    x = logits.cuda().requires_grad_(True)
    got = rnnt_loss(x, labels, enc_lens, label_lens, reduction="none")  # CPU labels/lengths are moved
    xr = logits.double().requires_grad_(True)
    want = rnnt_loss_reference(xr, labels, enc_lens, label_lens, reduction="none")
    torch.testing.assert_close(got.cpu().double(), want, rtol=1e-5, atol=1e-5)
    got.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(x.grad.cpu().double(), xr.grad, rtol=1e-4, atol=1e-5)
