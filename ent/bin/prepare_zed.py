"""Prepare ZED (Zaion Emotion Dataset) into a data directory with ``emo_segments``.

Usage::

    python -m ent.bin.prepare_zed --zed-root /corpora/ZED --out-dir data/zed \\
        [--json /corpora/ZED/ZED.json] [--strict]

Reads the annotation JSON (``{id: {wav, duration, emotion: [{emo, start,
end}], transcription}}``; default ``<zed-root>/ZED.json``) and writes
``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``, ``utt2emo``, ``utt2dur`` and
``emo_segments`` (happy/sad/angry intervals; the rest neutral), plus
``zed_prep_report.{txt,json}`` beside the data directory. The rules (emotion
names, audio path resolution, interval checks) are documented in
:mod:`ent.corpora.zed`.

Exit status 1, with a one-line error, on a missing root or JSON, invalid
JSON, (``--strict``) the first malformed entry, or an empty result.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from ent.corpora.zed import prepare_zed
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.prepare_zed",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--zed-root", required=True, help="the ZED folder (audio and ZED.json)")
    parser.add_argument("--out-dir", required=True, help="the data directory to write, e.g. data/zed")
    parser.add_argument("--json", default=None,
                        help="annotation file (default: <zed-root>/ZED.json, else its only *.json)")
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first malformed entry (default: count them in the report)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.prepare_zed``."""
    args = get_parser().parse_args(argv)
    setup_logging()
    logging.info("preparing ZED from %s into %s", args.zed_root, args.out_dir)
    try:
        report = prepare_zed(args.zed_root, args.out_dir, args.json, strict=args.strict,
                             progress=not args.no_progress)
    except DataError as exc:
        logging.error("%s", exc)
        sys.exit(1)
    report.emit()


if __name__ == "__main__":
    main()
