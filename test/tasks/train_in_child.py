"""Run ``ent.bin.train`` in a child process with its output in a log file (for the kill tests).

The fault-injection tests start training through a multiprocessing
``forkserver`` that has imported ENT, ESPnet and torch once, so that each of
the many runs they kill and resume starts in a fraction of a second. The
target must be importable by name in the fork server: this module is (the
tests put ``test/tasks`` on ``sys.path``).
"""

from __future__ import annotations

import os
import sys
from typing import Dict, List


def train_logged(argv: List[str], log_path: str, env: Dict[str, str]) -> None:
    """``ent.bin.train.main(argv)`` with stdout and stderr appended to ``log_path`` and ``env`` set."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.update(env)
    from ent.bin import train

    print(f"=== run pid {os.getpid()}", file=sys.stderr, flush=True)
    train.main(argv)
