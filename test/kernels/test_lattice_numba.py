"""Tests of ent.kernels.lattice_numba: the vectorizable tanh, and the numba CUDA kernels in numba's simulator.

The CPU kernels are checked against the plain-PyTorch losses in
test/losses/test_fused_lattice.py and test/kernels/test_fused_joint.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]



def test_lambert_coefficients_and_fast_tanh() -> None:
    from numba import njit

    from ent.kernels.lattice_numba import fast_tanh, lambert_tanh_coefficients

    # Two levels: tanh y ~ y / (1 + y^2 / 3) = y * 1 / (1 + y^2 / 3).
    assert lambert_tanh_coefficients(2) == ((1.0,), (1.0, 1.0 / 3.0))

    @njit
    def apply(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = fast_tanh(x[i])
        return out

    x = np.concatenate([np.linspace(-30, 30, 6001), np.logspace(-300, 1.5, 400), [np.inf, -np.inf, 0.0]])
    for dtype, ulps in ((np.float64, 4), (np.float32, 4)):
        xs = x.astype(dtype)
        got = apply(xs).astype(np.float64)
        want = np.tanh(xs.astype(np.float64))
        bound = ulps * np.finfo(dtype).eps * np.maximum(np.abs(want), np.finfo(dtype).tiny)
        assert np.all(np.abs(got - want) <= bound)
    assert np.isnan(apply(np.array([np.nan]))[0])


_SIMULATOR_SCRIPT = textwrap.dedent(
    """
    import torch
    from ent.losses.fused_lattice import (
        emotion_lattice, fused_lattice_max_pool_loss, fused_supervised_lattice_loss,
    )
    from ent.losses.lattice_max_pool import lattice_max_pool_loss, supervised_lattice_loss
    g = torch.Generator().manual_seed(0)
    enc = torch.randn(3, 6, 5, generator=g, dtype=torch.float64)
    enc[:, 4] = enc[:, 2]  # exact ties
    pred = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    weight = torch.randn(3, 5, generator=g, dtype=torch.float64)
    bias = torch.randn(3, generator=g, dtype=torch.float64)
    enc_lens, label_lens = torch.tensor([6, 4, 1]), torch.tensor([3, 0, 2])
    frames = torch.tensor([[1, 1, 2, 2, 0, 0], [0, 0, 0, 0, -1, -1], [2, -1, -1, -1, -1, -1]])
    tokens = torch.tensor([[1, 2, 0, 0], [0, -1, -1, -1], [2, 2, 2, -1]])
    def run(fn, *args, **kw):
        leaves = [x.clone().requires_grad_() for x in (enc, pred, weight, bias)]
        loss = fn(*leaves, *args, **kw)
        return [loss.detach()] + list(torch.autograd.grad(loss, leaves))
    ref_pool = lambda e, p, w, b, *a, **k: lattice_max_pool_loss(emotion_lattice(e, p, w, b), *a, **k)
    ref_sup = lambda e, p, w, b, *a, **k: supervised_lattice_loss(emotion_lattice(e, p, w, b), *a, **k)
    labels = torch.tensor([1, 0, 2])
    checks = [(ref_pool, fused_lattice_max_pool_loss, (enc_lens, label_lens, labels), {"mode": m})
              for m in ("one", "full_t", "full_u")]
    checks += [(ref_sup, fused_supervised_lattice_loss, (enc_lens, label_lens, frames, t), {})
               for t in (None, tokens)]
    for ref, fused, args, kw in checks:
        want = run(ref, *args, **kw)
        got = run(fused, *args, backend="numba_cuda", **kw)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * float(b.abs().max()))
    print("simulated numba CUDA matches the reference")
    """
)


def test_numba_cuda_kernels_in_the_simulator() -> None:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", _SIMULATOR_SCRIPT],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "matches the reference" in done.stdout
