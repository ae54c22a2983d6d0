"""Add same-speaker emotion mixes (neutral + emotional, ...) to a data directory.

Usage::

    python -m ent.bin.mix_data_dir --data-dir data/train --out-dir data/train_mix \\
        [--audio-dir DIR] [--mix-share 0.5] [--patterns ne,en,nen] [--pattern-weights 1,1,2] \\
        [--max-duration 20] [--gap-s 0] [--trim-db DB] [--neutral neutral] [--emotions neutral,happy,angry,sad] \\
        [--seed 0] [--speakers FILE | --speaker-list "Ses01F Ses01M"] [--keep-intervals] \\
        [--nj 4] [--force]

writes ``--out-dir`` with every original utterance (its audio referenced, not
copied) plus ``round(mix-share * N)`` mixed utterances
``<spk>-mix-<pattern>-<nnnnn>``, each the concatenation of utterances of one
speaker with exact ``emo_segments`` intervals, and a ``mix_parts`` file
naming their parts (see :mod:`ent.data.mixing`). The output is the same
whatever ``--nj``. A finished output with the same input and options is
skipped (``--force`` rebuilds). Exit status 1, with a one-line error naming
the file and line, on bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from ent.data.emotions import DEFAULT_EMOTIONS, NEUTRAL, parse_emotion_list
from ent.data.mixing import (
    DEFAULT_MAX_DURATION,
    DEFAULT_MIX_SHARE,
    DEFAULT_PATTERNS,
    MixOptions,
    mix_data_dir,
    read_speaker_file,
)
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError

logger = logging.getLogger(__name__)


def _names(value: str) -> List[str]:
    return [v for v in value.replace(",", " ").split() if v]


def _floats(value: str) -> List[float]:
    try:
        return [float(v) for v in _names(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {value!r}") from None


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.mix_data_dir",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data-dir", required=True, type=Path, help="source data directory (utterance labels)")
    parser.add_argument("--out-dir", required=True, type=Path, help="output data directory, e.g. data/train_mix")
    parser.add_argument("--audio-dir", type=Path, default=None,
                        help="directory for the mixed wav files (default: <out-dir>/wav)")
    parser.add_argument("--mix-share", type=float, default=DEFAULT_MIX_SHARE,
                        help="mixed utterances per original utterance of the speakers that may be mixed")
    parser.add_argument("--patterns", type=_names, default=list(DEFAULT_PATTERNS),
                        help="patterns, comma-separated: ne (neutral+emotional), en, nen")
    parser.add_argument("--pattern-weights", type=_floats, default=None,
                        help="relative weight of each pattern, comma-separated (default: equal)")
    parser.add_argument("--max-duration", type=float, default=DEFAULT_MAX_DURATION,
                        help="longest mixed utterance in seconds")
    parser.add_argument("--gap-s", type=float, default=0.0, help="seconds of silence between parts")
    parser.add_argument("--no-loudness-match", dest="match_loudness", action="store_false",
                        help="keep every part's own level instead of scaling the later parts to the first "
                        "part's loudness (for utterances of one speaker recorded alike, whose loudness "
                        "differences belong to the emotions)")
    parser.add_argument("--trim-db", type=float, default=None,
                        help="label only the emotional part's speech as emotional: from its first to its last "
                        "25 ms frame within this many dB of its loudest frame (its silence is then neutral); "
                        "default: the whole part")
    parser.add_argument("--neutral", default=NEUTRAL, help="name of the neutral class")
    parser.add_argument("--emotions", default=",".join(DEFAULT_EMOTIONS), help="allowed emotion labels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--speakers", type=Path, default=None, metavar="FILE",
                     help="only these speakers are mixed: first field of each line (a spk2utt works)")
    who.add_argument("--speaker-list", default=None, metavar="LIST",
                     help="only these speakers are mixed: space- or comma-separated")
    parser.add_argument("--keep-intervals", action="store_true",
                        help="keep the originals' emo_segments lines (those utterances are not mixed)")
    parser.add_argument("--nj", type=int, default=1, help="number of worker processes")
    parser.add_argument("--force", action="store_true", help="rebuild even when the output is finished")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.mix_data_dir``."""
    parser = get_parser()
    args = parser.parse_args(argv)
    setup_logging()
    try:
        emotions = parse_emotion_list(args.emotions)
    except ValueError as exc:
        parser.error(f"--emotions: {exc}")
    try:
        speakers = None
        if args.speakers is not None:
            speakers = read_speaker_file(args.speakers)
        elif args.speaker_list is not None:
            speakers = _names(args.speaker_list)
            if not speakers:
                raise ValueError("--speaker-list is empty")
        options = MixOptions(
            mix_share=args.mix_share,
            patterns=tuple(args.patterns),
            pattern_weights=None if args.pattern_weights is None else tuple(args.pattern_weights),
            max_duration=args.max_duration,
            gap_s=args.gap_s,
            trim_db=args.trim_db,
            match_loudness=args.match_loudness,
            neutral=args.neutral,
            emotions=tuple(emotions),
            seed=args.seed,
            speakers=None if speakers is None else tuple(speakers),
            keep_intervals=args.keep_intervals,
        )
        mix_data_dir(args.data_dir, args.out_dir, args.audio_dir, options, nj=args.nj, force=args.force)
    except (DataError, ValueError) as exc:
        logger.error("%s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
