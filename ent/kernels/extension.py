"""The CUDA C++ lattice kernels of ``ent/csrc``, built with ``torch.utils.cpp_extension`` on first use.

The build is cached in :func:`extension_build_dir` and redone only when a
source file changes. :func:`extension_status` builds (or loads) it once and
says why it cannot; :func:`load_extension` raises instead;
:func:`extension_kernels` wraps it as the ``cuda`` back end of the fused
lattice losses (:class:`~ent.kernels.lattice_types.LatticeKernels`).

``torch.utils.cpp_extension`` guards a build directory with a bare ``lock``
file that it deletes when the build ends; a build that is killed leaves the
file behind and every later load waits on it for ever. ENT therefore builds
while holding an ``fcntl`` lock of its own (``ent_build.lock``, released by
the kernel when its process dies, see :mod:`ent.utils.locking`): holding it,
a torch ``lock`` file can only be a killed build's, and is removed with a
warning naming it (:func:`clear_stale_build_lock`). A process that finds
another ENT process building waits for it, saying which one.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Optional, Tuple

import torch
from torch import Tensor

from ent.kernels.availability import BackendUnavailableError
from ent.kernels.lattice_types import JointInputs, LatticeKernels, NodeRuns
from ent.utils.locking import FileLock

_log = logging.getLogger(__name__)

EXTENSION_NAME = "ent_lattice_pool"
CSRC_DIR = Path(__file__).resolve().parent.parent / "csrc"
EXTENSION_SOURCES = ("lattice_pool.cpp", "lattice_pool.cu")
BUILD_LOCK = "ent_build.lock"
"""ENT's lock of the build directory (held while building or loading)."""
TORCH_BATON = "lock"
"""The lock file of ``torch.utils.cpp_extension`` (a ``FileBaton``) in the build directory."""


def extension_build_dir() -> Path:
    """Where the CUDA extension is built and cached.

    ``$ENT_EXTENSIONS_DIR`` if set, else ``$XDG_CACHE_HOME/ent/extensions``
    (``~/.cache/ent/extensions``), in a folder named for the PyTorch and CUDA
    versions; the build is redone only when a source file changes.
    """
    root = os.environ.get("ENT_EXTENSIONS_DIR")
    if not root:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(cache) / "ent" / "extensions")
    return Path(root) / f"torch{torch.__version__}-cuda{torch.version.cuda}"


@lru_cache(maxsize=None)
def extension_status() -> Tuple[Optional[ModuleType], str]:
    """Build (or load from the cache) the extension once: ``(module, "")`` or ``(None, reason)``."""
    if torch.version.cuda is None:
        return None, "this PyTorch was built without CUDA"
    missing = [name for name in EXTENSION_SOURCES if not (CSRC_DIR / name).is_file()]
    if missing:
        return None, f"sources {missing} not found in {CSRC_DIR}"
    from torch.utils import cpp_extension

    if cpp_extension.CUDA_HOME is None:
        return None, "no CUDA toolkit (nvcc) found; set CUDA_HOME"
    if not (Path(cpp_extension.CUDA_HOME) / "include" / "cuda_runtime.h").is_file():
        home = cpp_extension.CUDA_HOME
        return None, f"CUDA_HOME={home} has no include/cuda_runtime.h; set CUDA_HOME to the toolkit"
    if not cpp_extension.is_ninja_available():
        return None, "ninja is not installed (pip install ninja)"
    build_dir = extension_build_dir()
    build_dir.mkdir(parents=True, exist_ok=True)
    _log.info(f"loading the CUDA lattice extension (built on first use, cached in {build_dir})")
    try:
        with build_lock(build_dir):
            module = cpp_extension.load(
                name=EXTENSION_NAME,
                sources=[str(CSRC_DIR / name) for name in EXTENSION_SOURCES],
                extra_cflags=["-O3"],
                extra_cuda_cflags=["-O3"],
                build_directory=str(build_dir),
                verbose=False,
            )
    except (RuntimeError, OSError, ImportError) as err:
        return None, f"building in {build_dir} failed: {first_error_line(str(err)) or type(err).__name__}"
    return module, ""


def build_lock(build_dir: Path, timeout: Optional[float] = None) -> FileLock:
    """ENT's lock of ``build_dir``, taken (waiting for another ENT build), with a stale torch lock removed.

    Args:
        build_dir: The extension's build directory.
        timeout: Seconds to wait for another process's build (None: as long as it takes).

    Returns:
        The held lock (a context manager; release it when the build is loaded).

    Raises:
        LockBusyError: If another process still builds after ``timeout``.
    """
    build_dir = Path(build_dir)

    def waiting(owner: str) -> None:
        _log.warning(f"waiting for another build of the CUDA lattice extension in {build_dir} "
                     f"({owner or 'owner unknown'})")

    lock = FileLock(build_dir / BUILD_LOCK, timeout=timeout, on_wait=waiting).acquire()
    try:
        clear_stale_build_lock(build_dir)
    except BaseException:
        lock.release()
        raise
    return lock


def clear_stale_build_lock(build_dir: Path) -> bool:
    """Remove torch's ``lock`` file from ``build_dir``; call only while holding :func:`build_lock`.

    Holding ENT's lock, no other ENT build is running, so the file is what a
    killed build left behind (torch would wait on it for ever).

    Returns:
        Whether a stale lock was removed.

    Raises:
        OSError: If it cannot be removed; the message says which file to delete.
    """
    baton = Path(build_dir) / TORCH_BATON
    if not baton.exists():
        return False
    try:
        baton.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise OSError(f"{baton} is a stale lock of a killed build and cannot be removed ({exc.strerror}): "
                      "delete it by hand") from None
    _log.warning(f"removed {baton}, the stale lock of a killed build of the CUDA lattice extension")
    return True


def first_error_line(log: str) -> str:
    """The first compiler line that says ``error`` in a build log (else its first line)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() and not line.startswith("Error building extension"):
            return line
    return lines[0] if lines else ""


def load_extension() -> ModuleType:
    """The compiled CUDA extension, built on first use (cached in :func:`extension_build_dir`).

    Raises:
        BackendUnavailableError: with a one-line reason when it cannot be built.
    """
    module, reason = extension_status()
    if module is None:
        raise BackendUnavailableError(f"the CUDA lattice extension cannot be built: {reason}")
    return module


def extension_kernels() -> LatticeKernels:
    """The ``cuda`` back end's kernels (builds the extension on first use)."""
    module = load_extension()

    def log_probs(joint: JointInputs, runs: NodeRuns, neutral: int) -> Tuple[Tensor, Optional[Tensor]]:
        outs = module.log_probs(*joint, *runs, int(neutral))
        return outs[0], (outs[1] if len(outs) > 1 else None)

    def backward(joint: JointInputs, runs: NodeRuns, run_weight: Tensor) -> Tuple[Tensor, ...]:
        return tuple(module.backward(*joint, *runs, run_weight))

    return LatticeKernels(log_probs, backward)
