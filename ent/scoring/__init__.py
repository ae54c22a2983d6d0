"""Scoring of ENT outputs against a reference data directory.

Modules:

* :mod:`ent.scoring.asr`: word and character error rates (``text``).
* :mod:`ent.scoring.emotion`: utterance-level emotion recognition (``utt2emo``):
  weighted/unweighted accuracy, macro F1, confusion matrix.
* :mod:`ent.scoring.diarization`: emotion diarization error rate (EDER) of the
  ZED benchmark and frame accuracy (``emo_segments``, ``frame_emotions``).
* :mod:`ent.scoring.results`: ESPnet-style ``RESULTS.md`` and the final
  summary table of a recipe.

This package module only holds the table reader shared by the scorers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

from ent.utils.errors import DataError
from ent.utils.fileio import TableLine, read_table

PathLike = Union[str, Path]


def read_keyed_table(path: PathLike, allow_empty_value: bool = False) -> Dict[str, TableLine]:
    """Read a Kaldi-style table whose keys must be unique.

    Args:
        path: The table file (``text``, ``utt2emo``, ``utt2dur``...).
        allow_empty_value: Accept lines holding a key only (e.g. an empty
            recognition result in a hypothesis ``text``).

    Returns:
        key -> entry (value and 1-based line number), in file order.

    Raises:
        DataError: On a missing or malformed file, a blank line, a missing
            value (unless allowed), a repeated key, or an empty file.
    """
    out: Dict[str, TableLine] = {}
    for entry in read_table(path, allow_empty_value=allow_empty_value):
        if entry.key in out:
            raise DataError(
                path, entry.lineno, f"duplicate key '{entry.key}' (first on line {out[entry.key].lineno})"
            )
        out[entry.key] = entry
    if not out:
        raise DataError(path, None, "file is empty")
    return out
