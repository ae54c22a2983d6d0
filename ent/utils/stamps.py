"""Content-keyed stamps: a finished step is reused only while its inputs are the same.

A stamp is a small JSON file written when a step finishes. It records the
SHA-256 of every input file (``null`` for a file that does not exist) and the
step's options as strings. :func:`stale_reasons` compares a stamp with the
inputs as they are now and says what changed; the step is redone when
anything did. Unlike a comparison of modification times, this neither redoes
a step whose inputs were only touched or copied, nor reuses one whose input
was replaced by an older file or edited within the same second.

Used by the CMVN statistics (:mod:`ent.bin.compute_cmvn_stats`) and, through
``python -m ent.bin.stamp``, by ``ent.sh`` for decodings and the token LM.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from ent.utils.fileio import atomic_write

PathLike = Union[str, Path]
STAMP_VERSION = 1
_CHUNK = 1 << 20


def file_digest(path: PathLike) -> Optional[str]:
    """SHA-256 (hex) of a file's content; ``None`` if it does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def text_digest(text: str) -> str:
    """SHA-256 (hex) of a string (UTF-8), e.g. of a list of utterance ids."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def input_key(files: Sequence[PathLike] = (), values: Sequence[str] = ()) -> Dict[str, object]:
    """What a step's result depends on: the content of ``files`` and the ``values``.

    Args:
        files: Input files, named as given (a missing one counts as ``null``).
        values: Options and other inputs as strings (order matters).

    Returns:
        The stamp content: ``{"version", "files": {path: sha256 or None}, "values": [...]}``.
    """
    return {"version": STAMP_VERSION, "files": {str(f): file_digest(f) for f in files},
            "values": [str(v) for v in values]}


def read_stamp(path: PathLike) -> Optional[Dict[str, object]]:
    """A stamp's content, or ``None`` if it is missing or not a stamp (e.g. an empty ``.done`` of old)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == STAMP_VERSION else None


def stale_reasons(path: PathLike, key: Dict[str, object]) -> List[str]:
    """Why the stamp ``path`` does not match ``key`` (empty: it does, the step can be reused).

    Returns:
        Short phrases, e.g. ``["no stamp"]``, ``["changed: conf/decode.yaml"]``,
        ``["options changed"]``.
    """
    old = read_stamp(path)
    if old is None:
        return ["no stamp" if not Path(path).exists() else "a stamp of an older version"]
    reasons = []
    old_files = old.get("files") or {}
    new_files = key["files"]
    assert isinstance(new_files, dict)
    changed = [f for f in new_files if f not in old_files or old_files[f] != new_files[f]]
    changed += [f for f in old_files if f not in new_files]
    if changed:
        reasons.append("changed: " + ", ".join(changed))
    if old.get("values") != key["values"]:
        reasons.append("options changed")
    return reasons


def write_stamp(path: PathLike, key: Dict[str, object]) -> None:
    """Write a stamp atomically."""
    with atomic_write(path) as fh:
        json.dump(key, fh, indent=1, allow_nan=False)
        fh.write("\n")
