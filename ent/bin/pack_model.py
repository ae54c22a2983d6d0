"""Pack a trained model into a self-contained directory.

The packed directory holds ``config.yaml`` (paths rewritten to point inside
it), ``model.pth``, the token list and sentencepiece model (``tokens/``) and the
CMVN statistics, so that ``ent-transcribe --model DIR`` works from anywhere.
It is built under a temporary name and renamed into place.

Example::

    python -m ent.bin.pack_model --model-dir exp/ent --out-dir exp/ent/packed
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

import yaml

from ent.utils.cli import setup_logging
from ent.utils.errors import DataError

MODEL_FILE = "model.pth"


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(prog="python -m ent.bin.pack_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, type=Path, help="training output dir")
    parser.add_argument("--model-file", default="valid.loss.ave.pth", help="checkpoint to pack")
    parser.add_argument("--out-dir", required=True, type=Path, help="packed model dir (replaced)")
    return parser


def pack_model(model_dir: Path, model_file: str, out_dir: Path) -> None:
    """Copy what inference needs into ``out_dir`` (see the module docstring).

    Raises:
        DataError: If the config, checkpoint, token dir or statistics are missing.
    """
    config_file = model_dir / "config.yaml"
    checkpoint = model_dir / model_file
    for path in (config_file, checkpoint):
        if not path.is_file():
            raise DataError(path, None, "not found")
    with open(config_file, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    token_dir = Path(config["token_dir"])
    if not token_dir.is_dir():
        raise DataError(config_file, None, f"token_dir '{token_dir}' not found (run from the recipe dir)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        shutil.copy2(checkpoint, tmp / MODEL_FILE)
        shutil.copytree(token_dir, tmp / "tokens")
        config["token_dir"] = "tokens"
        stats = (config.get("normalize_conf") or {}).get("stats_file")
        if stats:
            if not Path(stats).is_file():
                raise DataError(config_file, None, f"CMVN statistics '{stats}' not found")
            shutil.copy2(stats, tmp / "feats_stats.npz")
            config["normalize_conf"]["stats_file"] = "feats_stats.npz"
        config["packed_from"] = {"model_dir": str(model_dir), "model_file": model_file}
        with open(tmp / "config.yaml", "w", encoding="utf-8") as fh:
            yaml.safe_dump(config, fh, sort_keys=False, allow_unicode=True)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.pack_model``."""
    setup_logging()
    args = get_parser().parse_args(argv)
    try:
        pack_model(args.model_dir, args.model_file, args.out_dir)
    except DataError as exc:
        logging.error(str(exc))
        sys.exit(1)
    logging.info(f"packed {args.model_dir / args.model_file} into {args.out_dir}")


if __name__ == "__main__":
    main()
