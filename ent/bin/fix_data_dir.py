"""Repair a Kaldi-style data directory in place so that it validates.

Usage::

    python -m ent.bin.fix_data_dir data/train [--emotions neutral,happy,angry,sad] [--no-backup]

Keeps only the utterances present in every per-utterance file, drops those
that cannot be used (empty transcript, unknown emotion, missing or unreadable
audio, ...) and malformed lines, sorts every file, and prints how many
utterances were dropped and why. The originals are copied to
``<dir>/.backup/`` unless ``--no-backup`` is given. Exit status 1 when the
directory cannot be repaired (missing required file, nothing left).
"""

from __future__ import annotations

import argparse
import logging
from typing import List, Optional

from ent.bin.validate_data_dir import emotion_list_arg
from ent.data.emotions import DEFAULT_EMOTIONS
from ent.data.fix import BACKUP_DIR, fix_data_dir
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.fix_data_dir",
        description=__doc__.split("\n\n")[0],
        epilog="Check the result with: python -m ent.bin.validate_data_dir DIR",
    )
    parser.add_argument("dir", help="the data directory to repair in place")
    parser.add_argument("--emotions", metavar="LIST",
                        help="allowed emotion labels, comma-separated, first = neutral "
                        f"(default: {','.join(DEFAULT_EMOTIONS)})")
    parser.add_argument("--no-backup", action="store_true",
                        help=f"do not copy the original files to DIR/{BACKUP_DIR}/")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Run the fixer and print its report; exits with status 1 if it cannot repair."""
    parser = get_parser()
    args = parser.parse_args(argv)
    setup_logging()
    emotions = emotion_list_arg(parser, args.emotions)
    logging.info("fixing %s (emotions: %s)", args.dir, " ".join(emotions))
    try:
        report = fix_data_dir(args.dir, emotions, backup=not args.no_backup, progress=True)
    except DataError as exc:
        parser.exit(1, f"{exc}\n")
    print(report)


if __name__ == "__main__":
    main()
