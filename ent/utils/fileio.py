"""File helpers: atomic writes and line-numbered reading of Kaldi-style tables.

A Kaldi-style table is a UTF-8 text file with one ``<key> <value>`` entry per
line, the key being the first whitespace-delimited field.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator, List, NamedTuple, Union

from ent.utils.errors import DataError

PathLike = Union[str, Path]


class TableLine(NamedTuple):
    """One entry of a Kaldi-style table.

    Attributes:
        key: The first field (utterance, recording or speaker id).
        value: The rest of the line with surrounding whitespace removed
            (may be empty).
        lineno: 1-based line number in the file.
    """

    key: str
    value: str
    lineno: int


def read_lines(path: PathLike) -> List[str]:
    """Read a UTF-8 text file into lines without their line endings.

    Raises:
        DataError: If the file is missing or is not valid UTF-8 (the error
            names the first offending line).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except OSError as exc:
        raise DataError(path, None, f"cannot read file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = raw[: exc.start].count(b"\n") + 1
        raise DataError(path, lineno, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_table(path: PathLike, allow_empty_value: bool = False) -> List[TableLine]:
    """Read a Kaldi-style ``<key> <value>`` table, keeping line numbers.

    Blank lines are errors (Kaldi tools reject them too).

    Args:
        path: The table file.
        allow_empty_value: Accept lines that hold a key only.

    Returns:
        The entries in file order.

    Raises:
        DataError: On a missing file, invalid UTF-8, a blank line or a
            missing value.
    """
    entries: List[TableLine] = []
    for lineno, line in enumerate(read_lines(path), start=1):
        stripped = line.strip()
        if not stripped:
            raise DataError(path, lineno, "blank line")
        parts = stripped.split(maxsplit=1)
        value = parts[1].strip() if len(parts) > 1 else ""
        if not value and not allow_empty_value:
            raise DataError(path, lineno, f"'{parts[0]}' has no value")
        entries.append(TableLine(parts[0], value, lineno))
    return entries


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path`` and rename it into place on success.

    Readers never see a half-written file, and an exception leaves any
    previous version of ``path`` untouched.

    Args:
        path: Final destination.
        mode: ``"w"`` for text or ``"wb"`` for bytes.
        encoding: Text encoding (ignored in binary mode).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if "b" in mode:
            fh = os.fdopen(fd, mode)
        else:
            fh = os.fdopen(fd, mode, encoding=encoding, newline="\n")
        with fh:
            # mkstemp creates the file private (0600): give it the mode the file
            # already has, or the one a plain open() would give a new file.
            os.fchmod(fh.fileno(), _mode_for(path))
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _mode_for(path: Path) -> int:
    """Permission bits for (re)writing ``path``: its current ones, else 0666 minus the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_table(path: PathLike, entries: "dict[str, str]") -> None:
    """Atomically write ``<key> <value>`` lines sorted by key (C locale order)."""
    with atomic_write(path) as fh:
        for key in sorted(entries):
            fh.write(f"{key} {entries[key]}\n")
