"""Train a token n-gram language model (interpolated Kneser-Ney) into an ARPA file.

Example::

    python -m ent.bin.train_lm --token-dir data/token_list/bpe200 \\
        --text data/train/text --valid-text data/dev/text --order 4 --out exp/lm_bpe200_4gram/lm.arpa

Transcripts are tokenized with the tokenizer of ``--token-dir`` (the one the
transducer uses), so the LM's tokens are the transducer's; beam search fuses
it with ``lm_weight`` (``conf/decode.yaml``, ``ent.bin.inference --lm``).
With ``--valid-text`` the per-token perplexity on it is reported next to the
training perplexity. Any ARPA model over the same tokens (SRILM, KenLM) can
be used instead of this one.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from ent.lm.ngram import train_ngram
from ent.text.tokenizer import Tokenizer
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError
from ent.utils.fileio import read_table

logger = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.train_lm",
        description="Train an interpolated Kneser-Ney token n-gram LM on Kaldi-style 'text' files "
        "and write it in ARPA format, for shallow fusion in modified beam search.",
    )
    parser.add_argument("--token-dir", required=True, type=Path,
                        help="Token list directory (ent.bin.train_tokenizer output) of the transducer.")
    parser.add_argument("--text", required=True, type=Path, nargs="+",
                        help="Kaldi-style text file(s) '<utt> <transcript>' to train on.")
    parser.add_argument("--valid-text", type=Path, default=None,
                        help="Kaldi-style text file whose perplexity is reported (not trained on).")
    parser.add_argument("--order", type=int, default=4, help="N-gram order (default: 4).")
    parser.add_argument("--out", required=True, type=Path, help="Output ARPA file.")
    return parser


def read_token_sentences(paths: List[Path], tokenizer: Tokenizer) -> List[List[str]]:
    """Token strings of every non-empty transcript of Kaldi ``text`` files."""
    out = []
    for path in paths:
        for entry in read_table(path, allow_empty_value=True):
            ids = tokenizer.encode(entry.value)
            if ids:
                out.append(tokenizer.tokens(ids))
    return out


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.train_lm``."""
    setup_logging()
    args = get_parser().parse_args(argv)
    if args.order < 1:
        logger.error("--order must be >= 1, got %d", args.order)
        sys.exit(2)
    try:
        tokenizer = Tokenizer.from_dir(args.token_dir)
        sentences = read_token_sentences(args.text, tokenizer)
        if not sentences:
            raise DataError(args.text[0], None, "no transcript to train on")
        valid = read_token_sentences([args.valid_text], tokenizer) if args.valid_text else []
    except DataError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    # Every token of the list gets a unigram, except the specials.
    vocabulary = tokenizer.token_list[1:-1]
    logger.info("training a %d-gram LM on %d sentences (%d tokens)", args.order, len(sentences),
                sum(len(s) for s in sentences))
    lm = train_ngram(sentences, args.order, vocabulary=vocabulary)
    lm.write_arpa(args.out)
    sizes = ", ".join(f"{k}-grams {len(t)}" for k, t in enumerate(lm.probs, start=1))
    message = f"wrote {args.out} ({sizes}); train perplexity {lm.perplexity(sentences):.2f}"
    if valid:
        message += f", {args.valid_text} perplexity {lm.perplexity(valid):.2f}"
    logger.info("%s", message)


if __name__ == "__main__":
    main()
