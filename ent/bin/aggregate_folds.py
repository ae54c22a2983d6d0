"""Aggregate per-fold scores of a cross-validation recipe into ``RESULTS.md``.

Usage::

    python -m ent.bin.aggregate_folds --expdir exp --folds 1 2 3 4 5 --models ent fent \\
        [--decode-dir decode_decode] [--dataset test] [--out RESULTS.md] [--title ...]

Reads ``<expdir>/fold<k>/<model>/<decode-dir>/<dataset>/scores.json`` (written by
``python -m ent.bin.score``) for every fold and model and writes a markdown
file with, per model, one row per fold, the mean ± sample standard deviation
over folds and the pooled scores of WA, UA, macro-F1, WER and CER, and a
summary table over models (definitions in :mod:`ent.scoring.cross_validation`).
The table is also printed. A missing ``scores.json`` is an error unless
``--allow-missing`` (the fold is then left out and named in the notes).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ent.scoring.cross_validation import CV_METRICS, METRICS, format_cv_results, format_summary_table
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write, read_lines

logger = logging.getLogger("ent.bin.aggregate_folds")


def read_scores(path: Path) -> Dict[str, Any]:
    """Read a ``scores.json`` file.

    Raises:
        DataError: On a missing file or invalid JSON (naming the line).
    """
    text = "\n".join(read_lines(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise DataError(path, 1, "expected a JSON object")
    return data


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.aggregate_folds",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--expdir", required=True, help="experiment root holding fold<k>/ folders")
    parser.add_argument("--folds", type=int, nargs="+", required=True, help="fold numbers")
    parser.add_argument("--models", nargs="+", required=True, help="model dir names inside each fold (ent fent)")
    parser.add_argument("--decode-dir", default="decode_decode", help="decoding dir name inside a model dir")
    parser.add_argument("--dataset", default="test", help="scored set inside the decoding dir")
    parser.add_argument("--metrics", nargs="+", default=list(CV_METRICS), choices=METRICS, help="columns")
    parser.add_argument("--out", default="RESULTS.md", help="markdown file to (over)write")
    parser.add_argument("--title", default="Cross-validation results", help="title of --out")
    parser.add_argument("--note", action="append", default=[], help="extra line under the title (repeatable)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="leave out folds without scores.json instead of failing")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.aggregate_folds``."""
    args = get_parser().parse_args(argv)
    setup_logging()
    expdir = Path(args.expdir)
    models: Dict[str, List[Tuple[str, Dict[str, Any]]]] = {}
    notes = [f"folds: {' '.join(map(str, args.folds))}; scores: "
             f"`{expdir}/fold<k>/<model>/{args.decode_dir}/{args.dataset}/scores.json`"] + list(args.note)
    try:
        for model in args.models:
            rows = []
            for k in args.folds:
                path = expdir / f"fold{k}" / model / args.decode_dir / args.dataset / "scores.json"
                if not path.is_file() and args.allow_missing:
                    logger.warning("%s not found: fold %d of %s left out", path, k, model)
                    notes.append(f"{model}: fold {k} missing ({path})")
                    continue
                rows.append((f"fold{k}", read_scores(path)))
            if not rows:
                raise DataError(expdir, None, f"no scores.json for model '{model}' in folds {args.folds}")
            models[model] = rows
        text = format_cv_results(models, args.title, notes, args.metrics)
    except (DataError, KeyError, ValueError) as exc:
        logger.error("%s", exc if isinstance(exc, DataError) else f"malformed scores: {exc!r}")
        sys.exit(1)
    with atomic_write(args.out) as fh:
        fh.write(text)
    logger.info("wrote %s", args.out)
    sys.stdout.write(format_summary_table(models, args.metrics))


if __name__ == "__main__":
    main()
