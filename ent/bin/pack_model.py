"""Pack a trained model into a self-contained directory.

The packed directory holds ``config.yaml`` (paths rewritten to point inside
it), ``model.pth``, the token list and sentencepiece model (``tokens/``) and the
CMVN statistics, so that ``ent-transcribe --model DIR`` works from anywhere.
It is built under a temporary name and renamed into place. A model trained
before the model options were grouped is packed with its config migrated to
the current layout (:func:`ent.models.model_config.migrate_model_config`);
repacking an old pack the same way (``--model-dir OLD_PACK --model-file
model.pth``) updates it.

A model with a pretrained front end (``frontend: ssl``) reads the pretrained
model's files from ``frontend_conf.model_dir`` whenever it is built (a frozen
model's weights are not in the checkpoint). ``--ssl-model copy`` (the
default) copies that directory into the pack (``ssl_model/``, about 360 MB
for wav2vec 2.0 base), ``absolute`` records its absolute path instead (a
smaller pack that works on this machine only). The feature cache
(``cache_dir``) belongs to the training data and is dropped.

``--decode-config`` copies the recipe's decoding options into the pack
(``decode.yaml``, the defaults of ``ent-transcribe``) and ``--lm`` a token
n-gram LM (``lm.arpa``, fused when those options give ``lm_weight > 0``).

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

from ent.lm.ngram import PACKED_LM_NAME
from ent.utils.checkpoint_io import load_checkpoint
from ent.models.model_config import migrate_model_config
from ent.utils.cli import setup_logging
from ent.utils.errors import DataError

MODEL_FILE = "model.pth"
SSL_MODEL_DIR = "ssl_model"
SSL_MODES = ("copy", "absolute")
DECODE_CONFIG = "decode.yaml"


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(prog="python -m ent.bin.pack_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, type=Path, help="training output dir")
    parser.add_argument("--model-file", default="valid.loss.ave.pth", help="checkpoint to pack")
    parser.add_argument("--out-dir", required=True, type=Path, help="packed model dir (replaced)")
    parser.add_argument("--ssl-model", choices=SSL_MODES, default="copy",
                        help="frontend ssl: copy the pretrained model dir into the pack, or record "
                             "its absolute path (default: %(default)s)")
    parser.add_argument("--decode-config", type=Path, default=None,
                        help="decoding options YAML to pack as decode.yaml (ent-transcribe's defaults)")
    parser.add_argument("--lm", type=Path, default=None, help="token n-gram LM (ARPA) to pack as lm.arpa")
    return parser


def pack_model(
    model_dir: Path,
    model_file: str,
    out_dir: Path,
    ssl_model: str = "copy",
    decode_config: Optional[Path] = None,
    lm: Optional[Path] = None,
) -> None:
    """Copy what inference needs into ``out_dir`` (see the module docstring).

    Args:
        model_dir: Training output dir (``config.yaml`` and checkpoints).
        model_file: Checkpoint to pack.
        out_dir: Packed model dir (replaced if it exists).
        ssl_model: ``copy`` or ``absolute`` (pretrained front ends only).
        decode_config: Decoding options to copy as ``decode.yaml``.
        lm: Token n-gram LM to copy as ``lm.arpa``.

    Raises:
        DataError: If the config, checkpoint, token dir, statistics,
            pretrained model dir, decoding config or LM are missing, or the
            checkpoint is refused or unreadable (``load_checkpoint``).
    """
    if ssl_model not in SSL_MODES:
        raise ValueError(f"ssl_model must be one of {SSL_MODES}, got {ssl_model!r}")
    config_file = model_dir / "config.yaml"
    checkpoint = model_dir / model_file
    for path in (config_file, checkpoint, decode_config, lm):
        if path is not None and not path.is_file():
            raise DataError(path, None, "not found")
    load_checkpoint(checkpoint)  # refuse a crafted or truncated model file before packing it
    with open(config_file, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    try:  # the pack holds the current layout of the model options
        config = migrate_model_config(config, str(config_file))
    except ValueError as exc:
        raise DataError(config_file, None, str(exc)) from None
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
        if config.get("frontend") == "ssl":
            _pack_ssl_model(config, config_file, tmp, ssl_model)
        if decode_config is not None:
            shutil.copy2(decode_config, tmp / DECODE_CONFIG)
        if lm is not None:
            shutil.copy2(lm, tmp / PACKED_LM_NAME)
        config["packed_from"] = {"model_dir": str(model_dir), "model_file": model_file}
        with open(tmp / "config.yaml", "w", encoding="utf-8") as fh:
            yaml.safe_dump(config, fh, sort_keys=False, allow_unicode=True)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _pack_ssl_model(config: dict, config_file: Path, tmp: Path, mode: str) -> None:
    """Point ``frontend_conf.model_dir`` at a copy in the pack (or an absolute path)."""
    from ent.features.ssl import resolve_model_dir

    conf = config.setdefault("frontend_conf", {})
    if "model_dir" not in conf:
        raise DataError(config_file, None, "frontend: ssl without frontend_conf.model_dir")
    try:
        source = resolve_model_dir(conf["model_dir"])
    except FileNotFoundError as exc:  # the message says how to obtain the weights
        raise DataError(config_file, None, str(exc)) from exc
    if mode == "copy":
        shutil.copytree(source, tmp / SSL_MODEL_DIR)
        conf["model_dir"] = SSL_MODEL_DIR
    else:
        conf["model_dir"] = str(source.resolve())
    for key in ("cache_dir", "cache_miss"):
        conf.pop(key, None)


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.pack_model``."""
    setup_logging()
    args = get_parser().parse_args(argv)
    try:
        pack_model(args.model_dir, args.model_file, args.out_dir, args.ssl_model, args.decode_config, args.lm)
    except DataError as exc:
        logging.error(str(exc))
        sys.exit(1)
    logging.info(f"packed {args.model_dir / args.model_file} into {args.out_dir}")


if __name__ == "__main__":
    main()
