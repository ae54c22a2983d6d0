"""Advisory file locks that die with their process.

:class:`FileLock` takes an exclusive ``fcntl.flock`` on a lock file and
writes the owner's pid and command line into it. The kernel drops the lock
when the process ends, however it ends (even ``kill -9``), so a lock is never
stale; a lock file left behind by a killed process is simply taken by the
next one. (``flock`` works on local file systems; on NFS it is emulated with
POSIX locks by Linux, which also end with the process.)

Used for one writer per decoding directory
(:class:`~ent.decoding.writer.DecodeWriter`) and one build per CUDA
extension cache (:mod:`ent.kernels.extension`).
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Callable, Optional, Type, Union

PathLike = Union[str, Path]


class LockBusyError(RuntimeError):
    """Another process holds the lock; ``owner`` is what it wrote into the lock file."""

    def __init__(self, path: PathLike, owner: str) -> None:
        self.path = str(path)
        self.owner = owner
        super().__init__(f"{path}: locked by {owner or 'another process'}")


class FileLock:
    """An exclusive lock on ``path`` (created if needed), held until :meth:`release`.

    Args:
        path: The lock file.
        timeout: Seconds to wait for a busy lock: 0 (default) fails at once
            with :class:`LockBusyError`; ``None`` waits for ever.
        on_wait: Called once with the owner's description when the lock is
            busy and we wait for it.
    """

    def __init__(self, path: PathLike, timeout: Optional[float] = 0.0,
                 on_wait: Optional[Callable[[str], None]] = None) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.on_wait = on_wait
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> "FileLock":
        """Take the lock (see the class arguments for waiting).

        Raises:
            LockBusyError: If another process holds it after ``timeout``.
        """
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        start = time.monotonic()
        waited = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    owner = read_owner(self.path)
                    if self.timeout is not None and time.monotonic() - start >= self.timeout:
                        raise LockBusyError(self.path, owner) from None
                    if not waited and self.on_wait is not None:
                        self.on_wait(owner)
                    waited = True
                    time.sleep(0.1)
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:300]}\n".encode("utf-8", "replace"))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (the file stays; an unlocked file means nothing). Idempotent."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __del__(self) -> None:  # an abandoned lock object gives its lock up
        try:
            self.release()
        except Exception:
            pass

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.release()


def read_owner(path: PathLike) -> str:
    """What the lock's holder wrote into it (``pid N: command``), or ``""``."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
