"""Put several ``scores.json`` files side by side in one markdown table.

Usage::

    python -m ent.bin.compare_scores --scores ENT=exp/ent/decode/zed/scores.json \\
        FENT=exp/fent/decode/zed/scores.json [--metrics EDER FrameAcc WER CER] \\
        [--out RESULTS.md --title "ZED emotion diarization"]

One row per ``LABEL=PATH`` in the given order, one column per metric
(percent; definitions in :mod:`ent.scoring.cross_validation`). The table is
printed and, with ``--out``, written as a markdown file (replaced).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ent.bin.aggregate_folds import read_scores
from ent.scoring.cross_validation import METRICS, format_comparison
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write

logger = logging.getLogger("ent.bin.compare_scores")


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.compare_scores",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--scores", nargs="+", required=True, metavar="LABEL=PATH",
                        help="row label and scores.json path")
    parser.add_argument("--metrics", nargs="+", default=list(METRICS), choices=METRICS, help="columns")
    parser.add_argument("--out", default=None, help="markdown file to (over)write")
    parser.add_argument("--title", default="Results", help="title of --out")
    parser.add_argument("--note", action="append", default=[], help="extra line under the title (repeatable)")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.compare_scores``."""
    parser = get_parser()
    args = parser.parse_args(argv)
    setup_logging()
    rows: List[Tuple[str, Dict[str, Any]]] = []
    try:
        for item in args.scores:
            label, sep, path = item.partition("=")
            if not sep or not label or not path:
                parser.error(f"--scores: expected LABEL=PATH, got {item!r}")
            rows.append((label, read_scores(Path(path))))
        table = format_comparison(rows, args.metrics)
    except (DataError, KeyError) as exc:
        logger.error("%s", exc if isinstance(exc, DataError) else f"malformed scores: {exc!r}")
        sys.exit(1)
    sys.stdout.write(table)
    if args.out:
        lines = [f"# {args.title}", ""] + [f"- {n}" for n in args.note] + ([""] if args.note else [])
        with atomic_write(args.out) as fh:
            fh.write("\n".join(lines) + "\n" + table)
        logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
