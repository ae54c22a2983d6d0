"""Errors that point the user at the offending file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, Path]


class DataError(ValueError):
    """A problem with user-provided data, reported as one line.

    The message has the form ``<path>:<line>: <what is wrong>`` (the line is
    omitted when the problem is not tied to one line), so that editors and
    terminals can jump to the place.
    """

    def __init__(self, path: Optional[PathLike], line: Optional[int], message: str) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.message = message
        super().__init__(format_location(path, line, message))


def format_location(path: Optional[PathLike], line: Optional[int], message: str) -> str:
    """Format ``path:line: message`` (parts that are ``None`` are left out)."""
    where = ""
    if path is not None:
        where = str(path)
        if line is not None:
            where += f":{line}"
        where += ": "
    return where + message
