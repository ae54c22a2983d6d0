"""IEMOCAP: the released layout → one Kaldi-style data directory per session.

Layout read (``IEMOCAP_full_release/``, sessions 1-5)::

    Session{n}/dialog/EmoEvaluation/<dialog>.txt      labels (top-level *.txt only)
    Session{n}/dialog/transcriptions/<dialog>.txt     transcripts
    Session{n}/sentences/wav/<dialog>/<utt>.wav       audio, one file per utterance

**Evaluation files.** Each utterance has a header line, tab separated,
``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]``
(times, utterance id, majority label, valence/activation/dominance), followed
by one line per annotator (``C-E1:<TAB>Neutral state;<TAB>()`` for categories,
``A-E1:<TAB>val 3; act 2; dom  2;<TAB>()`` for attributes), which are
ignored. The file starts with a ``% [START_TIME - END_TIME] TURN_NAME EMOTION
[V, A, D]`` comment line. Labels: ``neu hap exc ang sad fru sur fea dis oth
xxx`` (``xxx``: the annotators did not agree).

**Transcription files.** ``Ses01F_impro01_F000 [006.2901-008.2357]: Excuse
me.``; lines of ids that are not utterances (e.g. ``..._MXX0``, or ids with an
``M_``/``F_`` prefix: speech of the other party that was not segmented) are
ignored and counted.

**Utterance ids** are ``Ses0<n><F|M>_<dialog part>_<F|M><3 digits>``: the
dialog is the id without its last ``_`` field, and the speaker is the session
plus the gender letter of the *last* field (``Ses01F_impro01_M003`` is spoken
by ``Ses01M``; the first letter names the actor wearing the markers).

**Four-class protocol** (:data:`FOUR_CLASS_MAP`): ``neu`` → neutral, ``hap``
and ``exc`` → happy (excited merged into happy), ``ang`` → angry, ``sad`` →
sad; every other label is dropped and counted per label. In the full release
this keeps 5531 utterances (1708 neutral, 1636 happy, 1103 angry, 1084 sad).

**Text normalization**: :func:`ent.text.normalize.normalize_text` with its
defaults, i.e. Unicode NFKC, bracketed non-speech tags removed with their
content (``[LAUGHTER]``, ``[BREATHING]``, ``[GARBAGE]``, ``<...>``,
``{...}``), lower case, apostrophes kept only inside words (``don't``), every
other punctuation mark and symbol replaced by a space (``well--`` → ``well``,
``uh-huh`` → ``uh huh``), whitespace collapsed. This is the normalization the
recipe's tokenizer applies, so references and hypotheses agree. An utterance
whose transcript is empty after normalization (only non-speech tags) is
dropped and counted (``empty transcript``): ENT needs a token sequence.

**Audio**: an utterance whose WAV file is missing or unreadable is dropped
and counted; durations come from the file headers (``soundfile``).
``wav.scp`` holds absolute paths.

Every unparseable line is counted in the :class:`~ent.corpora.report.PrepReport`
(with ``strict``, the first one is a :class:`~ent.utils.errors.DataError`
naming ``file:line``), and a session that keeps no utterance is an error.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from tqdm import tqdm

from ent.corpora.record import CorpusUtterance, write_data_dir
from ent.corpora.report import PrepReport
from ent.data.audio import TARGET_SAMPLE_RATE, AudioError, audio_info
from ent.text.normalize import normalize_text
from ent.utils.errors import DataError
from ent.utils.fileio import read_lines

PathLike = Union[str, Path]

logger = logging.getLogger(__name__)

SESSIONS: Tuple[int, ...] = (1, 2, 3, 4, 5)
#: Every categorical label of the release (header lines of EmoEvaluation files).
IEMOCAP_LABELS: Tuple[str, ...] = ("neu", "hap", "exc", "ang", "sad", "fru", "sur", "fea", "dis", "oth", "xxx")
#: The common four-class protocol: release label -> ENT emotion.
FOUR_CLASS_MAP: Dict[str, str] = {"neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad"}

_UTT_RE = re.compile(r"^Ses0(?P<session>[1-5])[FM]_(?P<part>.+)_(?P<gender>[FM])\d{3}$")
_TIMES = r"\[\s*(?P<start>\d+(?:\.\d*)?)\s*-\s*(?P<end>\d+(?:\.\d*)?)\s*\]"
_EVAL_RE = re.compile(
    r"^" + _TIMES + r"\s+(?P<utt>\S+)\s+(?P<label>[A-Za-z]+)(?:\s+\[(?P<vad>[^\]]*)\])?\s*$"
)
_ANNOTATOR_RE = re.compile(r"^[A-Z]-[A-Za-z]+\d*:")
_TRANS_RE = re.compile(r"^(?P<utt>\S+)\s+" + _TIMES + r"\s*:\s*(?P<text>.*)$")


@dataclass(frozen=True)
class EmoLabel:
    """A header line of an EmoEvaluation file.

    Attributes:
        utt: Utterance id.
        label: Categorical label as released (lower case), e.g. ``neu``.
        start: Start time in the dialog (s).
        end: End time in the dialog (s).
        path: The evaluation file.
        lineno: 1-based line number.
    """

    utt: str
    label: str
    start: float
    end: float
    path: Path
    lineno: int


@dataclass(frozen=True)
class Transcript:
    """A line of a transcription file.

    Attributes:
        utt: Utterance id.
        text: Raw transcript (as released).
        path: The transcription file.
        lineno: 1-based line number.
    """

    utt: str
    text: str
    path: Path
    lineno: int


def parse_utt_id(utt: str) -> Optional[Tuple[int, str, str]]:
    """Session, dialog and speaker of an utterance id.

    Returns:
        ``(session, dialog, speaker)``, e.g. ``(1, "Ses01F_impro01", "Ses01M")``
        for ``Ses01F_impro01_M003``; ``None`` when ``utt`` is not an
        utterance id.
    """
    m = _UTT_RE.match(utt)
    if m is None:
        return None
    session = int(m.group("session"))
    dialog = utt.rsplit("_", 1)[0]
    return session, dialog, f"Ses0{session}{m.group('gender')}"


def normalize_transcript(raw: str) -> str:
    """The recipe's text normalization (see the module docstring)."""
    return normalize_text(raw)


def _visible_txt_files(folder: Path) -> List[Path]:
    """Top-level ``*.txt`` files of a folder, without hidden ones (``._x.txt``)."""
    if not folder.is_dir():
        raise DataError(folder, None, "folder not found (is this the IEMOCAP release root?)")
    return sorted(p for p in folder.glob("*.txt") if p.is_file() and not p.name.startswith("."))


def _content_lines(path: Path, report: PrepReport) -> Iterator[Tuple[int, str]]:
    """``(lineno, stripped line)`` of the non-blank lines of a file; counts the file,
    its lines and its blank lines in ``report``."""
    report.files_read += 1
    for lineno, line in enumerate(read_lines(path), start=1):
        report.lines_read += 1
        stripped = line.strip()
        if stripped:
            yield lineno, stripped
        else:
            report.ignore("blank line")


def parse_emo_evaluation(path: PathLike, report: PrepReport) -> List[EmoLabel]:
    """Read the utterance labels of an EmoEvaluation file.

    Header lines become :class:`EmoLabel`; comment (``%``), blank and
    annotator lines are ignored (counted); anything else is an unparseable
    line (counted, or raised in strict mode).

    Raises:
        DataError: On an unreadable file; in strict mode on the first
            unparseable line.
    """
    path = Path(path)
    out: List[EmoLabel] = []
    for lineno, stripped in _content_lines(path, report):
        if stripped.startswith("%"):
            report.ignore("comment line")
            continue
        if _ANNOTATOR_RE.match(stripped):
            report.ignore("annotator line")
            continue
        m = _EVAL_RE.match(stripped)
        if m is None:
            report.bad_line(path, lineno, f"not an evaluation header or annotator line: {stripped[:80]!r}")
            continue
        label = m.group("label").lower()
        if label not in IEMOCAP_LABELS:
            report.bad_line(path, lineno,
                            f"unknown label '{m.group('label')}' (known: {' '.join(IEMOCAP_LABELS)})")
            continue
        start, end = float(m.group("start")), float(m.group("end"))
        out.append(EmoLabel(m.group("utt"), label, start, end, path, lineno))
    return out


def parse_transcription(path: PathLike, report: PrepReport) -> List[Transcript]:
    """Read the transcripts of a transcription file.

    Lines of ids that are not utterance ids (see :func:`parse_utt_id`) and
    blank lines are ignored (counted); a line without the
    ``<id> [<start>-<end>]: <text>`` form is unparseable.

    Raises:
        DataError: On an unreadable file; in strict mode on the first
            unparseable line.
    """
    path = Path(path)
    out: List[Transcript] = []
    for lineno, stripped in _content_lines(path, report):
        m = _TRANS_RE.match(stripped)
        if m is None:
            report.bad_line(path, lineno, f"not '<id> [<start>-<end>]: <text>': {stripped[:80]!r}")
            continue
        if parse_utt_id(m.group("utt")) is None:
            report.ignore("transcription of a non-utterance id")
            continue
        out.append(Transcript(m.group("utt"), m.group("text"), path, lineno))
    return out


_Item = TypeVar("_Item", EmoLabel, Transcript)


def _collect(items: Iterable[_Item], report: PrepReport, what: str) -> Dict[str, _Item]:
    """Index labels or transcripts by utterance id; a repeated id is a bad line."""
    out: Dict[str, _Item] = {}
    for item in items:
        first = out.get(item.utt)
        if first is not None:
            report.bad_line(item.path, item.lineno,
                            f"second {what} of '{item.utt}' (first at {first.path}:{first.lineno})")
            continue
        out[item.utt] = item
    return out


def prepare_session(
    root: PathLike,
    session: int,
    report: PrepReport,
    label_map: Mapping[str, str] = FOUR_CLASS_MAP,
    progress: bool = False,
) -> List[CorpusUtterance]:
    """Parse one session and return its utterances of the protocol.

    Args:
        root: The IEMOCAP release root (holds ``Session1`` ... ``Session5``).
        session: Session number (1-5).
        report: Counts are added here.
        label_map: Release label -> emotion; other labels are dropped.
        progress: Show a progress bar over the session's dialogs.

    Raises:
        DataError: When a folder of the layout is missing, a file is
            unreadable, or (strict) a line cannot be parsed.
    """
    root = Path(root)
    sdir = root / f"Session{session}"
    if not sdir.is_dir():
        raise DataError(sdir, None, "session folder not found (is this the IEMOCAP release root?)")
    set_name = f"session{session}"
    eval_files = _visible_txt_files(sdir / "dialog" / "EmoEvaluation")
    trans_files = _visible_txt_files(sdir / "dialog" / "transcriptions")
    if not eval_files:
        raise DataError(sdir / "dialog" / "EmoEvaluation", None, "no *.txt evaluation file")
    labels_list: List[EmoLabel] = []
    for path in tqdm(eval_files, desc=f"Session{session} labels", unit="file", disable=not progress):
        labels_list += parse_emo_evaluation(path, report)
    trans_list: List[Transcript] = []
    for path in trans_files:
        trans_list += parse_transcription(path, report)
    labels = _collect(labels_list, report, "label")
    transcripts = _collect(trans_list, report, "transcription")

    for utt in sorted(set(transcripts) - set(labels)):
        report.note("transcription without a label", utt)

    wav_root = sdir / "sentences" / "wav"
    utts: List[CorpusUtterance] = []
    for utt in sorted(labels):
        lab = labels[utt]
        parsed = parse_utt_id(utt)
        if parsed is None:
            report.bad_line(lab.path, lab.lineno, f"'{utt}' is not an IEMOCAP utterance id")
            continue
        utt_session, dialog, speaker = parsed
        if utt_session != session:
            report.bad_line(lab.path, lab.lineno, f"'{utt}' belongs to session {utt_session}, not {session}")
            continue
        emotion = label_map.get(lab.label)
        if emotion is None:
            report.drop(f"label '{lab.label}'", utt)
            continue
        trans = transcripts.get(utt)
        if trans is None:
            report.drop("no transcription", utt)
            continue
        text = normalize_transcript(trans.text)
        if not text:
            report.drop("empty transcript", utt)
            continue
        wav = wav_root / dialog / f"{utt}.wav"
        try:
            info = audio_info(wav)
        except AudioError as exc:
            report.drop("missing audio" if not wav.is_file() else "unreadable audio", utt)
            logger.debug("%s", exc)
            continue
        if info.frames == 0:
            report.drop("empty audio", utt)
            continue
        if info.sample_rate != TARGET_SAMPLE_RATE or info.channels != 1:
            report.note(f"audio resampled or down-mixed on load ({info.sample_rate} Hz, {info.channels} ch)",
                        utt)
        utts.append(CorpusUtterance(utt, str(wav.resolve()), text, speaker, emotion, info.duration))
        report.keep(set_name, emotion)
    return utts


def prepare_iemocap(
    root: PathLike,
    out_dir: PathLike,
    sessions: Sequence[int] = SESSIONS,
    label_map: Mapping[str, str] = FOUR_CLASS_MAP,
    strict: bool = False,
    progress: bool = True,
) -> PrepReport:
    """Prepare IEMOCAP into ``<out_dir>/session<n>/`` data directories.

    Also writes ``<out_dir>/iemocap_prep_report.{txt,json}``.

    Args:
        root: The IEMOCAP release root.
        out_dir: Where the session data directories are written.
        sessions: Sessions to prepare.
        label_map: Release label -> emotion (default: the four-class protocol).
        strict: Raise on the first unparseable line instead of counting.
        progress: Show progress bars.

    Returns:
        The report (also logged).

    Raises:
        DataError: On a missing folder, an unreadable file, (strict) an
            unparseable line, or a session that keeps no utterance.
    """
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise DataError(root, None, "IEMOCAP root not found")
    unknown = sorted(set(label_map) - set(IEMOCAP_LABELS))
    if unknown:
        raise ValueError(f"label_map names labels that IEMOCAP does not have: {unknown}")
    if not sessions or any(s not in SESSIONS for s in sessions):
        raise ValueError(f"sessions must be among {list(SESSIONS)}, got {list(sessions)}")
    report = PrepReport("IEMOCAP", strict=strict)
    per_session: Dict[int, List[CorpusUtterance]] = {}
    for session in sessions:
        per_session[session] = prepare_session(root, session, report, label_map, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.write(out_dir / "iemocap_prep_report")
    report.check_not_empty(root)
    for session, utts in per_session.items():
        if not utts:
            raise DataError(root / f"Session{session}", None,
                            f"no utterance kept for session {session} "
                            f"(see {out_dir / 'iemocap_prep_report.txt'})")
    for session, utts in per_session.items():
        write_data_dir(out_dir / f"session{session}", utts)
    return report
