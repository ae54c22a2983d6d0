"""Kaldi-style data directories.

A data directory holds one utterance per line in each of these UTF-8 text
files, sorted by key in C-locale (byte) order:

==============  ==============================================  ===========
file            line format                                     required
==============  ==============================================  ===========
wav.scp         ``<recording> <audio path>``                    yes
text            ``<utt> <transcript>``                          yes
utt2spk         ``<utt> <speaker>``                             yes
utt2emo         ``<utt> <emotion>``                             yes
segments        ``<utt> <recording> <start s> <end s>``          no
emo_segments    ``<utt> <start s> <end s> <emotion>``            no
utt2dur         ``<utt> <duration s>``                          no
==============  ==============================================  ===========

Without ``segments`` each recording is one utterance (recording id = utterance
id). With ``segments`` utterances are cut from the recordings on the fly.
``emo_segments`` lists the emotional intervals of an utterance (seconds from
the utterance start, several lines per utterance allowed); the rest of the
utterance is neutral. Relative audio paths are resolved against the current
directory, as in Kaldi (recipes run from their own folder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from ent.data.audio import load_audio
from ent.utils.errors import DataError
from ent.utils.fileio import TableLine, read_table

PathLike = Union[str, Path]

REQUIRED_FILES: Tuple[str, ...] = ("wav.scp", "text", "utt2spk", "utt2emo")
OPTIONAL_FILES: Tuple[str, ...] = ("segments", "emo_segments", "utt2dur")
PER_UTT_FILES: Tuple[str, ...] = ("text", "utt2spk", "utt2emo", "utt2dur", "segments")


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
    if not np.isfinite(out):
        raise DataError(path, lineno, f"{field_name} '{value}' is not finite")
    return out


@dataclass
class DataDir:
    """An in-memory view of a Kaldi-style data directory.

    Attributes:
        path: The directory.
        wav_scp: recording id -> audio path (as written in the file).
        text: utt -> transcript (may be empty when read with
            ``allow_empty_text``; the validator reports it).
        utt2spk: utt -> speaker.
        utt2emo: utt -> emotion name.
        segments: utt -> :class:`Segment`, or ``None`` without a segments file.
        emo_segments: utt -> emotional intervals (only utterances that have
            some; empty without the file).
        utt2dur: utt -> duration in seconds, or ``None`` without the file.
        lines: file name -> key -> 1-based line number (for error messages).
    """

    path: Path
    wav_scp: Dict[str, str]
    text: Dict[str, str]
    utt2spk: Dict[str, str]
    utt2emo: Dict[str, str]
    segments: Optional[Dict[str, Segment]] = None
    emo_segments: Dict[str, List[EmoInterval]] = field(default_factory=dict)
    utt2dur: Optional[Dict[str, float]] = None
    lines: Dict[str, Dict[str, int]] = field(default_factory=dict)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        path: PathLike,
        require: Tuple[str, ...] = REQUIRED_FILES,
        allow_empty_text: bool = False,
    ) -> "DataDir":
        """Read a data directory.

        Args:
            path: The directory.
            require: Files that must exist (others are read when present).
            allow_empty_text: Accept utterances with an empty transcript.

        Raises:
            DataError: If a required file is missing, a line is malformed or
                a key is repeated (the message names the file and line).
        """
        path = Path(path)
        if not path.is_dir():
            raise DataError(path, None, "data directory not found")
        for name in require:
            if not (path / name).is_file():
                raise DataError(path / name, None, "required file not found")

        lines: Dict[str, Dict[str, int]] = {}

        def table(name: str, allow_empty: bool = False) -> Optional[List[TableLine]]:
            file = path / name
            if not file.is_file():
                return None
            entries = read_table(file, allow_empty_value=allow_empty)
            seen: Dict[str, int] = {}
            for e in entries:
                if e.key in seen:
                    raise DataError(file, e.lineno, f"duplicate key '{e.key}' (first on line {seen[e.key]})")
                seen[e.key] = e.lineno
            lines[name] = seen
            return entries

        def simple(name: str, allow_empty: bool = False) -> Dict[str, str]:
            entries = table(name, allow_empty)
            return {} if entries is None else {e.key: e.value for e in entries}

        wav_scp = simple("wav.scp")
        for rec, value in wav_scp.items():
            if value.endswith("|"):
                raise DataError(
                    path / "wav.scp", lines["wav.scp"][rec],
                    "piped commands are not supported; convert the audio to files first",
                )
        text = simple("text", allow_empty=allow_empty_text)
        utt2spk = simple("utt2spk")
        utt2emo = simple("utt2emo")

        segments: Optional[Dict[str, Segment]] = None
        seg_entries = table("segments")
        if seg_entries is not None:
            segments = {}
            for e in seg_entries:
                fields = e.value.split()
                if len(fields) != 3:
                    raise DataError(path / "segments", e.lineno,
                                    "expected '<utt> <recording> <start> <end>'")
                start = parse_float(path / "segments", e.lineno, "start", fields[1])
                end = parse_float(path / "segments", e.lineno, "end", fields[2])
                if start < 0 or (end >= 0 and end <= start):
                    raise DataError(path / "segments", e.lineno,
                                    f"invalid interval {fields[1]}-{fields[2]}")
                segments[e.key] = Segment(fields[0], start, end)

        utt2dur: Optional[Dict[str, float]] = None
        dur_entries = table("utt2dur")
        if dur_entries is not None:
            utt2dur = {}
            for e in dur_entries:
                dur = parse_float(path / "utt2dur", e.lineno, "duration", e.value)
                if dur <= 0:
                    raise DataError(path / "utt2dur", e.lineno, f"duration {e.value} is not positive")
                utt2dur[e.key] = dur

        emo_segments: Dict[str, List[EmoInterval]] = {}
        emo_file = path / "emo_segments"
        if emo_file.is_file():
            emo_lines: Dict[str, int] = {}
            for e in read_table(emo_file):
                fields = e.value.split()
                if len(fields) != 3:
                    raise DataError(emo_file, e.lineno, "expected '<utt> <start> <end> <emotion>'")
                start = parse_float(emo_file, e.lineno, "start", fields[0])
                end = parse_float(emo_file, e.lineno, "end", fields[1])
                if start < 0 or end <= start:
                    raise DataError(emo_file, e.lineno, f"invalid interval {fields[0]}-{fields[1]}")
                emo_segments.setdefault(e.key, []).append(EmoInterval(start, end, fields[2], e.lineno))
                emo_lines.setdefault(e.key, e.lineno)
            for utt, ivs in emo_segments.items():
                ivs.sort(key=lambda iv: iv.start)
                for a, b in zip(ivs, ivs[1:]):
                    if b.start < a.end:
                        raise DataError(emo_file, b.lineno,
                                        f"interval of '{utt}' overlaps the one on line {a.lineno}")
            lines["emo_segments"] = emo_lines

        return cls(path, wav_scp, text, utt2spk, utt2emo, segments, emo_segments, utt2dur, lines)

    # ------------------------------------------------------------------ queries
    @property
    def utt_ids(self) -> List[str]:
        """Utterance ids in C-locale order (keys of ``text``)."""
        return sorted(self.text)

    def audio_entry(self, utt: str) -> Tuple[str, Optional[float], Optional[float]]:
        """Where an utterance's audio lies: ``(path, start_s, end_s)``.

        ``start_s``/``end_s`` are ``None`` without a segments file.

        Raises:
            DataError: If the utterance or its recording is unknown.
        """
        if self.segments is not None:
            if utt not in self.segments:
                raise DataError(self.path / "segments", None, f"utterance '{utt}' not found")
            seg = self.segments[utt]
            rec, start, end = seg.recording, seg.start, seg.end
        else:
            rec, start, end = utt, None, None
        if rec not in self.wav_scp:
            raise DataError(self.path / "wav.scp", None, f"recording '{rec}' not found")
        return self.wav_scp[rec], start, end

    def load_audio(self, utt: str) -> np.ndarray:
        """Load an utterance as 16 kHz mono float32 audio, shape (N,).

        Raises:
            DataError: Naming ``wav.scp`` and the line of the recording when
                the audio is missing or unreadable.
        """
        path, start, end = self.audio_entry(utt)
        rec = self.segments[utt].recording if self.segments is not None else utt
        try:
            return load_audio(path, start, end)
        except DataError as exc:
            raise DataError(
                self.path / "wav.scp", self.lines.get("wav.scp", {}).get(rec), exc.message + f" ({path})"
            ) from None

    def emotion_intervals(self, utt: str) -> List[EmoInterval]:
        """Emotional intervals of an utterance (empty: no interval labels)."""
        return self.emo_segments.get(utt, [])
