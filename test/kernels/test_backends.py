"""Tests of ent.kernels.backends: which back end runs for a device."""

from __future__ import annotations

import pytest
import torch

from ent.kernels import backends
from ent.kernels.availability import BackendUnavailableError, numba_available
from ent.kernels.backends import RNNT_BACKENDS, resolve_backend, resolve_rnnt_backend


def test_lattice_backend_resolution() -> None:
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu) == ("numba" if numba_available() else "torch")
    assert resolve_backend("torch", cpu) == "torch"
    with pytest.raises(ValueError, match="unknown lattice backend"):
        resolve_backend("triton", cpu)
    with pytest.raises(ValueError, match="runs on CUDA tensors"):
        resolve_backend("cuda", cpu)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="runs on CUDA tensors"):
            resolve_backend("numba_cuda", cpu)


def test_rnnt_backend_resolution() -> None:
    assert resolve_rnnt_backend("auto", torch.device("cpu")) == "numba"
    assert resolve_rnnt_backend("auto", torch.device("cuda")) == "torchaudio"
    assert resolve_rnnt_backend("torchaudio", torch.device("cpu")) == "torchaudio"
    assert set(RNNT_BACKENDS) == {"auto", "torchaudio", "numba"}
    with pytest.raises(ValueError, match="runs on CPU tensors"):
        resolve_rnnt_backend("numba", torch.device("cuda"))
    with pytest.raises(ValueError, match="unknown RNN-T loss backend"):
        resolve_rnnt_backend("warp", torch.device("cpu"))


def test_without_numba_auto_is_torchaudio(monkeypatch) -> None:
    monkeypatch.setattr(backends, "numba_available", lambda: False)
    assert resolve_rnnt_backend("auto", torch.device("cpu")) == "torchaudio"
    with pytest.raises(BackendUnavailableError, match="needs the numba package"):
        resolve_rnnt_backend("numba", torch.device("cpu"))
