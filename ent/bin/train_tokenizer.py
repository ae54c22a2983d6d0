"""Train a char/BPE/unigram tokenizer from a data directory's ``text``.

Example::

    python -m ent.bin.train_tokenizer --text data/train/text --token-type bpe \\
        --nbpe 200 --out-dir data/token_list/bpe200

writes ``bpe.model`` (a sentencepiece model, also for ``char`` and
``unigram``), ``tokens.txt`` (``<blank>`` first, ``<unk>`` second,
``<sos/eos>`` last) and ``config.yaml`` (the options, read back by
:meth:`ent.text.tokenizer.Tokenizer.from_dir`). Transcripts are normalized
with :func:`ent.text.normalize.normalize_text` first. When the outputs exist
with the same options the stage is skipped; with different options it fails
unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import sentencepiece
import yaml

from ent.text.normalize import CASES, normalize_text
from ent.text.tokenizer import TOKEN_TYPES, train_tokenizer
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write, read_table

MODEL_NAME = "bpe.model"
TOKEN_LIST_NAME = "tokens.txt"
CONFIG_NAME = "config.yaml"
logger = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.train_tokenizer",
        description="Train a sentencepiece tokenizer (char, bpe or unigram) on the transcripts "
        "of a Kaldi-style 'text' file and write bpe.model, tokens.txt and config.yaml.",
    )
    parser.add_argument("--text", required=True, type=Path, help="Kaldi-style text file '<utt> <transcript>'.")
    parser.add_argument("--token-type", choices=TOKEN_TYPES, default="bpe", help="Token type (default: bpe).")
    parser.add_argument("--nbpe", type=int, default=200,
                        help="Sentencepiece vocabulary size for bpe/unigram (ignored for char; default: 200).")
    parser.add_argument("--out-dir", required=True, type=Path, help="Output directory.")
    parser.add_argument("--case", choices=CASES, default="lower", help="Case mapping of transcripts (default: lower).")
    parser.add_argument("--no-apostrophe", action="store_true",
                        help="Delete apostrophes inside words (default: keep them).")
    parser.add_argument("--keep-tags", action="store_true",
                        help="Keep bracketed tags like [laughter] (default: remove them).")
    parser.add_argument("--character-coverage", type=float, default=1.0,
                        help="Sentencepiece character coverage (default: 1.0).")
    parser.add_argument("--user-defined-symbols", default="",
                        help="Comma-separated symbols kept as single tokens, e.g. '<noise>,<laugh>'.")
    parser.add_argument("--hard-vocab-limit", action="store_true",
                        help="Fail when the text cannot give --nbpe pieces (default: accept fewer, with a warning).")
    parser.add_argument("--force", action="store_true", help="Retrain even when the outputs exist.")
    return parser


def _options(args: argparse.Namespace) -> Dict[str, Any]:
    symbols = [s for s in args.user_defined_symbols.split(",") if s]
    try:
        digest = hashlib.sha256(Path(args.text).read_bytes()).hexdigest()
    except OSError:
        digest = None  # reading the texts reports it
    return {
        "text": str(args.text),
        "text_sha256": digest,
        "token_type": args.token_type,
        "nbpe": args.nbpe if args.token_type != "char" else None,
        "case": args.case,
        "keep_apostrophe": not args.no_apostrophe,
        "remove_tags": not args.keep_tags,
        "character_coverage": args.character_coverage,
        "user_defined_symbols": symbols,
        "hard_vocab_limit": bool(args.hard_vocab_limit),
    }


def read_normalized_texts(path: Path, options: Dict[str, Any]) -> List[str]:
    """Read a Kaldi ``text`` file and normalize each transcript (empty results are dropped)."""
    out = []
    for entry in read_table(path, allow_empty_value=True):
        norm = normalize_text(
            entry.value,
            case=options["case"],
            keep_apostrophe=options["keep_apostrophe"],
            remove_tags=options["remove_tags"],
            keep=options["user_defined_symbols"],
        )
        if norm:
            out.append(norm)
    if not out:
        raise DataError(path, None, "no transcript is left after normalization")
    return out


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.train_tokenizer``."""
    setup_logging()
    args = get_parser().parse_args(argv)
    options = _options(args)
    out_dir: Path = args.out_dir
    config_path = out_dir / CONFIG_NAME
    outputs = [out_dir / MODEL_NAME, out_dir / TOKEN_LIST_NAME, config_path]
    if all(p.is_file() for p in outputs) and not args.force:
        with open(config_path, encoding="utf-8") as fh:
            old = yaml.safe_load(fh) or {}
        # What the tokens depend on is the text's content, not its path (a copy of the same text
        # reuses them); a config from before the content hash is compared by path.
        compared = [k for k in options if k != "text"] if "text_sha256" in old else [
            k for k in options if k != "text_sha256"]
        old_options = {k: old.get(k) for k in options}
        if all(old_options[k] == options[k] for k in compared):
            logger.info("tokenizer already trained in %s; skipping (use --force to retrain)", out_dir)
            return
        changed = sorted(k.replace("text_sha256", "text") for k in compared if old_options[k] != options[k])
        logger.error("%s was written with other options (%s); use --force to retrain, or remove %s "
                     "(the models trained with it then need training again)", config_path, ", ".join(changed),
                     out_dir)
        sys.exit(1)

    try:
        texts = read_normalized_texts(args.text, options)
    except DataError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    logger.info("training a %s tokenizer on %d transcripts from %s", args.token_type, len(texts), args.text)
    # The config goes last: its presence marks a finished stage.
    if config_path.exists():
        config_path.unlink()
    tokens = train_tokenizer(
        texts,
        out_dir / Path(MODEL_NAME).stem,
        token_type=args.token_type,
        nbpe=args.nbpe,
        character_coverage=args.character_coverage,
        user_defined_symbols=options["user_defined_symbols"],
        token_list_path=out_dir / TOKEN_LIST_NAME,
        hard_vocab_limit=args.hard_vocab_limit,
    )
    config = dict(options)
    config.update(
        model=MODEL_NAME,
        token_list=TOKEN_LIST_NAME,
        vocab_size=len(tokens),
        num_sentences=len(texts),
        sentencepiece_version=sentencepiece.__version__,
    )
    with atomic_write(config_path) as fh:
        yaml.safe_dump(config, fh, sort_keys=False, allow_unicode=True)
    logger.info("wrote %s (%d tokens), %s and %s", outputs[0], len(tokens), outputs[1], config_path)


if __name__ == "__main__":
    main()
