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
* The run-time choice of a model (:class:`ComputeBackends`): the two above and
  whether CPU joint lattices use the fused kernels. It is not part of a
  model's saved configuration; the defaults (``auto``, ``auto``, fused) are
  overridden with the environment variables ``ENT_RNNT_BACKEND``,
  ``ENT_LATTICE_BACKEND`` and ``ENT_FUSED_JOINT`` (``true``/``false``), read
  when a model is built, or in Python with
  :meth:`ent.models.transducer.EmotionTransducer.set_backends`.

Nothing here imports numba or builds the extension before it is needed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Optional, Tuple

import torch

from ent.kernels import extension
from ent.kernels.availability import BackendUnavailableError, numba_available, numba_cuda_state
from ent.kernels.lattice_types import LatticeKernels

_log = logging.getLogger(__name__)

#: Names accepted by ``backend=`` of the fused lattice losses.
LATTICE_BACKENDS: Tuple[str, ...] = ("auto", "torch", "numba", "cuda", "numba_cuda")

#: Names accepted by ``backend=`` of :func:`ent.losses.rnnt.rnnt_loss`.
RNNT_BACKENDS = ("auto", "torchaudio", "numba")

#: Environment variables of :meth:`ComputeBackends.from_env`.
RNNT_BACKEND_ENV = "ENT_RNNT_BACKEND"
LATTICE_BACKEND_ENV = "ENT_LATTICE_BACKEND"
FUSED_JOINT_ENV = "ENT_FUSED_JOINT"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class ComputeBackends:
    """Which implementations compute a model's losses and joint lattices (the results agree up to float rounding).

    Attributes:
        rnnt: The transducer loss, one of :data:`RNNT_BACKENDS`.
        lattice: The emotion lattice losses, one of :data:`LATTICE_BACKENDS`.
        fused_joint: On CPU tensors, compute whole lattices of joints with at
            most 64 outputs with the fused kernels of :mod:`ent.kernels.fused_joint`;
            False: plain PyTorch.
    """

    rnnt: str = "auto"
    lattice: str = "auto"
    fused_joint: bool = True

    def __post_init__(self) -> None:
        if self.rnnt not in RNNT_BACKENDS:
            raise ValueError(f"unknown RNN-T loss backend {self.rnnt!r}; valid: {list(RNNT_BACKENDS)}")
        if self.lattice not in LATTICE_BACKENDS:
            raise ValueError(f"unknown lattice backend {self.lattice!r}; valid: {list(LATTICE_BACKENDS)}")
        if not isinstance(self.fused_joint, bool):
            raise ValueError(f"fused_joint must be true or false, got {self.fused_joint!r}")

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "ComputeBackends":
        """The defaults, overridden by ``ENT_RNNT_BACKEND``, ``ENT_LATTICE_BACKEND`` and ``ENT_FUSED_JOINT``.

        Raises:
            ValueError: On a value the variable does not accept, naming the variable.
        """
        env = os.environ if environ is None else environ
        default = cls()
        fused = env.get(FUSED_JOINT_ENV, "").strip().lower()
        if fused and fused not in _TRUE + _FALSE:
            raise ValueError(f"{FUSED_JOINT_ENV}={env[FUSED_JOINT_ENV]!r}: expected true or false")
        try:
            return cls(
                rnnt=env.get(RNNT_BACKEND_ENV) or default.rnnt,
                lattice=env.get(LATTICE_BACKEND_ENV) or default.lattice,
                fused_joint=default.fused_joint if not fused else fused in _TRUE,
            )
        except ValueError as exc:
            raise ValueError(f"{exc} (environment: {RNNT_BACKEND_ENV}, {LATTICE_BACKEND_ENV})") from None


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
