"""Fit the functional SER baseline: eGeMAPS v02 functionals, per-speaker z-norm, logistic regression.

Example::

    python -m ent.bin.train_ser_functional --train-data-dir data/train --valid-data-dir data/dev \\
        --emotions neutral,happy,angry,sad --out-dir exp/ser_functional

The 88 eGeMAPS functionals of every utterance (openSMILE,
:mod:`ent.features.functionals`) are cached in ``<data-dir>/egemaps.npz``
(raw, before normalization) and reused while the set is unchanged. ``C`` is
chosen on the validation set (UA); see
:mod:`ent.models.ser.functional_classifier`. Decode with
``python -m ent.bin.ser_inference --model-dir exp/ser_functional ...``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ent.data.datadir import DataDir
from ent.data.emotions import DEFAULT_EMOTIONS, parse_emotion_list
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError

CACHE_NAME = "egemaps.npz"


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.train_ser_functional",
        description="Fit a logistic regression on speaker-normalized eGeMAPS v02 functionals, C chosen on "
        "the validation set.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--train-data-dir", type=Path, required=True)
    parser.add_argument("--valid-data-dir", type=Path, required=True, help="chooses C (never a test set)")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--emotions", default=",".join(DEFAULT_EMOTIONS), help="comma-separated classes")
    parser.add_argument("--cs", type=float, nargs="+", default=None, help="candidate values of C "
                        "(default: 0.001 ... 10 in steps of about 3)")
    parser.add_argument("--nj", type=int, default=1, help="processes for the extraction")
    return parser


def labelled(data_dir: Path, emotions: Sequence[str], nj: int) -> Tuple[List[str], np.ndarray, np.ndarray]:
    """The utterances of a set with a known emotion: ids, normalized functionals, class ids.

    The per-speaker statistics use every utterance of the set (labels are not needed).
    """
    from ent.features.functionals import load_or_extract

    utts, feats = load_or_extract(data_dir, data_dir / CACHE_NAME, nj=nj)
    utt2emo = DataDir.load(data_dir, allow_empty_text=True).utt2emo
    keep = [i for i, u in enumerate(utts) if utt2emo.get(u) in emotions]
    if not keep:
        raise DataError(data_dir / "utt2emo", None, f"no utterance labelled with one of {list(emotions)}")
    labels = np.array([list(emotions).index(utt2emo[utts[i]]) for i in keep])
    return [utts[i] for i in keep], feats[keep], labels


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point."""
    setup_logging()
    args = get_parser().parse_args(argv)
    from ent.models.ser.functional_classifier import DEFAULT_CS, FunctionalClassifier

    try:
        emotions = parse_emotion_list(args.emotions)
        start = time.time()
        train_utts, train_x, train_y = labelled(args.train_data_dir, emotions, args.nj)
        _, dev_x, dev_y = labelled(args.valid_data_dir, emotions, args.nj)
        extracted = time.time() - start
        try:
            model = FunctionalClassifier.fit(train_x, train_y, dev_x, dev_y, emotions, args.cs or DEFAULT_CS)
        except ValueError as exc:
            raise DataError(args.train_data_dir / "utt2emo", None, str(exc)) from exc
        args.out_dir.mkdir(parents=True, exist_ok=True)
        model.save(args.out_dir, {"train_data_dir": str(args.train_data_dir),
                                  "valid_data_dir": str(args.valid_data_dir),
                                  "n_train": len(train_utts), "n_valid": int(len(dev_y)),
                                  "extraction_s": round(extracted, 1),
                                  "fit_s": round(time.time() - start - extracted, 1)})
        logging.info(f"wrote {args.out_dir}: C {model.c:g}, dev UA {100 * model.dev_ua[repr(model.c)]:.2f} %")
    except DataError as exc:
        logging.error(str(exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
