"""Strict JSON output: never a bare ``NaN`` or ``Infinity``.

Python's :mod:`json` writes non-finite floats as ``NaN``/``Infinity`` by
default, which is not JSON (``jq``, JavaScript and most parsers refuse the
whole file). ENT's JSON outputs go through :func:`dumps`, which writes a
non-finite number as ``null`` (a score that could not be computed) and
refuses anything else that is not JSON. The other JSON files the toolkit
writes (stamps, reports) pass ``allow_nan=False`` to :func:`json.dump`, so a
NaN there is an error rather than an unreadable file.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf) replaced by ``None``, recursively.

    Dicts, lists and tuples are rebuilt (tuples as lists, as JSON reads them
    back); anything else is returned as is. numpy scalars are converted by
    their ``item()``.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    item = getattr(obj, "item", None)
    if callable(item) and getattr(obj, "shape", None) == ():  # a numpy or torch scalar
        return finite_or_none(item())
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` of :func:`finite_or_none` ``(obj)``, with ``allow_nan=False``."""
    return json.dumps(finite_or_none(obj), allow_nan=False, **kwargs)


def dump(obj: Any, fh: Any, **kwargs: Any) -> None:
    """:func:`json.dump` of :func:`finite_or_none` ``(obj)``, with ``allow_nan=False``."""
    json.dump(finite_or_none(obj), fh, allow_nan=False, **kwargs)


def has_non_finite(obj: Any) -> bool:
    """Whether ``obj`` holds a non-finite float anywhere (see :func:`finite_or_none`)."""
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(has_non_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(has_non_finite(v) for v in obj)
    item = getattr(obj, "item", None)
    if callable(item) and getattr(obj, "shape", None) == ():
        return has_non_finite(item())
    return False
