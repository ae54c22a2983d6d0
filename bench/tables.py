"""Markdown tables for the benchmark scripts (imported as ``bench.tables``)."""

from __future__ import annotations

from typing import Sequence


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A right-aligned markdown table of ``rows`` under ``headers``."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
