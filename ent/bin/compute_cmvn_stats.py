"""Compute global CMVN statistics of a data directory's fbank (+ pitch) features.

Example::

    python -m ent.bin.compute_cmvn_stats --data-dir data/train \\
        --out exp/stats/feats_stats.npz --nj 2

writes ESPnet's ``feats_stats.npz`` layout (``count``, ``sum``,
``sum_square``), read by :func:`ent.features.cmvn.build_global_cmvn`, and
beside it ``feats_stats.npz.stamp`` (:mod:`ent.utils.stamps`): the SHA-256 of
the data dir's ``wav.scp`` and ``segments``, the utterances used (after
``--max-utts``) and the feature options. A later run is skipped while all of
these are the same, and recomputes (saying what changed) when one is not:
another training set, speed perturbation, another ``--max-utts`` or feature
option. The audio files themselves are not hashed (that would read the whole
corpus on every run): audio rewritten in place under the same ``wav.scp``
needs ``--force``. Statistics without a stamp (from an older version) are
recomputed.
``--force`` recomputes in any case. Models already trained keep their own
statistics (they are buffers of the checkpoint).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from ent.data.datadir import DataDir
from ent.features.cmvn import compute_cmvn_stats, select_utterances
from ent.features.fbank import Fbank
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError
from ent.utils.stamps import input_key, stale_reasons, text_digest, write_stamp

logger = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.compute_cmvn_stats",
        description="Accumulate frame count, sum and sum of squares of the Kaldi fbank (+ pitch) features of "
        "a data directory (for global mean/variance normalization) into an .npz file.",
    )
    parser.add_argument("--data-dir", required=True, type=Path, help="Kaldi-style data directory.")
    parser.add_argument("--out", required=True, type=Path, help="Output .npz (e.g. exp/stats/feats_stats.npz).")
    parser.add_argument("--n-mels", type=int, default=80, help="Number of mel bins (default: 80).")
    parser.add_argument("--frame-length-ms", type=float, default=25.0, help="Window length (default: 25).")
    parser.add_argument("--frame-shift-ms", type=float, default=10.0, help="Frame shift (default: 10).")
    parser.add_argument("--pitch", action="store_true",
                        help="Append the 2 pitch features (log F0, NCCF) of the fbank frontend's "
                        "`pitch: true` (ent.sh --feats_type fbank_pitch).")
    parser.add_argument("--max-utts", type=int, default=None,
                        help="Use at most this many utterances, evenly spread (default: all).")
    parser.add_argument("--nj", type=int, default=1, help="Number of worker processes (default: 1).")
    parser.add_argument("--force", action="store_true", help="Recompute even when the output exists.")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.compute_cmvn_stats``."""
    setup_logging()
    args = get_parser().parse_args(argv)
    stamp = stamp_path(args.out)
    try:
        key = input_key_of(args)
        if args.out.is_file() and not args.force:
            reasons = stale_reasons(stamp, key)
            if not reasons:
                logger.info("%s is up to date with %s; skipping (use --force to recompute)", args.out, args.data_dir)
                return
            logger.warning("%s: recomputing (%s)", args.out, "; ".join(reasons))
        fbank = Fbank(
            n_mels=args.n_mels, frame_length_ms=args.frame_length_ms, frame_shift_ms=args.frame_shift_ms,
            pitch=args.pitch,
        )
        compute_cmvn_stats(args.data_dir, fbank, args.out, max_utts=args.max_utts, nj=args.nj)
    except DataError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    write_stamp(stamp, key)


def stamp_path(out: Path) -> Path:
    """The stamp beside the statistics ``out``."""
    return out.with_name(out.name + ".stamp")


def input_key_of(args: argparse.Namespace) -> dict:
    """What the statistics depend on (see the module docstring).

    Raises:
        DataError: If the data dir cannot be read.
    """
    data = DataDir.load(args.data_dir)
    try:
        utts = select_utterances(data.utt_ids, args.max_utts)
    except ValueError as exc:
        raise DataError(args.data_dir, None, str(exc)) from None
    values = [f"n_mels={args.n_mels}", f"frame_length_ms={args.frame_length_ms}",
              f"frame_shift_ms={args.frame_shift_ms}", f"pitch={args.pitch}", f"max_utts={args.max_utts}",
              f"utterances={text_digest(' '.join(utts))}"]
    return input_key([args.data_dir / "wav.scp", args.data_dir / "segments"], values)


if __name__ == "__main__":
    main()
