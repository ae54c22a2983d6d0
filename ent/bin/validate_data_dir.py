"""Check a Kaldi-style data directory and list every problem, one line each.

Usage::

    python -m ent.bin.validate_data_dir data/train [--emotions neutral,happy,angry,sad]
        [--no-audio] [--scan-audio] [--max-problems 100]

Each problem prints as ``<file>:<line>: <message>`` (warnings as
``<file>:<line>: warning: <message>``), followed by a summary line. The exit
status is 1 when there is at least one error, 0 otherwise (warnings only,
e.g. audio that will be resampled on load, do not fail). Repair what can be
repaired automatically with ``python -m ent.bin.fix_data_dir``.

``--scan-audio`` reads every sample as well (slower: the whole audio once):
NaN or infinite samples are errors, digital silence and clipping warnings
(see :mod:`ent.data.validate`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from ent.data.audio import TARGET_SAMPLE_RATE
from ent.data.emotions import DEFAULT_EMOTIONS, parse_emotion_list
from ent.data.validate import DEFAULT_MAX_PROBLEMS, limit_problems, scan_data_dir
from ent.utils.cli import setup_logging


def emotion_list_arg(parser: argparse.ArgumentParser, value: Optional[str]) -> List[str]:
    """Parse ``--emotions`` (comma- or space-separated) or exit with a usage error."""
    if value is None:
        return list(DEFAULT_EMOTIONS)
    try:
        return parse_emotion_list(value)
    except ValueError as exc:
        parser.error(f"--emotions: {exc}")
        raise  # parser.error exits; this keeps type checkers happy


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.validate_data_dir",
        description=__doc__.split("\n\n")[0],
        epilog="Exit status: 1 if there is an error, 0 otherwise (warnings only).",
    )
    parser.add_argument("dir", help="the data directory (wav.scp, text, utt2spk, utt2emo, ...)")
    parser.add_argument("--emotions", metavar="LIST",
                        help="allowed emotion labels, comma-separated, first = neutral "
                        f"(default: {','.join(DEFAULT_EMOTIONS)})")
    parser.add_argument("--no-audio", action="store_true",
                        help="do not open the audio files (check the text files only)")
    parser.add_argument("--scan-audio", "--scan_audio", action="store_true",
                        help="read every sample: NaN/Inf (error), digital silence and clipping (warnings)")
    parser.add_argument("--sample-rate", type=int, default=TARGET_SAMPLE_RATE,
                        help="expected sample rate; others give a warning (default: %(default)s)")
    parser.add_argument("--max-problems", type=int, default=DEFAULT_MAX_PROBLEMS, metavar="N",
                        help="print at most N problems (0: all; default: %(default)s)")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Run the validator; exits with status 1 if the directory has errors."""
    parser = get_parser()
    args = parser.parse_args(argv)
    setup_logging()
    emotions = emotion_list_arg(parser, args.emotions)
    logging.info("validating %s (emotions: %s)", args.dir, " ".join(emotions))
    if args.scan_audio and args.no_audio:
        parser.error("--scan-audio reads the audio: it cannot go with --no-audio")
    scan = scan_data_dir(args.dir, emotions, check_audio=not args.no_audio,
                         sample_rate=args.sample_rate, progress=True, scan_audio=args.scan_audio)
    for problem in limit_problems(scan.problems, args.max_problems or None, scan.path):
        print(problem)
    print(f"{scan.path}: utterances: {len(scan.utterances)}, errors: {scan.num_errors}, "
          f"warnings: {scan.num_warnings}")
    sys.stdout.flush()
    if scan.num_errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
