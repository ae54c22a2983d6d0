"""Repair of Kaldi-style data directories.

:func:`fix_data_dir` makes a data directory pass
:func:`ent.data.validate.validate_data_dir` without errors, by

- keeping only the utterances present in every per-utterance file (``text``,
  ``utt2spk``, ``utt2emo``, and ``utt2dur``/``segments`` when present);
- dropping utterances that cannot be used: empty transcript, unknown emotion
  (``utt2emo`` or ``emo_segments``), bad emotion intervals, missing or
  unreadable audio (header check), a segment outside its recording, a key
  repeated with different values;
- dropping malformed lines (reported with file and line; the utterance then
  lacks that line and is dropped too), blank lines and repeated lines;
- replacing ``utt2dur`` values that disagree with the audio;
- filtering ``emo_segments`` to the kept utterances, ``wav.scp`` to the
  recordings they use, regenerating ``spk2utt`` if there is one, and sorting
  every file in C-locale order.

Warnings (e.g. 8 kHz or stereo audio) are not changed: such audio is converted
on load. Files are written atomically and only when their content changes;
the originals are first copied to ``<dir>/.backup/``. Running the fixer again
changes nothing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Union

from ent.data.datadir import REQUIRED_FILES
from ent.data.emotions import DEFAULT_EMOTIONS
from ent.data.validate import TABLE_FILES, DataDirScan, durations_disagree, scan_data_dir
from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write

PathLike = Union[str, Path]
BACKUP_DIR = ".backup"
#: Files the fixer may rewrite (spk2utt is regenerated from utt2spk).
FIXED_FILES = TABLE_FILES + ("spk2utt",)


@dataclass
class FixReport:
    """What :func:`fix_data_dir` did.

    Attributes:
        path: The data directory.
        total: Utterances found (in any per-utterance file).
        kept: Utterances kept.
        dropped: reason -> dropped utterance ids (C-locale order); each
            utterance is counted once, under the first reason found in file
            order.
        malformed: ``<file>:<line>: <message>`` of every line dropped because
            it could not be parsed (blank, not UTF-8, wrong fields, ...).
        fixed: Other errors repaired by rewriting (unsorted file, repeated
            line, utt2dur value replaced by the audio's duration, ...).
        removed_recordings: Recordings removed from ``wav.scp`` (no kept
            utterance uses them).
        warnings: Warnings left as they are (audio converted on load).
        rewritten: Names of the files written.
        backup_dir: Where the originals were copied, or ``None``.
    """

    path: Path
    total: int = 0
    kept: int = 0
    dropped: Dict[str, List[str]] = field(default_factory=dict)
    malformed: List[str] = field(default_factory=list)
    fixed: List[str] = field(default_factory=list)
    removed_recordings: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    rewritten: List[str] = field(default_factory=list)
    backup_dir: Optional[Path] = None

    @property
    def num_dropped(self) -> int:
        """Number of dropped utterances."""
        return sum(len(ids) for ids in self.dropped.values())

    def format(self, max_items: int = 5) -> str:
        """A human-readable summary, listing at most ``max_items`` ids or lines per kind."""

        def few(items: List[str]) -> str:
            more = f", ... ({len(items) - max_items} more)" if len(items) > max_items else ""
            return ", ".join(items[:max_items]) + more

        def block(title: str, lines: List[str]) -> List[str]:
            more = [f"  ... ({len(lines) - max_items} more)"] if len(lines) > max_items else []
            return [f"{title}: {len(lines)}"] + [f"  {line}" for line in lines[:max_items]] + more

        out = [f"{self.path}: kept {self.kept} of {self.total} utterances, dropped {self.num_dropped}"]
        for reason, ids in self.dropped.items():
            out.append(f"  {reason}: {len(ids)} ({few(ids)})")
        if self.malformed:
            out += block("malformed lines dropped", self.malformed)
        if self.fixed:
            out += block("other errors fixed", self.fixed)
        if self.removed_recordings:
            out.append(f"recordings removed from wav.scp: {len(self.removed_recordings)} "
                       f"({few(self.removed_recordings)})")
        if self.warnings:
            out += block("warnings left as they are", self.warnings)
        if self.rewritten:
            backup = f"; originals in {self.backup_dir}" if self.backup_dir is not None else ""
            out.append(f"rewritten: {', '.join(self.rewritten)}{backup}")
        else:
            out.append("nothing to rewrite")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.format()


def fix_data_dir(
    path: PathLike,
    emotions: Sequence[str] = DEFAULT_EMOTIONS,
    backup: bool = True,
    progress: bool = False,
) -> FixReport:
    """Repair a data directory in place (see the module docstring).

    Args:
        path: The data directory.
        emotions: Allowed emotion labels.
        backup: Copy the original files to ``<path>/.backup/`` before
            rewriting (only when something changes).
        progress: Show a progress bar while checking the audio.

    Returns:
        What was dropped and why, and what was rewritten.

    Raises:
        DataError: If the directory or a required file is missing or
            unreadable, or if no utterance would be left (nothing is changed
            then).
    """
    path = Path(path)
    scan = scan_data_dir(path, emotions, check_audio=True, progress=progress)
    _check_fixable(scan)
    report = FixReport(path, total=len(scan.utterances))

    # Utterances to drop, each under the first reason in file order.
    wav_path = str(path / "wav.scp")
    utts_of_rec: Dict[str, List[str]] = {}
    for utt in scan.utterances:
        if scan.segments is None or utt in scan.segments:
            utts_of_rec.setdefault(scan.recording_of(utt), []).append(utt)
    why: Dict[str, str] = {}
    for p in scan.problems:
        if p.is_error and p.reason is not None and p.key is not None:
            for utt in utts_of_rec.get(p.key, []) if p.path == wav_path else [p.key]:
                why.setdefault(utt, p.reason)
    kept = [u for u in scan.utterances if u not in why]
    for utt in scan.utterances:
        if utt in why:
            report.dropped.setdefault(why[utt], []).append(utt)
    report.kept = len(kept)
    if not kept:
        reasons = "; ".join(f"{r}: {len(ids)}" for r, ids in report.dropped.items())
        raise DataError(path, None, f"every utterance would be dropped ({reasons}); nothing was changed")

    report.malformed = [str(p) for p in scan.malformed]
    recordings = {scan.recording_of(u) for u in kept}
    for p in scan.problems:
        if p.reason is not None or p.key in why:  # malformed lines and dropped utterances: reported above
            continue
        if p.is_error:
            report.fixed.append(str(p))
        elif p.path != wav_path or p.key in recordings:
            report.warnings.append(str(p))

    contents = _new_contents(scan, kept, recordings)
    wav_entries = scan.tables["wav.scp"].entries
    report.removed_recordings = sorted(e.key for e in wav_entries if e.key not in recordings)
    changed = {name: text for name, text in contents.items()
               if not (path / name).is_file() or (path / name).read_bytes() != text.encode("utf-8")}
    if not changed:
        return report
    if backup:
        report.backup_dir = path / BACKUP_DIR
        report.backup_dir.mkdir(exist_ok=True)
        for name in FIXED_FILES:
            if (path / name).is_file():
                shutil.copy2(path / name, report.backup_dir / name)
    for name, text in changed.items():
        with atomic_write(path / name) as fh:
            fh.write(text)
    report.rewritten = sorted(changed, key=FIXED_FILES.index)
    return report


def _check_fixable(scan: DataDirScan) -> None:
    """Raise the first problem the fixer cannot repair: a missing directory or
    required file, or a file that cannot be read."""
    if not scan.path.is_dir():
        raise DataError(scan.path, None, "data directory not found")
    for name in TABLE_FILES:
        if name not in scan.tables and (name in REQUIRED_FILES or (scan.path / name).is_file()):
            where = str(scan.path / name)
            problem = next(p for p in scan.problems if p.path == where)
            raise DataError(problem.path, problem.line, problem.message)


def _new_contents(scan: DataDirScan, kept: List[str], recordings: Set[str]) -> Dict[str, str]:
    """file name -> its repaired content, for every table file present."""
    tables = scan.tables
    out: Dict[str, str] = {}
    kept_set = set(kept)

    def lines(rows: List[str]) -> str:
        return "".join(row + "\n" for row in rows)

    for name in ("text", "utt2spk", "utt2emo", "segments"):
        if name in tables:
            index = tables[name].index
            out[name] = lines([f"{u} {index[u].value}" for u in kept])
    if "utt2dur" in tables:
        index = tables["utt2dur"].index
        rows = []
        for u in kept:
            value = index[u].value
            if u in scan.durations and durations_disagree(index[u].data, scan.durations[u]):
                value = f"{scan.durations[u]:.4f}"
            rows.append(f"{u} {value}")
        out["utt2dur"] = lines(rows)
    if "emo_segments" in tables:
        entries = [e for e in tables["emo_segments"].entries if e.key in kept_set]
        entries.sort(key=lambda e: (e.key, e.data.start))
        out["emo_segments"] = lines([f"{e.key} {e.value}" for e in entries])
    wav = tables["wav.scp"]
    out["wav.scp"] = lines([f"{rec} {wav.index[rec].value}" for rec in sorted(recordings)])
    if (scan.path / "spk2utt").is_file():
        spk2utt: Dict[str, List[str]] = {}
        for u in kept:
            spk2utt.setdefault(tables["utt2spk"].index[u].value, []).append(u)
        out["spk2utt"] = lines([f"{spk} {' '.join(utts)}" for spk, utts in sorted(spk2utt.items())])
    return out
