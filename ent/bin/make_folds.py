"""Write leave-one-session-out cross-validation folds from per-session data directories.

Usage::

    python -m ent.bin.make_folds --data-dir data [--out-dir data] [--folds 1 2 3 4 5] \\
        [--dev-speaker 1=Ses05M ...]

Reads ``<data-dir>/session<n>/`` and writes, for each fold ``k``,
``<out-dir>/fold<k>/{train,dev,test}/`` and ``fold<k>/fold.json``: ``test``
is session ``k``, ``dev`` one speaker of a training session (the rule is in
:mod:`ent.corpora.folds`: Ses05M, Ses01F, Ses02M, Ses03F, Ses04M for IEMOCAP
folds 1-5), ``train`` the rest of the training sessions. Every fold is
checked to share no utterance and no speaker between its sets.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Dict, List, Optional

from ent.corpora.folds import find_session_dirs, make_folds
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError


def parse_dev_speakers(items: List[str]) -> Dict[int, str]:
    """Parse ``["1=Ses05M", ...]`` into ``{1: "Ses05M"}``.

    Raises:
        ValueError: On a malformed item or a fold given twice.
    """
    out: Dict[int, str] = {}
    for item in items:
        fold, sep, speaker = item.partition("=")
        if not sep or not fold.strip().isdigit() or not speaker.strip():
            raise ValueError(f"expected FOLD=SPEAKER, got {item!r}")
        if int(fold) in out:
            raise ValueError(f"fold {fold} given twice")
        out[int(fold)] = speaker.strip()
    return out


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.make_folds",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data-dir", required=True, help="folder holding session<n>/ data dirs")
    parser.add_argument("--out-dir", default=None, help="where fold<k>/ folders go (default: --data-dir)")
    parser.add_argument("--folds", type=int, nargs="+", default=None, help="folds to write (default: all)")
    parser.add_argument("--dev-speaker", action="append", default=[], metavar="FOLD=SPEAKER",
                        help="override the dev speaker of a fold (repeatable)")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.make_folds``."""
    parser = get_parser()
    args = parser.parse_args(argv)
    setup_logging()
    try:
        dev_speakers = parse_dev_speakers(args.dev_speaker)
    except ValueError as exc:
        parser.error(f"--dev-speaker: {exc}")
    out_dir = args.out_dir or args.data_dir
    try:
        sessions = find_session_dirs(args.data_dir)
        logging.info("sessions: %s", " ".join(str(p) for p in sessions.values()))
        summaries = make_folds(sessions, out_dir, args.folds, dev_speakers)
    except (DataError, ValueError) as exc:
        logging.error("%s", exc)
        sys.exit(1)
    for s in summaries:
        f = s.fold
        print(f"fold{f.index}: test session {f.test_session} ({s.counts['test']} utts), "
              f"dev speaker {f.dev_speaker} ({s.counts['dev']} utts), "
              f"train sessions {' '.join(map(str, f.train_sessions))} ({s.counts['train']} utts)")


if __name__ == "__main__":
    main()
