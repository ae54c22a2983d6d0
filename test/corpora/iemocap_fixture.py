"""Generates a tiny IEMOCAP tree in the exact release layout (never real data).

``make_iemocap_tree(root)`` writes, for each session ``n`` (1-5), two dialogs
``Ses0nF_impro01`` and ``Ses0nM_script01_1`` with:

* EmoEvaluation files starting with the ``%`` comment header, one block per
  utterance (tab-separated header line + per-annotator ``C-E1:``/``A-E1:``
  lines + a blank line), labels ``neu exc ang xxx fru hap sad oth`` (and
  ``neu`` for a line-only utterance);
* transcription files with punctuation, ``[LAUGHTER]``/``[BREATHING]`` tags,
  lines of non-utterance ids (``..._MXX0``, ``M_1``) and a line for an id
  without a label;
* one 16 kHz WAV per labelled utterance (short tones), except one utterance
  of session 2 whose audio is missing;
* traps that must be ignored: a hidden ``._<dialog>.txt`` file (not UTF-8)
  and a ``Categorical/`` sub-folder in EmoEvaluation; session 3's files use
  CRLF line endings.

:data:`EXPECTED` lists what a correct preparation keeps: utterance id ->
(session, speaker, emotion, normalized text); :data:`EXPECTED_DROPS` the drop
counts by reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

SESSIONS = (1, 2, 3, 4, 5)
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class FixtureUtt:
    """One utterance of the fixture (ids relative to the session)."""

    dialog: str  # e.g. "F_impro01" -> Ses0nF_impro01
    suffix: str  # e.g. "F000"
    label: str
    raw_text: str
    norm_text: Optional[str]  # None: dropped for an empty transcript
    emotion: Optional[str]  # None: label outside the protocol


UTTS: Tuple[FixtureUtt, ...] = (
    FixtureUtt("F_impro01", "F000", "neu", "Excuse me.", "excuse me", "neutral"),
    FixtureUtt("F_impro01", "M000", "ang", "[LAUGHTER] What's the   problem?!", "what's the problem", "angry"),
    FixtureUtt("F_impro01", "F001", "exc", "Oh, wow -- that's GREAT!", "oh wow that's great", "happy"),
    FixtureUtt("F_impro01", "M001", "xxx", "Well... I don't know.", "well i don't know", None),
    FixtureUtt("F_impro01", "F002", "fru", "Ugh, whatever.", "ugh whatever", None),
    FixtureUtt("M_script01_1", "F000", "hap", "I'm (so) happy [BREATHING] today.", "i'm so happy today", "happy"),
    FixtureUtt("M_script01_1", "M000", "sad", "Goodbye; see-you.", "goodbye see you", "sad"),
    FixtureUtt("M_script01_1", "F001", "oth", "Hmm?", "hmm", None),
    FixtureUtt("M_script01_1", "M001", "neu", "[LAUGHTER]", None, "neutral"),
)
#: Session 2's extra utterance without audio.
MISSING_AUDIO = FixtureUtt("F_impro01", "M002", "neu", "Where is it?", "where is it", "neutral")

EVAL_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"
CATEGORY_NAMES = {
    "neu": "Neutral state", "ang": "Anger", "exc": "Excited", "xxx": "Frustration", "fru": "Frustration",
    "hap": "Happiness", "sad": "Sadness", "oth": "Other",
}


def utt_id(session: int, u: FixtureUtt) -> str:
    """Full utterance id, e.g. ``Ses01F_impro01_F000``."""
    return f"Ses0{session}{u.dialog}_{u.suffix}"


def dialog_id(session: int, u: FixtureUtt) -> str:
    """Dialog id, e.g. ``Ses01F_impro01``."""
    return f"Ses0{session}{u.dialog}"


def session_utts(session: int) -> List[FixtureUtt]:
    """The utterances labelled in a session."""
    return list(UTTS) + ([MISSING_AUDIO] if session == 2 else [])


def _expected() -> Dict[str, Tuple[int, str, str, str]]:
    out = {}
    for s in SESSIONS:
        for u in UTTS:
            if u.emotion is not None and u.norm_text is not None:
                out[utt_id(s, u)] = (s, f"Ses0{s}{u.suffix[0]}", u.emotion, u.norm_text)
    return out


#: utt -> (session, speaker, emotion, text) of every utterance a correct preparation keeps.
EXPECTED: Dict[str, Tuple[int, str, str, str]] = _expected()
#: Drop reason -> count.
EXPECTED_DROPS: Dict[str, int] = {
    "label 'xxx'": 5, "label 'fru'": 5, "label 'oth'": 5, "empty transcript": 5, "missing audio": 1,
}


def _write_text(path: Path, lines: Sequence[str], crlf: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nl = "\r\n" if crlf else "\n"
    path.write_bytes((nl.join(lines) + nl).encode("utf-8"))


def _write_wav(path: Path, seconds: float, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng(seed)
    wave = 0.2 * np.sin(2 * np.pi * (200 + 40 * (seed % 7)) * t) + 0.01 * rng.standard_normal(n)
    sf.write(str(path), wave.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def duration_of(index: int) -> float:
    """Audio duration of the ``index``-th utterance of a session (s)."""
    return 0.6 + 0.1 * (index % 4)


def make_iemocap_tree(root: Path, sessions: Sequence[int] = SESSIONS) -> Path:
    """Write the fixture tree under ``root`` (see the module docstring); returns ``root``."""
    root = Path(root)
    for s in sessions:
        sdir = root / f"Session{s}"
        crlf = s == 3
        by_dialog: Dict[str, List[Tuple[int, FixtureUtt]]] = {}
        for i, u in enumerate(session_utts(s)):
            by_dialog.setdefault(dialog_id(s, u), []).append((i, u))
        for dialog, items in by_dialog.items():
            ev = [EVAL_HEADER, ""]
            tr = []
            t = 1.5
            for i, u in items:
                uid = utt_id(s, u)
                start, end = t, t + duration_of(i)
                t = end + 0.7
                ev.append(f"[{start:.4f} - {end:.4f}]\t{uid}\t{u.label}\t[2.5000, 3.0000, 2.5000]")
                cat = CATEGORY_NAMES[u.label]
                ev += [f"C-E1:\t{cat};\t()", f"C-E2:\t{cat}; Other;\t(somewhat)",
                       f"C-{u.suffix[0]}1:\t{cat};\t()", "A-E1:\tval 3; act 2; dom  2;\t()",
                       f"A-{u.suffix[0]}1:\tval 2; act 3; dom  3;\t(calm)", ""]
                tr.append(f"{uid} [{start:08.4f}-{end:08.4f}]: {u.raw_text}")
                if not (s == 2 and u == MISSING_AUDIO):
                    wav = sdir / "sentences" / "wav" / dialog / f"{uid}.wav"
                    _write_wav(wav, duration_of(i), seed=s * 100 + i)
            # Lines of non-utterance ids, and a transcript without a label.
            tr.insert(1, f"{dialog}_MXX0 [010.0000-011.0000]: [GARBAGE]")
            tr.append("M_1 [100.0000-101.5000]: Yeah, right.")
            tr.append(f"{dialog}_F099 [120.0000-121.0000]: No label for me.")
            _write_text(sdir / "dialog" / "EmoEvaluation" / f"{dialog}.txt", ev, crlf)
            _write_text(sdir / "dialog" / "transcriptions" / f"{dialog}.txt", tr, crlf)
            # Traps: hidden resource-fork file (not UTF-8) and a sub-folder of per-annotator files.
            (sdir / "dialog" / "EmoEvaluation" / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07\xff\xfe")
            _write_text(sdir / "dialog" / "EmoEvaluation" / "Categorical" / f"{dialog}_e1_cat.txt",
                        [f"{utt_id(s, items[0][1])} :Neutral state; ()"], crlf)
    return root
