"""Test configuration shared by the whole suite."""

import os

import pytest

# Deterministic, single-threaded numerics: results do not depend on the
# machine's core count, and parallel helpers do not oversubscribe the CPU.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        yield
        return
    torch.set_num_threads(1)
    yield
