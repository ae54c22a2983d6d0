"""Two processes that run the numba lattice kernels give bit-identical gradients.

docs/kernels_and_benchmarks.md (Reproducibility): a kernel compiled in the
running process may round differently from the same kernel loaded from numba's
on-disk cache, so both processes here run after a warm-up that fills the cache.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("numba")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys, torch
from ent.kernels import lattice_numba as ln
from ent.kernels.lattice_types import JointInputs, NodeRuns
g = torch.Generator().manual_seed(0)
B, T, U1, J, C = 3, 40, 9, 32, 4
joint = JointInputs(torch.randn(B, T, J, generator=g), torch.randn(B, U1, J, generator=g),
                    0.3 * torch.randn(C, J, generator=g), torch.randn(C, generator=g))
weight = torch.rand(B, T, U1, generator=g) * (torch.rand(B, T, U1, generator=g) > 0.5)
runs = NodeRuns(torch.zeros(B, T, dtype=torch.long), torch.zeros(B, U1, dtype=torch.long),
                torch.tensor([[0], [2], [3]]))
out = {"node": ln.node_weight_backward_cpu(joint, torch.tensor([0, 1, 2]), weight),
       "runs": ln.backward_cpu(joint, runs, torch.ones(B, 1)),
       "log_probs": ln.log_probs_cpu(joint, runs, 0)}
torch.save(out, sys.argv[1])
"""


def _run(path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    subprocess.run([sys.executable, "-c", SCRIPT, str(path)], check=True, env=env, cwd=REPO, timeout=600)
    return torch.load(path, weights_only=True)


@pytest.mark.slow
def test_two_processes_loading_the_cache_agree_bit_for_bit(tmp_path: Path) -> None:
    _run(tmp_path / "warm.pt")  # compiles and caches whatever is not cached yet
    first, second = _run(tmp_path / "a.pt"), _run(tmp_path / "b.pt")
    for key in first:
        for a, b in zip(first[key], second[key]):
            if a is None:
                assert b is None
                continue
            assert torch.equal(a, b), key
            assert torch.isfinite(a).all() and a.abs().sum() > 0, key  # a real gradient, not zeros
