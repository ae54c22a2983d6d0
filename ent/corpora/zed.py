"""ZED (Zaion Emotion Dataset): the annotation JSON → a data directory with ``emo_segments``.

ZED is the speech emotion diarization benchmark of Wang et al. (2023). Its
annotation file (``ZED.json`` in the corpus folder) maps each utterance id
to::

    {"wav": "datafolder/....wav", "duration": 4.48,
     "emotion": [{"emo": "happy", "start": 1.94, "end": 4.48}],
     "transcription": "..."}

Each utterance holds emotional intervals (happy, sad or angry); the rest of
the utterance is neutral.

**Emotion names** are mapped case-insensitively by :data:`ZED_EMOTION_NAMES`
(full names, abbreviations ``hap``/``ang``, first letters ``h``/``s``/``a``
as in ZED's own scoring, and ``happiness``/``sadness``/``anger``); an
interval labelled neutral is dropped (neutral is implicit). An utterance with
an unknown emotion name is dropped and counted under that name.

**Audio paths** are resolved in this order: the placeholder prefix
``datafolder`` (or ``{data_root}``, ``$data_root``) replaced by the corpus
root; the path as given if absolute; relative to the corpus root; relative
to the JSON's folder; the file name anywhere below the corpus root. An
utterance whose audio is not found is dropped and counted.

**Times**: durations come from the audio headers. An interval ending at most
:data:`END_TOLERANCE` seconds past the end of the audio is clipped to it
(counted as a note); one that starts at or after the end, ends further out,
has ``end <= start`` or overlaps an interval of another emotion drops the
utterance (counted). Overlapping intervals of the same emotion are merged.

**Written**: ``wav.scp`` (absolute paths), ``text`` (normalized with
:func:`ent.text.normalize.normalize_text`, as for IEMOCAP), ``utt2spk`` (ZED
has no speaker ids: each utterance is its own speaker), ``spk2utt``,
``utt2emo`` (the emotion covering the most time, neutral when there is
none), ``utt2dur`` and ``emo_segments``; plus ``zed_prep_report.{txt,json}``
beside the data directory.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from tqdm import tqdm

from ent.corpora.record import CorpusUtterance, write_data_dir
from ent.corpora.report import PrepReport
from ent.data.audio import AudioError, audio_info
from ent.data.emotions import NEUTRAL
from ent.text.normalize import normalize_text
from ent.utils.errors import DataError
from ent.utils.fileio import read_lines

PathLike = Union[str, Path]

logger = logging.getLogger(__name__)

#: ZED emotion name (lower case) -> ENT emotion.
ZED_EMOTION_NAMES: Dict[str, str] = {
    "happy": "happy", "hap": "happy", "h": "happy", "happiness": "happy",
    "sad": "sad", "s": "sad", "sadness": "sad",
    "angry": "angry", "ang": "angry", "a": "angry", "anger": "angry",
    "neutral": NEUTRAL, "neu": NEUTRAL, "n": NEUTRAL,
}
#: Seconds an interval may end past the end of the audio and still be clipped.
END_TOLERANCE = 0.1
#: Disagreement (s) between the JSON duration and the audio worth a note.
DURATION_NOTE = 0.1
DEFAULT_JSON = "ZED.json"
_PLACEHOLDERS = ("datafolder", "{data_root}", "$data_root", "${data_root}")
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
_KEY_LINE_RE = re.compile(r'^\s*"((?:[^"\\]|\\.)*)"\s*:\s*\{')


def map_zed_emotion(name: str, names: Mapping[str, str] = ZED_EMOTION_NAMES) -> Optional[str]:
    """ENT emotion of a ZED emotion name (case-insensitive), or ``None`` if unknown."""
    return names.get(name.strip().lower())


def find_zed_json(zed_root: PathLike) -> Path:
    """``<zed_root>/ZED.json``, else the only ``*.json`` file in ``zed_root``.

    Raises:
        DataError: When there is no such file or several candidates.
    """
    root = Path(zed_root)
    if not root.is_dir():
        raise DataError(root, None, "ZED root not found")
    default = root / DEFAULT_JSON
    if default.is_file():
        return default
    candidates = sorted(p for p in root.glob("*.json") if p.is_file() and not p.name.startswith("."))
    if len(candidates) == 1:
        logger.info("%s not found; using %s", default, candidates[0])
        return candidates[0]
    found = ", ".join(p.name for p in candidates) or "none"
    raise DataError(default, None, f"annotation file not found (other *.json files: {found}); "
                    "name it with --json")


def load_zed_json(path: PathLike) -> Tuple[Dict[str, Any], Dict[str, int]]:
    """Read the annotation JSON.

    Returns:
        ``(entries, key_lines)``: the top-level mapping, and the line number
        of each top-level key when it can be located (for error messages).

    Raises:
        DataError: On a missing file, invalid JSON (naming the line) or a
            top level that is not an object.
    """
    path = Path(path)
    lines = read_lines(path)
    try:
        data = json.loads("\n".join(lines))
    except json.JSONDecodeError as exc:
        raise DataError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise DataError(path, 1, "the top level must be an object {utterance id: {...}}")
    key_lines: Dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        m = _KEY_LINE_RE.match(line)
        if m:
            try:
                key = json.loads(f'"{m.group(1)}"')
            except json.JSONDecodeError:
                continue
            if key in data and key not in key_lines:
                key_lines[key] = lineno
    return data, key_lines


class _AudioFinder:
    """Resolves ZED audio paths (see the module docstring)."""

    def __init__(self, root: Path, json_dir: Path) -> None:
        self.root = root
        self.json_dir = json_dir
        self._by_name: Optional[Dict[str, Path]] = None

    def find(self, value: str) -> Optional[Path]:
        candidates: List[Path] = []
        for ph in _PLACEHOLDERS:
            if value.startswith(ph):
                candidates.append(self.root / value[len(ph):].lstrip("/\\"))
        given = Path(value)
        if given.is_absolute():
            candidates.append(given)
        else:
            candidates += [self.root / given, self.json_dir / given]
        for cand in candidates:
            if cand.is_file():
                return cand
        return self._index().get(Path(value.replace("\\", "/")).name)

    def _index(self) -> Dict[str, Path]:
        if self._by_name is None:
            self._by_name = {}
            for p in sorted(self.root.rglob("*")):
                if p.suffix.lower() in _AUDIO_SUFFIXES and p.is_file():
                    self._by_name.setdefault(p.name, p)
        return self._by_name


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _parse_intervals(raw: Any) -> Optional[List[Tuple[float, float, str]]]:
    """``[(start, end, name)]`` of an entry's ``emotion`` list, or ``None`` if malformed."""
    if not isinstance(raw, list):
        return None
    out = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("emo"), str):
            return None
        start, end = _number(item.get("start")), _number(item.get("end"))
        if start is None or end is None:
            return None
        out.append((start, end, item["emo"]))
    return out


def _clean_intervals(
    utt: str, raw: List[Tuple[float, float, str]], duration: float, report: PrepReport,
    names: Mapping[str, str],
) -> Optional[List[Tuple[float, float, str]]]:
    """Map, check, clip and merge the intervals of one utterance; ``None``: drop it."""
    mapped: List[Tuple[float, float, str]] = []
    for start, end, name in raw:
        emotion = map_zed_emotion(name, names)
        if emotion is None:
            report.drop(f"unknown emotion '{name}'", utt)
            return None
        if end <= start or start < 0:
            report.drop("invalid interval (end <= start or start < 0)", utt)
            return None
        if start >= duration or end > duration + END_TOLERANCE:
            report.drop("interval beyond the end of the audio", utt)
            return None
        if end > duration:
            report.note("interval end clipped to the audio duration", utt)
            end = duration
        if emotion == NEUTRAL:
            report.note("neutral interval (neutral is implicit)", utt)
            continue
        mapped.append((start, end, emotion))
    mapped.sort()
    merged: List[Tuple[float, float, str]] = []
    for start, end, emotion in mapped:
        if merged and start < merged[-1][1]:
            prev = merged[-1]
            if prev[2] != emotion:
                report.drop("overlapping intervals of different emotions", utt)
                return None
            report.note("overlapping intervals of one emotion merged", utt)
            merged[-1] = (prev[0], max(prev[1], end), emotion)
        else:
            merged.append((start, end, emotion))
    return merged


def _utterance_emotion(intervals: List[Tuple[float, float, str]]) -> str:
    """The emotion covering the most time (ties: first in time); neutral without intervals."""
    total: Dict[str, float] = {}
    for start, end, emotion in intervals:
        total[emotion] = total.get(emotion, 0.0) + end - start
    if not total:
        return NEUTRAL
    return max(total, key=lambda e: total[e])


def prepare_zed(
    zed_root: PathLike,
    out_dir: PathLike,
    json_path: Optional[PathLike] = None,
    strict: bool = False,
    names: Mapping[str, str] = ZED_EMOTION_NAMES,
    progress: bool = True,
) -> PrepReport:
    """Prepare ZED into the data directory ``out_dir`` (see the module docstring).

    Args:
        zed_root: The corpus folder (audio and, by default, ``ZED.json``).
        out_dir: The data directory to write.
        json_path: The annotation file (default: :func:`find_zed_json`).
        strict: Raise on the first malformed entry instead of counting it.
        names: ZED emotion name (lower case) -> ENT emotion.
        progress: Show a progress bar.

    Returns:
        The report (also written beside ``out_dir``).

    Raises:
        DataError: On a missing root or JSON, invalid JSON, (strict) a
            malformed entry, or when no utterance is kept.
    """
    root, out_dir = Path(zed_root), Path(out_dir)
    if not root.is_dir():
        raise DataError(root, None, "ZED root not found")
    jpath = Path(json_path) if json_path is not None else find_zed_json(root)
    entries, key_lines = load_zed_json(jpath)
    report = PrepReport("ZED", strict=strict)
    report.files_read += 1
    finder = _AudioFinder(root, jpath.parent)
    set_name = out_dir.name
    utts: List[CorpusUtterance] = []
    for utt in tqdm(sorted(entries), desc="ZED", unit="utt", disable=not progress):
        entry = entries[utt]
        report.lines_read += 1
        lineno = key_lines.get(utt)
        if not utt or any(ch.isspace() for ch in utt):
            report.bad_line(jpath, lineno, f"utterance id {utt!r} is empty or holds whitespace")
            continue
        if not isinstance(entry, dict):
            report.bad_line(jpath, lineno, f"entry of '{utt}' is not an object")
            continue
        wav_value = entry.get("wav")
        json_duration = _number(entry.get("duration"))
        if "emotion" not in entry:
            report.note("no \"emotion\" list (all neutral)", utt)
        raw_intervals = _parse_intervals(entry.get("emotion", []))
        if not isinstance(wav_value, str) or not wav_value:
            report.bad_line(jpath, lineno, f"'{utt}' has no \"wav\" path")
            continue
        if raw_intervals is None:
            report.bad_line(jpath, lineno, f"'{utt}': \"emotion\" must be a list of "
                            "{\"emo\": str, \"start\": number, \"end\": number}")
            continue
        transcription = entry.get("transcription")
        if not isinstance(transcription, str):
            report.drop("no transcription", utt)
            continue
        text = normalize_text(transcription)
        if not text:
            report.drop("empty transcript", utt)
            continue
        wav = finder.find(wav_value)
        if wav is None:
            report.drop("missing audio", utt)
            continue
        try:
            info = audio_info(wav)
        except AudioError as exc:
            report.drop("unreadable audio", utt)
            logger.debug("%s", exc)
            continue
        if info.frames == 0:
            report.drop("empty audio", utt)
            continue
        duration = info.duration
        if json_duration is not None and abs(json_duration - duration) > DURATION_NOTE:
            report.note(f"JSON duration differs from the audio by more than {DURATION_NOTE} s", utt)
        intervals = _clean_intervals(utt, raw_intervals, duration, report, names)
        if intervals is None:
            continue
        emotion = _utterance_emotion(intervals)
        utts.append(CorpusUtterance(utt, str(wav.resolve()), text, utt, emotion, duration, tuple(intervals)))
        report.keep(set_name, emotion)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    report.write(out_dir.parent / "zed_prep_report")
    report.check_not_empty(jpath)
    write_data_dir(out_dir, utts, emo_segments=True)
    return report
