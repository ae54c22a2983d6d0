"""Whether the optional kernel packages can run here (each checked once, imported lazily)."""

from __future__ import annotations

from functools import lru_cache
from typing import Tuple


class BackendUnavailableError(RuntimeError):
    """A back end that was asked for explicitly cannot run here."""


@lru_cache(maxsize=None)
def numba_available() -> bool:
    """Whether the numba package imports (every numba CPU kernel of ENT needs it; imported on first use)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=None)
def numba_cuda_state() -> Tuple[bool, bool]:
    """(usable, simulated): whether numba CUDA can run, and whether it is the simulator."""
    try:
        from numba import config as numba_config
        from numba import cuda
    except ImportError:
        return False, False
    simulated = bool(numba_config.ENABLE_CUDASIM)
    return bool(simulated or cuda.is_available()), simulated
