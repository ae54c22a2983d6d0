"""Validation of Kaldi-style data directories.

:func:`validate_data_dir` checks a data directory (see :mod:`ent.data.datadir`
for the format) and returns every problem it finds, each one line naming the
file and line of the offending entry::

    data/train/utt2emo:3: unknown emotion 'bored' of 'utt003' (allowed: neutral, happy, angry, sad)
    data/train/wav.scp:2: warning: 8000 Hz audio will be resampled to 16000 Hz on load (/a/utt002.wav)

Unlike :meth:`DataDir.load <ent.data.datadir.DataDir.load>`, which stops at
the first hard error, the validator reads every table line by line and keeps
going, so that one run lists everything to repair. Problems are *errors*
(the directory cannot be used as it is) or *warnings* (it can, but something
happens that the user should know about, e.g. resampling on load).

Audio is checked from the file headers only (``soundfile.info``), which takes
a few tens of microseconds per file. With ``scan_audio`` (``validate_data_dir
--scan-audio``) every sample is read too (:func:`scan_audio_content`, in
blocks, so memory stays small): NaN or infinite samples are an error (the
loader refuses such audio; the fixer drops the utterances), digital silence
(every sample 0) and clipping (more than :data:`CLIP_SHARE` of the samples at
full scale) are warnings, each on the ``wav.scp`` line::

    data/train/wav.scp:4: audio has 12 NaN/Inf samples (first at 1.250 s) (/a/utt004.wav)
    data/train/wav.scp:5: warning: audio is digital silence (every sample 0) (/a/utt005.wav)
    data/train/wav.scp:6: warning: audio is clipped: 2.1 % of the samples at full scale (/a/utt006.wav)

:func:`scan_data_dir` returns, besides the problems, the parsed tables; the
fixer (:mod:`ent.data.fix`) repairs a directory from them. Every problem that
condemns utterances carries the table key it concerns (``Problem.key``: an
utterance id, or a recording id for ``wav.scp``) and why the fixer drops them
(``Problem.reason``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple, Union

from tqdm import tqdm

from ent.data.audio import TARGET_SAMPLE_RATE, AudioError, AudioInfo, audio_info
from ent.data.datadir import OPTIONAL_FILES, REQUIRED_FILES
from ent.data.emotions import DEFAULT_EMOTIONS
from ent.data.tables import (
    EmoInterval,
    Segment,
    overlapping_intervals,
    parse_duration,
    parse_emo_interval,
    parse_segment,
    parse_wav_scp,
)
from ent.utils.errors import DataError, format_location
from ent.utils.fileio import read_lines

PathLike = Union[str, Path]

#: Files in the order they are checked and reported.
TABLE_FILES: Tuple[str, ...] = REQUIRED_FILES + OPTIONAL_FILES
#: Allowed disagreement between durations (utt2dur, segments, emo_segments
#: and the audio), in seconds; Kaldi's ``extract-segments`` allows the same.
DURATION_TOLERANCE = 0.01
DEFAULT_MAX_PROBLEMS = 100
_EPS = 1e-9  # float slack, so that e.g. 1.01 vs 1.0 is within 10 ms

# Why the fixer drops utterances (``Problem.reason``).
MALFORMED = "malformed line in {file}"
DUPLICATE = "duplicate key with different values"
MISSING_FROM = "missing from {file}"
EMPTY_TRANSCRIPT = "empty transcript"
UNKNOWN_EMOTION = "unknown emotion"
EMO_OUTSIDE = "emotion interval outside the utterance"
EMO_OVERLAP = "overlapping emotion intervals"
RECORDING_MISSING = "recording missing from wav.scp"
MISSING_AUDIO = "missing audio"
UNREADABLE_AUDIO = "unreadable audio"
EMPTY_AUDIO = "empty audio"
SEGMENT_OUTSIDE = "segment outside the recording"
NON_FINITE_AUDIO = "NaN or infinite audio samples"

#: Clipping warning: share of samples at full scale (|x| >= CLIP_LEVEL) above which audio is called clipped.
CLIP_SHARE = 0.001
CLIP_LEVEL = 0.999
_SCAN_BLOCK = 1 << 18  # samples read at a time by the content scan


class Severity(str, enum.Enum):
    """How bad a problem is."""

    ERROR = "error"  # the directory cannot be used as it is
    WARNING = "warning"  # usable, but the user should know (e.g. resampling on load)


@dataclass(frozen=True)
class Problem:
    """One problem of a data directory, printed as ``<file>:<line>: <message>``.

    Warnings print as ``<file>:<line>: warning: <message>``.

    Attributes:
        path: The offending file (or the directory).
        line: 1-based line of the offending entry, ``None`` for a whole file.
        message: What is wrong.
        severity: :attr:`Severity.ERROR` or :attr:`Severity.WARNING`.
        key: The table key the problem is about (an utterance id, or a
            recording id in ``wav.scp``), when there is one.
        reason: Why :func:`ent.data.fix.fix_data_dir` drops the utterances of
            ``key``; ``None`` when the fixer repairs the problem by rewriting
            the files (sorting, removing a repeated line, ...) or cannot.
    """

    path: str
    line: Optional[int]
    message: str
    severity: Severity = Severity.ERROR
    key: Optional[str] = field(default=None, compare=False)
    reason: Optional[str] = field(default=None, compare=False)

    @property
    def is_error(self) -> bool:
        """Whether the problem is an error (not a warning)."""
        return self.severity == Severity.ERROR

    def __str__(self) -> str:
        message = self.message if self.is_error else f"warning: {self.message}"
        return format_location(self.path, self.line, message)


class TableEntry(NamedTuple):
    """A well-formed table line.

    Attributes:
        key: First field (utterance or recording id).
        value: The rest of the line, stripped.
        lineno: 1-based line number.
        data: The parsed value: a :class:`Segment` (segments), an
            :class:`EmoInterval` (emo_segments), a float (utt2dur), else the
            value string.
    """

    key: str
    value: str
    lineno: int
    data: Any


@dataclass
class CheckedTable:
    """The well-formed lines of one table file.

    Attributes:
        name: File name, e.g. ``"text"``.
        path: The file.
        entries: Well-formed lines in file order; for tables with one line
            per key, only the first line of each key.
        index: key -> its (first) entry.
        bad_keys: Keys that have a malformed or repeated line (already
            reported; not reported again as missing).
    """

    name: str
    path: Path
    entries: List[TableEntry] = field(default_factory=list)
    index: Dict[str, TableEntry] = field(default_factory=dict)
    bad_keys: Set[str] = field(default_factory=set)

    def has(self, key: str) -> bool:
        """Whether ``key`` has a line, well-formed or not."""
        return key in self.index or key in self.bad_keys


@dataclass
class DataDirScan:
    """Everything :func:`scan_data_dir` learned about a data directory.

    Attributes:
        path: The directory.
        problems: All problems, in file order then line order.
        tables: file name -> checked table, for the files that could be read.
        utterances: Every utterance id that appears in a per-utterance file
            (C-locale order).
        segments: utt -> :class:`Segment` (well-formed lines), or ``None``
            without a segments file.
        recordings: recording id -> header of its readable audio.
        durations: utt -> duration in seconds measured from the audio (for
            utterances whose audio could be checked).
        malformed: The problems of lines that could not be parsed (the
            tables leave them out).
    """

    path: Path
    problems: List[Problem] = field(default_factory=list)
    tables: Dict[str, CheckedTable] = field(default_factory=dict)
    utterances: List[str] = field(default_factory=list)
    segments: Optional[Dict[str, Segment]] = None
    recordings: Dict[str, AudioInfo] = field(default_factory=dict)
    durations: Dict[str, float] = field(default_factory=dict)
    malformed: List[Problem] = field(default_factory=list)

    @property
    def num_errors(self) -> int:
        """Number of error-level problems."""
        return sum(p.is_error for p in self.problems)

    @property
    def num_warnings(self) -> int:
        """Number of warning-level problems."""
        return len(self.problems) - self.num_errors

    def recording_of(self, utt: str) -> str:
        """The recording an utterance is cut from (itself without segments)."""
        if self.segments is None:
            return utt
        return self.segments[utt].recording


def durations_disagree(a: float, b: float) -> bool:
    """Whether two durations (seconds) differ by more than :data:`DURATION_TOLERANCE`."""
    return abs(a - b) > DURATION_TOLERANCE + _EPS


def _ends_past(end: float, duration: float) -> bool:
    """Whether a time ``end`` lies past ``duration`` by more than the tolerance."""
    return end > duration + DURATION_TOLERANCE + _EPS


def validate_data_dir(
    path: PathLike,
    emotions: Sequence[str] = DEFAULT_EMOTIONS,
    check_audio: bool = True,
    sample_rate: int = TARGET_SAMPLE_RATE,
    max_problems: Optional[int] = DEFAULT_MAX_PROBLEMS,
    scan_audio: bool = False,
) -> List[Problem]:
    """Check a Kaldi-style data directory and list its problems.

    Args:
        path: The data directory.
        emotions: Allowed emotion labels (utt2emo and emo_segments).
        check_audio: Read the audio headers (existence, format, sample rate,
            channels, durations). Without it only the text files are checked.
        sample_rate: Expected sample rate; other rates give a warning.
        max_problems: Return at most this many problems, plus one last line
            counting the others (an error if any of them is). ``None``: all.
        scan_audio: Also read every sample (NaN/Inf, digital silence,
            clipping; see the module docstring). Needs ``check_audio``.

    Returns:
        The problems, in file order then line order; empty for a good
        directory. ``str(problem)`` is one line ``<file>:<line>: <message>``.
    """
    scan = scan_data_dir(path, emotions, check_audio, sample_rate, scan_audio=scan_audio)
    return limit_problems(scan.problems, max_problems, scan.path)


def limit_problems(problems: Sequence[Problem], max_problems: Optional[int], path: PathLike) -> List[Problem]:
    """Keep the first ``max_problems`` problems and count the rest in one more.

    The extra problem is an error if any hidden problem is, so that the
    overall verdict (errors or not) is never changed by the limit.

    Args:
        problems: All problems.
        max_problems: How many to keep (``None``: all).
        path: The data directory (where the counting problem points).
    """
    if max_problems is None or len(problems) <= max_problems:
        return list(problems)
    hidden = problems[max_problems:]
    errors = sum(p.is_error for p in hidden)
    severity = Severity.ERROR if errors else Severity.WARNING
    summary = Problem(
        str(path), None,
        f"{len(hidden)} more problems not shown (errors: {errors}, warnings: {len(hidden) - errors})",
        severity,
    )
    return list(problems[:max_problems]) + [summary]


def scan_data_dir(
    path: PathLike,
    emotions: Sequence[str] = DEFAULT_EMOTIONS,
    check_audio: bool = True,
    sample_rate: int = TARGET_SAMPLE_RATE,
    progress: bool = False,
    scan_audio: bool = False,
) -> DataDirScan:
    """Check a data directory and keep what was parsed (see :func:`validate_data_dir`).

    Args:
        path: The data directory.
        emotions: Allowed emotion labels.
        check_audio: Read the audio headers.
        sample_rate: Expected sample rate.
        progress: Show a progress bar while checking the audio.
        scan_audio: Also read every sample (see :func:`validate_data_dir`).

    Returns:
        The scan, with all problems (unbounded).
    """
    scanner = _Scanner(Path(path), list(emotions), check_audio, sample_rate, progress)
    scanner.scan_audio = scan_audio and check_audio
    return scanner.run()


class AudioContent(NamedTuple):
    """What :func:`scan_audio_content` found in one file.

    Attributes:
        samples: Samples per channel.
        non_finite: Samples (frames) with a NaN or infinite value.
        first_non_finite_s: Time of the first of them (None without).
        all_zero: Every sample is exactly 0.
        clipped_share: Share of the samples with ``|x| >= CLIP_LEVEL``.
    """

    samples: int
    non_finite: int
    first_non_finite_s: Optional[float]
    all_zero: bool
    clipped_share: float


def scan_audio_content(path: PathLike) -> AudioContent:
    """Read a whole audio file block by block and summarise its samples.

    Raises:
        AudioError: If the file cannot be read.
    """
    import numpy as np
    import soundfile as sf

    info = audio_info(path)
    n = non_finite = clipped = 0
    first: Optional[float] = None
    all_zero = True
    try:
        for block in sf.blocks(str(path), blocksize=_SCAN_BLOCK, dtype="float32", always_2d=True):
            finite = np.isfinite(block)
            bad = ~finite.all(axis=1)
            if bad.any():
                if first is None:
                    first = (n + int(np.argmax(bad))) / info.sample_rate
                non_finite += int(bad.sum())
            values = np.where(finite, block, 0.0)
            all_zero = all_zero and not np.any(values)
            clipped += int((np.abs(values) >= CLIP_LEVEL).sum())
            n += len(block)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(path, None, f"unreadable audio: {exc}") from None
    share = clipped / max(1, n * info.channels)
    return AudioContent(n, non_finite, first, all_zero and n > 0, share)


# --------------------------------------------------------------------- parsing
def _identity(path: PathLike, lineno: int, value: str) -> str:
    return value


_Parser = Callable[[PathLike, int, str], Any]

#: file name -> (value parser, several lines per key allowed, empty value allowed)
_TABLE_FORMATS: Dict[str, Tuple[_Parser, bool, bool]] = {
    "wav.scp": (parse_wav_scp, False, False),
    "text": (_identity, False, True),  # empty transcripts get their own problem
    "utt2spk": (_identity, False, False),
    "utt2emo": (_identity, False, False),
    "segments": (parse_segment, False, False),
    "emo_segments": (parse_emo_interval, True, False),
    "utt2dur": (parse_duration, False, False),
}


def _decode_lines(path: Path) -> Tuple[List[str], Dict[int, str]]:
    """Read a text file's lines, decoding lines that are not UTF-8 leniently.

    Returns:
        The lines (invalid bytes replaced by U+FFFD) and line number -> message
        for each line that is not valid UTF-8.

    Raises:
        DataError: If the file cannot be read.
    """
    try:
        return read_lines(path), {}
    except DataError as exc:
        if exc.line is None:  # missing or unreadable: nothing to go on
            raise
    chunks = path.read_bytes().split(b"\n")
    if chunks and chunks[-1] == b"":
        chunks.pop()
    lines: List[str] = []
    bad: Dict[int, str] = {}
    for lineno, chunk in enumerate(chunks, start=1):
        try:
            line = chunk.decode("utf-8")
        except UnicodeDecodeError as err:
            bad[lineno] = f"not valid UTF-8 (byte 0x{chunk[err.start]:02x})"
            line = chunk.decode("utf-8", errors="replace")
        lines.append(line.rstrip("\r"))
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    return lines, bad


# --------------------------------------------------------------------- checks
class _Scanner:
    """Runs the checks of :func:`scan_data_dir` on one directory."""

    def __init__(self, path: Path, emotions: List[str], check_audio: bool, sample_rate: int,
                 progress: bool) -> None:
        self.scan = DataDirScan(path)
        self.emotions = emotions
        self.allowed = ", ".join(emotions)
        self.check_audio = check_audio
        self.sample_rate = sample_rate
        self.progress = progress
        self.scan_audio = False

    def add(self, path: PathLike, line: Optional[int], message: str, key: Optional[str] = None,
            reason: Optional[str] = None, severity: Severity = Severity.ERROR) -> Problem:
        problem = Problem(str(path), line, message, severity, key, reason)
        self.scan.problems.append(problem)
        return problem

    def run(self) -> DataDirScan:
        scan = self.scan
        if not scan.path.is_dir():
            self.add(scan.path, None, "data directory not found")
            return scan
        for name in REQUIRED_FILES:
            if not (scan.path / name).is_file():
                self.add(scan.path / name, None, "required file not found")
        for name in TABLE_FILES:
            table = self.read_table(name)
            if table is not None:
                scan.tables[name] = table
        if "segments" in scan.tables:
            scan.segments = {e.key: e.data for e in scan.tables["segments"].entries}
        self.check_values()
        self.check_ids()
        if self.check_audio:
            self.check_audio_files()
        self.check_durations()
        rank = {str(scan.path / name): i for i, name in enumerate(TABLE_FILES)}
        scan.problems.sort(key=lambda p: (rank.get(p.path, -1), p.line or 0))
        return scan

    def read_table(self, name: str) -> Optional[CheckedTable]:
        """Read one table line by line, reporting format problems."""
        path = self.scan.path / name
        if not path.is_file():
            return None
        try:
            lines, bad_utf8 = _decode_lines(path)
        except DataError as exc:
            self.add(path, exc.line, exc.message)
            return None
        parse, multi, allow_empty = _TABLE_FORMATS[name]
        table = CheckedTable(name, path)
        reason = MALFORMED.format(file=name)
        first_line: Dict[str, Tuple[int, str]] = {}
        prev_key: Optional[str] = None
        unsorted_reported = False

        def malformed(lineno: int, key: Optional[str], message: str) -> None:
            self.scan.malformed.append(self.add(path, lineno, message, key, reason))
            if key is not None:
                table.bad_keys.add(key)

        for lineno, line in enumerate(lines, start=1):
            fields = line.split(maxsplit=1)
            if not fields:
                malformed(lineno, None, "blank line")
                continue
            key = fields[0]
            value = fields[1].strip() if len(fields) > 1 else ""
            if prev_key is not None and key < prev_key and not unsorted_reported:
                self.add(path, lineno, f"not sorted: '{key}' comes after '{prev_key}' (sort with LC_ALL=C)")
                unsorted_reported = True
            prev_key = key
            if lineno in bad_utf8:
                malformed(lineno, key, bad_utf8[lineno])
                continue
            if not multi:
                if key in first_line:
                    first, first_value = first_line[key]
                    message = f"duplicate key '{key}' (first on line {first})"
                    if value == first_value:  # a repeated line: dropping it changes nothing
                        self.add(path, lineno, message, key)
                    else:
                        self.add(path, lineno, message + " with a different value", key, DUPLICATE)
                        table.bad_keys.add(key)
                    continue
                first_line[key] = (lineno, value)
            if not value and not allow_empty:
                malformed(lineno, key, f"'{key}' has no value")
                continue
            try:
                data = parse(path, lineno, value)
            except DataError as exc:
                malformed(lineno, key, exc.message)
                continue
            entry = TableEntry(key, value, lineno, data)
            table.entries.append(entry)
            table.index.setdefault(key, entry)
        return table

    def check_values(self) -> None:
        """Empty transcripts, unknown emotions, overlapping emotion intervals."""
        tables = self.scan.tables
        if "text" in tables:
            for e in tables["text"].entries:
                if not e.value:
                    self.add(tables["text"].path, e.lineno, f"empty transcript for '{e.key}'", e.key,
                             EMPTY_TRANSCRIPT)
        if "utt2emo" in tables:
            for e in tables["utt2emo"].entries:
                if e.value not in self.emotions:
                    self.add(tables["utt2emo"].path, e.lineno,
                             f"unknown emotion '{e.value}' of '{e.key}' (allowed: {self.allowed})",
                             e.key, UNKNOWN_EMOTION)
        if "emo_segments" in tables:
            path = tables["emo_segments"].path
            for utt, ivs in self.intervals().items():
                for iv in ivs:
                    if iv.emotion not in self.emotions:
                        self.add(path, iv.lineno,
                                 f"unknown emotion '{iv.emotion}' of '{utt}' (allowed: {self.allowed})",
                                 utt, UNKNOWN_EMOTION)
                for a, b in overlapping_intervals(ivs):
                    self.add(path, b.lineno, f"interval of '{utt}' overlaps the one on line {a.lineno}",
                             utt, EMO_OVERLAP)

    def intervals(self) -> Dict[str, List[EmoInterval]]:
        """utt -> its well-formed emotion intervals."""
        out: Dict[str, List[EmoInterval]] = {}
        table = self.scan.tables.get("emo_segments")
        for e in table.entries if table is not None else ():
            out.setdefault(e.key, []).append(e.data)
        return out

    def check_ids(self) -> None:
        """Every utterance in every per-utterance file; references resolve."""
        scan = self.scan
        tables = scan.tables
        per_utt = [tables[n] for n in ("text", "utt2spk", "utt2emo", "segments", "utt2dur") if n in tables]
        wav = tables.get("wav.scp")
        if scan.segments is None and wav is not None:
            per_utt.append(wav)  # each recording is an utterance
        utts: Set[str] = set()
        for table in per_utt:
            utts.update(table.index)
        scan.utterances = sorted(utts)
        for utt in scan.utterances:
            missing = [t.name for t in per_utt if not t.has(utt)]
            if missing:
                where = next(t for t in per_utt if utt in t.index)
                self.add(where.path, where.index[utt].lineno,
                         f"utterance '{utt}' is missing from {', '.join(missing)}",
                         utt, MISSING_FROM.format(file=missing[0]))
        if "text" in tables and not tables["text"].index and not tables["text"].bad_keys:
            self.add(tables["text"].path, None, "no utterances")
        if "emo_segments" in tables:
            emo = tables["emo_segments"]
            for utt, e in emo.index.items():
                if utt not in utts:
                    self.add(emo.path, e.lineno, f"utterance '{utt}' not found in text", utt)
        if scan.segments is not None and wav is not None:
            used: Set[str] = set()
            seg_table = tables["segments"]
            for utt, seg in scan.segments.items():
                used.add(seg.recording)
                if not wav.has(seg.recording):
                    self.add(seg_table.path, seg_table.index[utt].lineno,
                             f"recording '{seg.recording}' of '{utt}' not found in wav.scp", utt,
                             RECORDING_MISSING)
            for e in wav.entries:
                if e.key not in used:
                    self.add(wav.path, e.lineno, f"recording '{e.key}' is not used by any segment", e.key,
                             severity=Severity.WARNING)

    def check_audio_files(self) -> None:
        """Existence, readability, sample rate and channels (headers only)."""
        wav = self.scan.tables.get("wav.scp")
        if wav is None:
            return
        # disable=None: a bar only on a terminal.
        bar = tqdm(wav.entries, desc="audio headers", unit="file", disable=None if self.progress else True)
        for e in bar:
            audio_path = Path(e.data)
            try:
                info = audio_info(audio_path)
            except AudioError as exc:
                reason = UNREADABLE_AUDIO if audio_path.is_file() else MISSING_AUDIO
                self.add(wav.path, e.lineno, f"{exc.message} ({e.data})", e.key, reason)
                continue
            if info.frames == 0:
                self.add(wav.path, e.lineno, f"audio file is empty ({e.data})", e.key, EMPTY_AUDIO)
                continue
            if info.sample_rate != self.sample_rate:
                self.add(wav.path, e.lineno,
                         f"{info.sample_rate} Hz audio will be resampled to {self.sample_rate} Hz on load "
                         f"({e.data})", e.key, severity=Severity.WARNING)
            if info.channels != 1:
                self.add(wav.path, e.lineno,
                         f"{info.channels}-channel audio will be down-mixed to mono on load ({e.data})",
                         e.key, severity=Severity.WARNING)
            self.scan.recordings[e.key] = info
            if self.scan_audio:
                self.check_content(wav.path, e)

    def check_content(self, wav_scp: Path, e: TableEntry) -> None:
        """NaN/Inf (an error), digital silence and clipping (warnings) of one recording."""
        try:
            content = scan_audio_content(e.data)
        except AudioError as exc:
            self.add(wav_scp, e.lineno, f"{exc.message} ({e.data})", e.key, UNREADABLE_AUDIO)
            return
        if content.non_finite:
            self.add(wav_scp, e.lineno, f"audio has {content.non_finite} NaN/Inf samples (first at "
                     f"{content.first_non_finite_s:.3f} s) ({e.data})", e.key, NON_FINITE_AUDIO)
        elif content.all_zero:
            self.add(wav_scp, e.lineno, f"audio is digital silence (every sample 0) ({e.data})", e.key,
                     severity=Severity.WARNING)
        if content.clipped_share > CLIP_SHARE:
            self.add(wav_scp, e.lineno, f"audio is clipped: {100 * content.clipped_share:.1f} % of the samples "
                     f"at full scale ({e.data})", e.key, severity=Severity.WARNING)

    def check_durations(self) -> None:
        """Segments inside their recordings; utt2dur and emo_segments agree with the durations."""
        scan = self.scan
        tables = scan.tables
        if scan.segments is None:
            for utt in scan.utterances:
                if utt in scan.recordings:
                    scan.durations[utt] = scan.recordings[utt].duration
        else:
            seg_table = tables["segments"]
            for utt, seg in scan.segments.items():
                info = scan.recordings.get(seg.recording)
                if info is None:
                    continue
                where = f"segment {seg.start:g}-{seg.end:g} s of '{utt}'"
                rec = f"recording '{seg.recording}' ({info.duration:.3f} s)"
                lineno = seg_table.index[utt].lineno
                if seg.start >= info.duration or _ends_past(seg.end, info.duration):
                    which = "starts" if seg.start >= info.duration else "ends"
                    self.add(seg_table.path, lineno, f"{where} {which} past the end of {rec}", utt,
                             SEGMENT_OUTSIDE)
                else:
                    end = info.duration if seg.end < 0 else min(seg.end, info.duration)
                    scan.durations[utt] = end - seg.start

        # Reference durations: measured from the audio, or without audio
        # checks from the segments, else from utt2dur.
        reference: Dict[str, Tuple[float, str]] = {u: (d, "the audio") for u, d in scan.durations.items()}
        if not self.check_audio:
            for utt, seg in (scan.segments or {}).items():
                if seg.end >= 0:
                    reference[utt] = (seg.end - seg.start, "segments")
        utt2dur = tables.get("utt2dur")
        for e in utt2dur.entries if utt2dur is not None else ():
            if e.key in reference:
                ref, source = reference[e.key]
                if durations_disagree(e.data, ref):
                    message = f"duration {e.value} s of '{e.key}' disagrees with {source} ({ref:.3f} s)"
                    self.add(utt2dur.path, e.lineno, message, e.key)
            else:
                reference[e.key] = (e.data, "utt2dur")

        if "emo_segments" in tables:
            path = tables["emo_segments"].path
            for utt, ivs in self.intervals().items():
                if utt not in reference:
                    continue
                dur, _ = reference[utt]
                for iv in ivs:
                    if _ends_past(iv.end, dur):
                        self.add(path, iv.lineno,
                                 f"interval {iv.start:g}-{iv.end:g} s of '{utt}' ends past the end of the "
                                 f"utterance ({dur:.3f} s)", utt, EMO_OUTSIDE)

