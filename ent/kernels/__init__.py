"""Kernels of ENT and the choice among them: one place for compiled code and its back ends.

* :mod:`ent.kernels.backends`: which back end runs for a device (``auto`` ->
  numba / cuda / numba_cuda / torch for the lattice losses, numba /
  torchaudio for the transducer loss) and the lattice kernels of each;
  :class:`ComputeBackends`, a model's run-time choice (environment variables
  ``ENT_RNNT_BACKEND``, ``ENT_LATTICE_BACKEND``, ``ENT_FUSED_JOINT``).
* :mod:`ent.kernels.availability`: whether numba (CPU, CUDA) can run here;
  :class:`BackendUnavailableError`.
* :mod:`ent.kernels.extension`: the CUDA C++ extension of ``ent/csrc``,
  built on first use and cached.
* :mod:`ent.kernels.lattice_types`: the kernels' inputs and interface.
* :mod:`ent.kernels.lattice_numba`: numba CPU and numba CUDA kernels of the
  fused emotion lattice and of a whole joint lattice.
* :mod:`ent.kernels.fused_joint`: autograd function of a tanh joint network
  over the whole lattice (numba CPU).
* :mod:`ent.kernels.rnnt_numba`: numba CPU forward-backward of the transducer loss.

Kernels know tensors only: nothing here imports :mod:`ent.nets`,
:mod:`ent.losses` or :mod:`ent.models`, and importing this package does not
import numba.
"""

from ent.kernels.availability import BackendUnavailableError, numba_available
from ent.kernels.backends import (
    LATTICE_BACKENDS,
    RNNT_BACKENDS,
    ComputeBackends,
    lattice_kernels,
    resolve_backend,
    resolve_rnnt_backend,
)

__all__ = [
    "BackendUnavailableError",
    "ComputeBackends",
    "LATTICE_BACKENDS",
    "RNNT_BACKENDS",
    "lattice_kernels",
    "numba_available",
    "resolve_backend",
    "resolve_rnnt_backend",
]
