"""Extract the hidden states of a frozen wav2vec 2.0 / HuBERT / WavLM model once, to disk.

Examples::

    # the model and cache dir of a training config (frontend: ssl, frontend_conf.cache_dir)
    python -m ent.bin.extract_ssl_features --config conf/train_ent_wav2vec2.yaml \\
        --data-dir data/train data/dev data/test --device cuda

    # or everything on the command line
    python -m ent.bin.extract_ssl_features --model-dir /models/wav2vec2-base \\
        --out-dir exp/ssl_cache/wav2vec2-base --data-dir data/train

A training config whose ``frontend_conf`` names the same ``cache_dir`` then
reads the stored hidden states instead of running the model (see
:mod:`ent.features.ssl_cache`; the layer weights are still learned, since
every hidden state is stored). Utterances already cached are skipped, so an
interrupted run resumes; a cache made with other settings (model, dtype,
waveform normalization) is refused unless ``--force``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from ent.utils.cli import setup_logging
from ent.utils.errors import DataError

logger = logging.getLogger(__name__)

#: frontend_conf keys that decide the stored hidden states (the others only affect training).
CACHE_KEYS = ("model_dir", "model_type", "dtype", "normalize_waveform", "config_overrides")


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.extract_ssl_features",
        description="Store the hidden states of a frozen pretrained speech model (wav2vec 2.0, HuBERT, "
        "WavLM; a local directory, nothing is downloaded) for every utterance of some data directories, "
        "with a manifest, so that training with frontend_conf.cache_dir does not recompute them.",
    )
    parser.add_argument("--data-dir", required=True, nargs="+", type=Path,
                        help="Kaldi-style data directories (all go into one cache).")
    parser.add_argument("--config", type=Path, default=None,
                        help="Training YAML with 'frontend: ssl'; its frontend_conf gives the model, dtype, "
                        "waveform normalization and (cache_dir) the output directory.")
    parser.add_argument("--model-dir", default=None,
                        help="Pretrained model directory (overrides the config's).")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="Cache directory (default: the config's frontend_conf.cache_dir).")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                        help="Compute and storage dtype (default: the config's, else float32).")
    parser.add_argument("--normalize-waveform", choices=("auto", "true", "false"), default=None,
                        help="Per-utterance waveform normalization (default: the config's, else auto = "
                        "do_normalize of the model's preprocessor_config.json).")
    parser.add_argument("--device", default="cpu", help="Device for the model, e.g. cpu or cuda (default: cpu).")
    parser.add_argument("--force", action="store_true",
                        help="Start a new cache even if one with other settings exists in --out-dir.")
    return parser


def frontend_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The SSLFrontend options and the output directory from the config and the flags.

    Raises:
        DataError: On an unreadable config, one without ``frontend: ssl``, a
            fine-tuned front end, or no output directory.
    """
    conf: Dict[str, Any] = {}
    if args.config is not None:
        try:
            data = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(args.config, None, f"unreadable config: {exc}") from None
        if data.get("frontend") != "ssl":
            raise DataError(args.config, None, "not an SSL front-end config (needs 'frontend: ssl')")
        conf = dict(data.get("frontend_conf") or {})
        if conf.get("finetune"):
            raise DataError(args.config, None, "a fine-tuned front end (finetune: true) cannot be cached")
    options = {k: conf[k] for k in CACHE_KEYS if k in conf}
    if args.model_dir is not None:
        options["model_dir"] = args.model_dir
    if args.dtype is not None:
        options["dtype"] = args.dtype
    if args.normalize_waveform is not None:
        options["normalize_waveform"] = {"auto": None, "true": True, "false": False}[args.normalize_waveform]
    if "model_dir" not in options:
        raise DataError(args.config, None, "no model directory: give --model-dir or frontend_conf.model_dir")
    out_dir = args.out_dir if args.out_dir is not None else conf.get("cache_dir")
    if out_dir is None:
        raise DataError(args.config, None, "no output directory: give --out-dir or frontend_conf.cache_dir")
    options["out_dir"] = Path(out_dir)
    return options


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.extract_ssl_features``."""
    setup_logging()
    args = get_parser().parse_args(argv)
    try:
        options = frontend_options(args)
        out_dir = options.pop("out_dir")
        from ent.features.ssl import SSLFrontend
        from ent.features.ssl_cache import extract_ssl_features

        frontend = SSLFrontend(**options)
        extract_ssl_features(frontend, args.data_dir, out_dir, device=args.device, force=args.force)
    except (DataError, FileNotFoundError, ValueError) as exc:
        logger.error("%s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
