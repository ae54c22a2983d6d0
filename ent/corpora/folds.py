"""Leave-one-session-out cross-validation folds with a speaker-held-out dev set.

With sessions ``S = [s_0, ..., s_{n-1}]`` (sorted; IEMOCAP: 1-5), fold ``k``
(1-based, ``k = s_i``) tests on session ``s_i`` and trains on the others. Its
validation (``dev``) set, used for model and epoch selection, is one speaker
of one *training* session, chosen by a fixed rule:

* dev session: the previous session, cyclically: ``s_{i-1}`` (fold 1 → the
  last session);
* dev speaker: the male speaker (``...M``) of that session for even ``i``
  (folds 1, 3, 5), the female one (``...F``) for odd ``i`` (folds 2, 4).

For IEMOCAP this gives dev speakers Ses05M, Ses01F, Ses02M, Ses03F, Ses04M
for folds 1-5: every session serves once as the dev source and both genders
are used. The dev speaker's utterances leave the training set, so ``train``,
``dev`` and ``test`` are speaker-disjoint and the test session is never seen
before the final scoring. Any fold's dev speaker can be overridden.

Speakers are read from the session dirs' ``utt2spk``; the rule needs speaker
ids ending in ``F``/``M`` (IEMOCAP's ``Ses01F``), an override does not.

Written for fold ``k``: ``<out_dir>/fold<k>/{train,dev,test}/`` and
``<out_dir>/fold<k>/fold.json`` (sessions, dev speaker, utterance counts).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ent.data.combine import combine_data_dirs
from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write, read_table

PathLike = Union[str, Path]

logger = logging.getLogger(__name__)

FOLD_SETS: Tuple[str, ...] = ("train", "dev", "test")


@dataclass(frozen=True)
class Fold:
    """One leave-one-session-out fold.

    Attributes:
        index: Fold number (= the test session's number).
        test_session: Held-out session.
        train_sessions: The other sessions (sorted).
        dev_speaker: Speaker of a training session whose utterances form
            the dev set (and leave the training set).
    """

    index: int
    test_session: int
    train_sessions: Tuple[int, ...]
    dev_speaker: str


@dataclass
class FoldSummary:
    """A written fold: its definition and the utterance count of each set."""

    fold: Fold
    counts: Dict[str, int] = field(default_factory=dict)


def fold_name(index: int) -> str:
    """Folder name of fold ``index`` (``fold1``)."""
    return f"fold{index}"


def session_speakers(session_dir: PathLike) -> Set[str]:
    """Speakers of a data directory (values of its ``utt2spk``)."""
    return {e.value for e in read_table(Path(session_dir) / "utt2spk")}


def default_dev_speaker(test_session: int, speakers: Mapping[int, Set[str]]) -> str:
    """The dev speaker of the fold testing ``test_session`` (rule of the module docstring).

    Args:
        test_session: The held-out session.
        speakers: Session -> its speakers.

    Raises:
        ValueError: With fewer than two sessions, or when the dev session
            lacks a speaker of the required gender letter.
    """
    sessions = sorted(speakers)
    if len(sessions) < 2:
        raise ValueError("cross-validation needs at least two sessions")
    i = sessions.index(test_session)
    dev_session = sessions[i - 1]
    gender = "M" if i % 2 == 0 else "F"
    matching = sorted(s for s in speakers[dev_session] if s.endswith(gender))
    if len(matching) != 1:
        raise ValueError(
            f"cannot pick the dev speaker of fold {test_session}: session {dev_session} has "
            f"{len(matching)} speakers ending in '{gender}' ({sorted(speakers[dev_session])}); "
            "name one with a dev speaker override"
        )
    return matching[0]


def plan_folds(
    speakers: Mapping[int, Set[str]], dev_speakers: Optional[Mapping[int, str]] = None
) -> List[Fold]:
    """One fold per session.

    Args:
        speakers: Session -> its speakers.
        dev_speakers: Optional fold (= test session) -> dev speaker overrides.

    Raises:
        ValueError: On an override for an unknown fold, or a dev speaker that
            is not a speaker of one of the fold's training sessions.
    """
    dev_speakers = dict(dev_speakers or {})
    unknown = sorted(set(dev_speakers) - set(speakers))
    if unknown:
        raise ValueError(f"dev speaker override for unknown folds {unknown} (sessions: {sorted(speakers)})")
    folds = []
    for test in sorted(speakers):
        train = tuple(s for s in sorted(speakers) if s != test)
        dev = dev_speakers.get(test) or default_dev_speaker(test, speakers)
        if not any(dev in speakers[s] for s in train):
            raise ValueError(f"dev speaker '{dev}' of fold {test} is not a speaker of its training "
                             f"sessions {list(train)}")
        folds.append(Fold(test, test, train, dev))
    return folds


def make_folds(
    session_dirs: Mapping[int, PathLike],
    out_dir: PathLike,
    folds: Optional[Sequence[int]] = None,
    dev_speakers: Optional[Mapping[int, str]] = None,
) -> List[FoldSummary]:
    """Write the fold data directories.

    Args:
        session_dirs: Session number -> its data directory.
        out_dir: Where ``fold<k>/`` folders are written.
        folds: Folds to write (default: all).
        dev_speakers: Optional fold -> dev speaker overrides.

    Returns:
        One summary per written fold.

    Raises:
        DataError: On unreadable session dirs, or when a written fold is not
            speaker-disjoint (see :func:`check_fold`).
        ValueError: On unknown folds or bad overrides.
    """
    out_dir = Path(out_dir)
    speakers = {s: session_speakers(d) for s, d in session_dirs.items()}
    plan = plan_folds(speakers, dev_speakers)
    wanted = list(folds) if folds is not None else [f.index for f in plan]
    unknown = sorted(set(wanted) - {f.index for f in plan})
    if unknown:
        raise ValueError(f"unknown folds {unknown} (sessions: {sorted(session_dirs)})")
    summaries = []
    for fold in plan:
        if fold.index not in wanted:
            continue
        fdir = out_dir / fold_name(fold.index)
        train_srcs = [session_dirs[s] for s in fold.train_sessions]
        counts = {
            "train": combine_data_dirs(train_srcs, fdir / "train", lambda spk, d=fold.dev_speaker: spk != d),
            "dev": combine_data_dirs(train_srcs, fdir / "dev", lambda spk, d=fold.dev_speaker: spk == d),
            "test": combine_data_dirs([session_dirs[fold.test_session]], fdir / "test"),
        }
        check_fold(fdir)
        summary = FoldSummary(fold, counts)
        with atomic_write(fdir / "fold.json") as fh:
            json.dump({**asdict(fold), "counts": counts}, fh, indent=2, allow_nan=False)
            fh.write("\n")
        logger.info("%s: test session %d (%d utts), dev speaker %s (%d utts), train sessions %s (%d utts)",
                    fdir, fold.test_session, counts["test"], fold.dev_speaker, counts["dev"],
                    " ".join(map(str, fold.train_sessions)), counts["train"])
        summaries.append(summary)
    return summaries


def check_fold(fold_dir: PathLike) -> None:
    """Check that a fold's sets share no utterance and no speaker.

    Raises:
        DataError: Naming the first shared utterance or speaker.
    """
    fold_dir = Path(fold_dir)
    utts: Dict[str, Dict[str, str]] = {}
    for name in FOLD_SETS:
        utts[name] = {e.key: e.value for e in read_table(fold_dir / name / "utt2spk")}
    for i, a in enumerate(FOLD_SETS):
        for b in FOLD_SETS[i + 1:]:
            shared_utts = sorted(utts[a].keys() & utts[b].keys())
            if shared_utts:
                raise DataError(fold_dir / b / "utt2spk", None,
                                f"utterance '{shared_utts[0]}' is in both {a} and {b}")
            shared_spk = sorted(set(utts[a].values()) & set(utts[b].values()))
            if shared_spk:
                raise DataError(fold_dir / b / "utt2spk", None,
                                f"speaker '{shared_spk[0]}' is in both {a} and {b}")


def find_session_dirs(data_dir: PathLike, sessions: Optional[Sequence[int]] = None) -> Dict[int, Path]:
    """``<data_dir>/session<n>`` folders (all present ones, or the named sessions).

    Raises:
        DataError: When a named session is missing, or none is found.
    """
    data_dir = Path(data_dir)
    if sessions is None:
        found: Dict[int, Path] = {}
        for p in sorted(data_dir.glob("session*")):
            suffix = p.name[len("session"):]
            if p.is_dir() and suffix.isdigit():
                found[int(suffix)] = p
        if not found:
            raise DataError(data_dir, None, "no session<n> data directory")
        return dict(sorted(found.items()))
    out = {}
    for s in sessions:
        p = data_dir / f"session{s}"
        if not p.is_dir():
            raise DataError(p, None, "session data directory not found")
        out[s] = p
    return out
