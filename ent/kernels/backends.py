"""Back-end resolution of ENT's kernels: which implementation runs for a device.

* Fused lattice losses (:data:`LATTICE_BACKENDS`, :func:`resolve_backend`,
  :func:`lattice_kernels`): ``numba`` (parallel CPU kernels,
  :mod:`ent.kernels.lattice_numba`), ``cuda`` (the C++ extension of
  ``ent/csrc``, :mod:`ent.kernels.extension`), ``numba_cuda`` (numba CUDA
  kernels where the extension cannot be built; under ``NUMBA_ENABLE_CUDASIM=1``
  also for CPU tensors in numba's CUDA simulator), ``torch`` (the plain path).
  ``auto``: ``numba`` on CPU; ``cuda``, else ``numba_cuda``, else ``torch`` on GPU.
* The transducer loss (:data:`RNNT_BACKENDS`, :func:`resolve_rnnt_backend`):
  ``numba`` (:mod:`ent.kernels.rnnt_numba`, CPU only) or ``torchaudio``;
  ``auto``: ``numba`` for CPU tensors (without the numba package
  ``torchaudio``), ``torchaudio`` for CUDA ones.

Nothing here imports numba or builds the extension before it is needed.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Tuple

import torch

from ent.kernels import extension
from ent.kernels.availability import BackendUnavailableError, numba_available, numba_cuda_state
from ent.kernels.lattice_types import LatticeKernels

_log = logging.getLogger(__name__)

#: Names accepted by ``backend=`` of the fused lattice losses.
LATTICE_BACKENDS: Tuple[str, ...] = ("auto", "torch", "numba", "cuda", "numba_cuda")

#: Names accepted by ``backend=`` of :func:`ent.losses.rnnt.rnnt_loss`.
RNNT_BACKENDS = ("auto", "torchaudio", "numba")


@lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    _log.warning(message)


def resolve_backend(backend: str, device: torch.device) -> str:
    """The lattice back end that runs for tensors on ``device``.

    Args:
        backend: One of :data:`LATTICE_BACKENDS`.
        device: Device of the inputs.

    Returns:
        ``"torch"``, ``"numba"``, ``"cuda"`` or ``"numba_cuda"``.

    Raises:
        ValueError: unknown name, or a back end for the other kind of device.
        BackendUnavailableError: an explicitly chosen back end cannot run here.
    """
    if backend not in LATTICE_BACKENDS:
        raise ValueError(f"unknown lattice backend {backend!r}; valid: {list(LATTICE_BACKENDS)}")
    on_gpu = device.type == "cuda"
    if backend == "auto":
        if not on_gpu:
            return "numba" if numba_available() else "torch"
        if extension.extension_status()[0] is not None:
            return "cuda"
        fallback = "numba_cuda" if numba_cuda_state()[0] else "torch"
        _warn_once(
            f"ent: the CUDA lattice extension cannot be built ({extension.extension_status()[1]}); "
            f"using the {fallback} lattice backend"
        )
        return fallback
    if backend == "torch":
        return backend
    if backend == "numba":
        if on_gpu:
            raise ValueError("lattice backend 'numba' runs on CPU tensors; use 'cuda' or 'numba_cuda' on GPU")
        if not numba_available():
            raise BackendUnavailableError("lattice backend 'numba' needs the numba package")
        return backend
    # "cuda" or "numba_cuda"; numba's CUDA simulator runs on CPU tensors.
    usable, simulated = numba_cuda_state()
    if not on_gpu and not (backend == "numba_cuda" and simulated):
        raise ValueError(f"lattice backend {backend!r} runs on CUDA tensors, got {device.type} tensors")
    if backend == "cuda":
        extension.load_extension()
    elif not usable:
        raise BackendUnavailableError("lattice backend 'numba_cuda' needs numba with a usable CUDA GPU")
    return backend


def lattice_kernels(backend: str) -> LatticeKernels:
    """The kernels of a resolved fused back end (``"numba"``, ``"cuda"`` or ``"numba_cuda"``).

    numba is imported, or the extension built, here on first use.
    """
    if backend == "cuda":
        return extension.extension_kernels()
    from ent.kernels import lattice_numba

    if backend == "numba":
        return LatticeKernels(lattice_numba.log_probs_cpu, lattice_numba.backward_cpu)
    return LatticeKernels(lattice_numba.log_probs_numba_cuda, lattice_numba.backward_numba_cuda)


def resolve_rnnt_backend(backend: str, device: torch.device) -> str:
    """The back end :func:`ent.losses.rnnt.rnnt_loss` runs for tensors on ``device``.

    Args:
        backend: One of :data:`RNNT_BACKENDS`.
        device: Device of the logits.

    Returns:
        ``"torchaudio"`` or ``"numba"``.

    Raises:
        ValueError: unknown name, or ``numba`` for CUDA tensors.
        BackendUnavailableError: ``numba`` without the numba package.
    """
    if backend not in RNNT_BACKENDS:
        raise ValueError(f"unknown RNN-T loss backend {backend!r}; valid: {list(RNNT_BACKENDS)}")
    on_gpu = device.type != "cpu"
    if backend == "auto":
        return "numba" if not on_gpu and numba_available() else "torchaudio"
    if backend == "numba":
        if on_gpu:
            raise ValueError(f"the numba RNN-T loss backend runs on CPU tensors, got a {device.type} tensor")
        if not numba_available():
            raise BackendUnavailableError("RNN-T loss backend 'numba' needs the numba package")
    return backend
