"""Line parsers of the Kaldi tables of a data directory: one per file format.

The data layer (:class:`~ent.data.datadir.DataDir`), the validator
(:mod:`ent.data.validate`) and the scorer (:mod:`ent.scoring.diarization`)
parse every line with these functions, so that a file means the same to each
and an error names the same file, line and problem (:class:`DataError`).
Each parser takes the file, the 1-based line number and the value (the line
after its key, stripped); the callers read the lines
(:func:`ent.utils.fileio.read_table`) and decide what a repeated key or a
bad line means to them.

==============  ==============================================  ======================
file            line format                                     parser
==============  ==============================================  ======================
wav.scp         ``<recording> <audio path>``                    :func:`parse_wav_scp`
segments        ``<utt> <recording> <start s> <end s>``          :func:`parse_segment`
emo_segments    ``<utt> <start s> <end s> <emotion>``            :func:`parse_emo_interval`
utt2dur         ``<utt> <duration s>``                          :func:`parse_duration`
==============  ==============================================  ======================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Sequence, Tuple, Union

from ent.utils.errors import DataError

PathLike = Union[str, Path]


@dataclass(frozen=True)
class Segment:
    """A cut of a recording (``segments`` line)."""

    recording: str
    start: float
    end: float


@dataclass(frozen=True)
class EmoInterval:
    """An emotional interval of an utterance (``emo_segments`` line).

    Times are seconds from the start of the utterance.
    """

    start: float
    end: float
    emotion: str
    lineno: int = field(default=0, compare=False)


def parse_float(path: PathLike, lineno: int, field_name: str, value: str) -> float:
    """Parse a float field, raising a :class:`DataError` naming the line."""
    try:
        out = float(value)
    except ValueError:
        raise DataError(path, lineno, f"{field_name} '{value}' is not a number") from None
    if not math.isfinite(out):
        raise DataError(path, lineno, f"{field_name} '{value}' is not finite")
    return out


def parse_wav_scp(path: PathLike, lineno: int, value: str) -> str:
    """The audio path of a ``wav.scp`` line (piped commands are refused)."""
    if value.endswith("|"):
        raise DataError(path, lineno, "piped commands are not supported; convert the audio to files first")
    return value


def parse_segment(path: PathLike, lineno: int, value: str) -> Segment:
    """A ``segments`` line: ``<recording> <start> <end>`` (a negative end: to the end of the recording)."""
    fields = value.split()
    if len(fields) != 3:
        raise DataError(path, lineno, "expected '<utt> <recording> <start> <end>'")
    start = parse_float(path, lineno, "start", fields[1])
    end = parse_float(path, lineno, "end", fields[2])
    if start < 0 or (end >= 0 and end <= start):
        raise DataError(path, lineno, f"invalid interval {fields[1]}-{fields[2]}")
    return Segment(fields[0], start, end)


def parse_emo_interval(path: PathLike, lineno: int, value: str) -> EmoInterval:
    """An ``emo_segments`` line: ``<start> <end> <emotion>`` (the label is not checked here)."""
    fields = value.split()
    if len(fields) != 3:
        raise DataError(path, lineno, "expected '<utt> <start> <end> <emotion>'")
    start = parse_float(path, lineno, "start", fields[0])
    end = parse_float(path, lineno, "end", fields[1])
    if start < 0 or end <= start:
        raise DataError(path, lineno, f"invalid interval {fields[0]}-{fields[1]}")
    return EmoInterval(start, end, fields[2], lineno)


def parse_duration(path: PathLike, lineno: int, value: str) -> float:
    """A ``utt2dur`` line: a positive duration in seconds."""
    dur = parse_float(path, lineno, "duration", value)
    if dur <= 0:
        raise DataError(path, lineno, f"duration {value} is not positive")
    return dur


def overlapping_intervals(
    intervals: Sequence[EmoInterval], eps: float = 0.0
) -> List[Tuple[EmoInterval, EmoInterval]]:
    """Pairs of one utterance's intervals that overlap, each ``(earlier, later)``.

    The intervals are taken in order of their start (ties: in the given
    order); an interval overlaps the one before it when it starts more than
    ``eps`` before that one ends.
    """
    ordered = sorted(intervals, key=lambda iv: iv.start)
    return [(a, b) for a, b in zip(ordered, ordered[1:]) if b.start < a.end - eps]
