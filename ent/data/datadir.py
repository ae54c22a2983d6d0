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
directory, as in Kaldi (recipes run from their own folder). Lines are parsed
by :mod:`ent.data.tables`, as in the validator and the scorer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from ent.data.audio import load_audio
from ent.data.tables import (
    EmoInterval,
    Segment,
    overlapping_intervals,
    parse_duration,
    parse_emo_interval,
    parse_segment,
    parse_wav_scp,
)
from ent.utils.errors import DataError
from ent.utils.fileio import TableLine, read_table

PathLike = Union[str, Path]

REQUIRED_FILES: Tuple[str, ...] = ("wav.scp", "text", "utt2spk", "utt2emo")
OPTIONAL_FILES: Tuple[str, ...] = ("segments", "emo_segments", "utt2dur")
PER_UTT_FILES: Tuple[str, ...] = ("text", "utt2spk", "utt2emo", "utt2dur", "segments")


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
            parse_wav_scp(path / "wav.scp", lines["wav.scp"][rec], value)
        text = simple("text", allow_empty=allow_empty_text)
        utt2spk = simple("utt2spk")
        utt2emo = simple("utt2emo")

        segments: Optional[Dict[str, Segment]] = None
        seg_entries = table("segments")
        if seg_entries is not None:
            segments = {}
            for e in seg_entries:
                segments[e.key] = parse_segment(path / "segments", e.lineno, e.value)

        utt2dur: Optional[Dict[str, float]] = None
        dur_entries = table("utt2dur")
        if dur_entries is not None:
            utt2dur = {}
            for e in dur_entries:
                utt2dur[e.key] = parse_duration(path / "utt2dur", e.lineno, e.value)

        emo_segments: Dict[str, List[EmoInterval]] = {}
        emo_file = path / "emo_segments"
        if emo_file.is_file():
            emo_lines: Dict[str, int] = {}
            for e in read_table(emo_file):
                emo_segments.setdefault(e.key, []).append(parse_emo_interval(emo_file, e.lineno, e.value))
                emo_lines.setdefault(e.key, e.lineno)
            for utt, ivs in emo_segments.items():
                ivs.sort(key=lambda iv: iv.start)
                for a, b in overlapping_intervals(ivs)[:1]:
                    raise DataError(emo_file, b.lineno, f"interval of '{utt}' overlaps the one on line {a.lineno}")
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
