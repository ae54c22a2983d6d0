"""Checkpoint files (``*.pth``): weights-only loading and atomic saving.

Every ``torch.load`` of a model or checkpoint that ENT (or ESPnet's trainer
under ENT) wrote goes through :func:`load_checkpoint`. It passes
``weights_only=True`` explicitly: PyTorch's unpickler then builds tensors and
plain data only and refuses any other Python object, so a crafted ``.pth``
cannot run code; the environment variable ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
overrides only a ``torch.load`` that leaves ``weights_only`` unset, never an
explicit one. The few non-tensor types ESPnet's trainer puts into
``checkpoint.pth`` (NumPy scalars and ``datetime.timedelta`` in the reporter's
statistics) are allowed for the duration of the load.

:func:`save_checkpoint` writes a temporary file beside the target and renames
it into place, so a process killed while saving leaves the previous version
intact and never a truncated file.
"""

from __future__ import annotations

import datetime
import os
import pickle
import re
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Union

import numpy as np
import torch

from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write

PathLike = Union[str, Path]

#: Seconds :func:`save_checkpoint` sleeps between writing the temporary file
#: and renaming it into place. For fault-injection tests only (it widens the
#: window in which a kill lands mid-save); unset or 0 in normal use.
SAVE_PAUSE_ENV = "ENT_TEST_CHECKPOINT_SAVE_PAUSE"


def _plain_globals() -> List[Any]:
    """The non-tensor types of ESPnet's reporter state: NumPy scalars, their dtypes, timedelta."""
    scalar_reconstructor = np.float64(0.0).__reduce__()[0]  # numpy(._core).multiarray.scalar
    return [scalar_reconstructor, np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.int64)),
            type(np.dtype(np.float32)), datetime.timedelta]


def load_checkpoint(path: PathLike, map_location: Optional[Any] = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with failures as one-line errors.

    Args:
        path: A ``.pth`` file: a model state dict, ``checkpoint.pth`` of the
            trainer, an averaged model.
        map_location: As for ``torch.load``.

    Returns:
        The loaded object (tensors and plain containers only).

    Raises:
        DataError: Naming ``path`` when the file is missing, is refused (it
            holds a Python object other than tensors and plain data, such as
            a crafted pickle that would run code), or is unreadable
            (truncated, corrupt, not a PyTorch file).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "not found")
    if path.stat().st_size == 0:
        raise DataError(path, None, "unreadable: empty file")
    try:
        with torch.serialization.safe_globals(_plain_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _refusal_reason(str(exc))
        if reason is not None:
            raise DataError(path, None, f"refused: it holds {reason}, not only tensors and plain "
                                        f"data (a checkpoint written by ENT never does)") from None
        raise DataError(path, None, f"unreadable (corrupt or not a PyTorch file): {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - any other failure of torch.load: truncated, corrupt, wrong format
        raise DataError(path, None, f"unreadable (truncated, corrupt or not a PyTorch file): "
                                    f"{_first_line(exc)}") from None


def save_checkpoint(obj: Any, path: PathLike, before_replace: Optional[Callable[[], None]] = None) -> None:
    """``torch.save(obj, path)`` through a temporary file renamed into place.

    A reader (or a run resumed after a kill) sees the previous version of
    ``path`` or the complete new one, never a part of it.

    Args:
        obj: What to save (a state dict, or the trainer's checkpoint dict).
        path: The destination.
        before_replace: Called once the new version is written in full, just
            before it replaces ``path`` (e.g. to keep the old version).
    """
    with atomic_write(path, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        _test_pause()
        if before_replace is not None:
            before_replace()


def _test_pause() -> None:
    pause = os.environ.get(SAVE_PAUSE_ENV)
    if pause:
        time.sleep(float(pause))


def _refusal_reason(message: str) -> Optional[str]:
    """What the weights-only unpickler refused (None for unpickling errors of another kind)."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    if found:
        return f"the Python object {found.group(1)}"
    for line in message.splitlines():
        if "unsupported" in line.lower():
            return line.strip().split("WeightsUnpickler error: ")[-1]
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else ""
    line = line.split(". ")[0]  # torch appends advice sentences
    return line if isinstance(exc, (RuntimeError, pickle.UnpicklingError)) and line else \
        f"{type(exc).__name__}: {line}".rstrip(": ")
