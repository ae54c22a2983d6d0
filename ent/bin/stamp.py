"""Check or write a content-keyed stamp (:mod:`ent.utils.stamps`) from a shell script.

Usage::

    python -m ent.bin.stamp check STAMP --file F [F ...] --value V [V ...]
    python -m ent.bin.stamp write STAMP --file F [F ...] --value V [V ...]

``check`` exits with 0 when STAMP records exactly these files' contents and
values (the step is done and can be reused), else prints why not on one line
(``STAMP: stale: changed: conf/decode.yaml``) and exits with 1. ``write``
records them. ``ent.sh`` keys its decodings this way (the checkpoint, the
model's config, the decoding config, the LM, the data dir's tables and the
inference command line) and its token LM (the training texts, the token
list and the order).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ent.utils.stamps import input_key, stale_reasons, write_stamp


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(prog="python -m ent.bin.stamp", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("check", "write"))
    parser.add_argument("stamp", help="the stamp file")
    parser.add_argument("--file", nargs="*", default=[], help="input files (a missing one counts as absent)")
    parser.add_argument("--value", nargs="*", default=[], help="options and other inputs, as strings")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.stamp``."""
    args = get_parser().parse_args(argv)
    key = input_key(args.file, args.value)
    if args.action == "write":
        write_stamp(args.stamp, key)
        return
    reasons = stale_reasons(args.stamp, key)
    if reasons:
        print(f"{args.stamp}: stale: {'; '.join(reasons)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
