"""Speed-perturb a data directory (factors 0.9, 1.0, 1.1 by default).

Example::

    python -m ent.bin.speed_perturb_data_dir --src data/train --dst data/train_sp \\
        --audio-dir wav/train_sp --factors 0.9 1.0 1.1 --nj 2

writes ``data/train_sp`` with utterances ``sp0.9-<utt>``, ``sp1.0-<utt>``,
``sp1.1-<utt>`` and their audio under ``--audio-dir``
(see :mod:`ent.data.speed_perturb`). Skipped when the output exists, unless
``--force``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from ent.data.speed_perturb import DEFAULT_FACTORS, speed_perturb_data_dir
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError

logger = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.speed_perturb_data_dir",
        description="Write a speed-perturbed copy of a Kaldi-style data directory: every utterance "
        "at every speed factor (tempo and pitch change like 'sox speed'), as new wav files, with "
        "durations and emotion intervals scaled by 1/factor.",
    )
    parser.add_argument("--src", required=True, type=Path, help="Source data directory.")
    parser.add_argument("--dst", required=True, type=Path, help="Output data directory (e.g. data/train_sp).")
    parser.add_argument("--audio-dir", required=True, type=Path, help="Directory for the perturbed wav files.")
    parser.add_argument("--factors", type=float, nargs="+", default=list(DEFAULT_FACTORS),
                        help="Speed factors (default: 0.9 1.0 1.1).")
    parser.add_argument("--nj", type=int, default=1, help="Number of worker processes (default: 1).")
    parser.add_argument("--force", action="store_true", help="Rebuild even when the output exists.")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.speed_perturb_data_dir``."""
    setup_logging()
    args = get_parser().parse_args(argv)
    try:
        speed_perturb_data_dir(args.src, args.dst, args.audio_dir, factors=args.factors, nj=args.nj,
                               force=args.force)
    except (DataError, ValueError) as exc:
        logger.error("%s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
