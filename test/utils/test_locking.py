"""FileLock: exclusive, reports its owner, waits or fails, and dies with its process."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ent.utils.locking import FileLock, LockBusyError

HOLD = """
import sys, time
sys.path.insert(0, {root!r})
from ent.utils.locking import FileLock
lock = FileLock({path!r}).acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[1]))
"""
ROOT = str(Path(__file__).resolve().parents[2])


def holder(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(root=ROOT, path=str(path)), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_held_lock_is_refused_naming_its_owner_and_freed_by_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "lock"
    proc = holder(path, 60)
    try:
        with pytest.raises(LockBusyError) as err:
            FileLock(path).acquire()
        assert err.value.owner.startswith(f"pid {proc.pid}: -c")
    finally:
        proc.kill()
        proc.wait()
    with FileLock(path) as lock:  # the lock died with its process (the file is still there)
        assert lock.held and path.read_text().startswith("pid ")
    assert path.read_text() == ""


def test_waiting_for_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    proc = holder(path, 1.0)
    seen = []
    start = time.monotonic()
    with pytest.raises(LockBusyError):
        FileLock(path, timeout=0.3, on_wait=seen.append).acquire()
    assert len(seen) == 1 and seen[0].startswith(f"pid {proc.pid}")
    with FileLock(path, timeout=None):  # waits until the holder ends
        assert time.monotonic() - start >= 0.9
    proc.wait()
