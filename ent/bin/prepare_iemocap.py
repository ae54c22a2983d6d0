"""Prepare IEMOCAP (release layout) into one Kaldi-style data directory per session.

Usage::

    python -m ent.bin.prepare_iemocap --iemocap-root /corpora/IEMOCAP_full_release \\
        --out-dir data [--sessions 1 2 3 4 5] [--strict] \\
        [--label-map neu:neutral,hap:happy,exc:happy,ang:angry,sad:sad]

Writes ``<out-dir>/session<n>/`` (``wav.scp`` with absolute paths, ``text``,
``utt2spk``, ``spk2utt``, ``utt2emo``, ``utt2dur``) and
``<out-dir>/iemocap_prep_report.{txt,json}``: what was read, kept and
dropped, and why (labels outside the protocol, missing audio, empty
transcripts, unparseable lines). The parsing rules, label mapping and text
normalization are documented in :mod:`ent.corpora.iemocap`.

Exit status 1, with a one-line ``file:line: message`` error, on a missing
folder, (``--strict``) the first unparseable line, or an empty result.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Dict, List, Optional

from ent.corpora.iemocap import FOUR_CLASS_MAP, IEMOCAP_LABELS, SESSIONS, prepare_iemocap
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError


def parse_label_map(spec: str) -> Dict[str, str]:
    """Parse ``"neu:neutral,hap:happy,..."`` into a mapping.

    Raises:
        ValueError: On a malformed item or a label IEMOCAP does not have.
    """
    out: Dict[str, str] = {}
    for item in (i.strip() for i in spec.split(",")):
        if not item:
            continue
        label, sep, emotion = item.partition(":")
        if not sep or not label.strip() or not emotion.strip():
            raise ValueError(f"expected 'label:emotion', got {item!r}")
        label = label.strip().lower()
        if label not in IEMOCAP_LABELS:
            raise ValueError(f"unknown IEMOCAP label {label!r} (known: {' '.join(IEMOCAP_LABELS)})")
        out[label] = emotion.strip()
    if not out:
        raise ValueError("empty label map")
    return out


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.prepare_iemocap",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--iemocap-root", required=True,
                        help="the release root, holding Session1 ... Session5")
    parser.add_argument("--out-dir", required=True, help="where session<n>/ data dirs are written")
    parser.add_argument("--sessions", type=int, nargs="+", default=list(SESSIONS), choices=SESSIONS,
                        help="sessions to prepare")
    parser.add_argument("--label-map", default=",".join(f"{k}:{v}" for k, v in FOUR_CLASS_MAP.items()),
                        help="release label -> emotion; labels not listed are dropped (and counted)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first unparseable line (default: count them in the report)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.prepare_iemocap``."""
    parser = get_parser()
    args = parser.parse_args(argv)
    setup_logging()
    try:
        label_map = parse_label_map(args.label_map)
    except ValueError as exc:
        parser.error(f"--label-map: {exc}")
    logging.info("preparing IEMOCAP from %s into %s (sessions %s, labels %s)", args.iemocap_root,
                 args.out_dir, " ".join(map(str, args.sessions)), args.label_map)
    try:
        report = prepare_iemocap(args.iemocap_root, args.out_dir, sorted(set(args.sessions)), label_map,
                                 strict=args.strict, progress=not args.no_progress)
    except DataError as exc:
        logging.error("%s", exc)
        sys.exit(1)
    report.emit()


if __name__ == "__main__":
    main()
