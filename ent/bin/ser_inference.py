"""Decode a data directory with a SER baseline: the utterance emotion of every utterance.

Writes into ``--out-dir`` (each file atomically, complete or not at all):

``utt2emo``
    ``<utt> <emotion>``: the most probable class; ``ent.bin.score`` scores it
    (WA, UA, macro-F1; no ``text`` is written, so no WER).
``posteriors``
    ``<utt> <emo_1>:<p_1> <emo_2>:<p_2> ...``: the class posteriors, in the
    model's class order.

The model dir is either a neural baseline trained by ``ent.bin.train_ser``
(``config.yaml`` and ``--model-file``) or the functional baseline fitted by
``ent.bin.train_ser_functional`` (``functional_classifier.json``). A neural
model sees the waveforms (and, if it was trained with ``speaker_cmvn: true``,
the per-speaker fbank statistics of ``--data-dir``, as in training), never
the reference transcripts: a model that reads text must recognize it itself.

Example::

    python -m ent.bin.ser_inference --model-dir exp/ser_attention_fcn \\
        --data-dir data/test --out-dir exp/ser_attention_fcn/decode_valid.acc_emo.ave/test
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ent.utils.cli import setup_logging
from ent.utils.errors import DataError
from ent.utils.fileio import write_table


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.bin.ser_inference",
        description="Utterance emotions (utt2emo) and posteriors of a data dir with a SER baseline.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model-dir", type=Path, required=True,
                        help="ent.bin.train_ser output dir, or ent.bin.train_ser_functional output dir")
    parser.add_argument("--model-file", default="valid.acc_emo.ave.pth", help="checkpoint of a neural model")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--nj", type=int, default=1, help="processes for feature extraction (functional)")
    parser.add_argument("--num-threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return parser


def write_outputs(out_dir: Path, emotions: Sequence[str], utts: Sequence[str], posteriors: np.ndarray) -> None:
    """Write ``utt2emo`` and ``posteriors`` (see the module docstring).

    Args:
        utts: U utterance ids; posteriors: (U, C).
    """
    if posteriors.shape != (len(utts), len(emotions)):
        raise ValueError(f"posteriors of shape {posteriors.shape} for {len(utts)} utterances, {len(emotions)} classes")
    out_dir.mkdir(parents=True, exist_ok=True)
    best = posteriors.argmax(axis=1)
    write_table(out_dir / "posteriors",
                {u: " ".join(f"{e}:{p:.6f}" for e, p in zip(emotions, row)) for u, row in zip(utts, posteriors)})
    write_table(out_dir / "utt2emo", {u: emotions[int(k)] for u, k in zip(utts, best)})


def find_token_dir(path: str, model_dir: Path, config_file: Path) -> Path:
    """The token list named in a model config: as given (relative to the working dir), else in the model dir.

    Raises:
        DataError: If neither exists.
    """
    for candidate in (Path(path), model_dir / path, model_dir / Path(path).name):
        if candidate.exists():
            return candidate
    raise DataError(config_file, None, f"token_dir '{path}' not found (looked in . and {model_dir})")


def functional_posteriors(args: argparse.Namespace) -> Tuple[Tuple[str, ...], List[str], np.ndarray]:
    """Posteriors of the functional baseline (features cached as in training)."""
    from ent.bin.train_ser_functional import CACHE_NAME
    from ent.features.functionals import load_or_extract
    from ent.models.ser.functional_classifier import FunctionalClassifier

    model = FunctionalClassifier.load(args.model_dir)
    utts, feats = load_or_extract(args.data_dir, args.data_dir / CACHE_NAME, nj=args.nj)
    return model.emotions, utts, model.posteriors(feats)


def neural_posteriors(args: argparse.Namespace) -> Tuple[Tuple[str, ...], List[str], np.ndarray]:
    """Posteriors of a model trained by ``ent.bin.train_ser``."""
    import torch
    import yaml

    from ent.data.datadir import DataDir
    from ent.tasks.ser_task import SERTask

    config_file, checkpoint = args.model_dir / "config.yaml", args.model_dir / args.model_file
    for path in (config_file, checkpoint):
        if not path.is_file():
            raise DataError(path, None, "not found (is this a model dir of ent.bin.train_ser?)")
    with open(config_file, encoding="utf-8") as fh:
        conf = yaml.safe_load(fh)
    conf["token_dir"] = str(find_token_dir(conf["token_dir"], args.model_dir, config_file))
    namespace = argparse.Namespace(**conf)
    model = SERTask.build_model(namespace)
    try:
        model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(checkpoint, None, f"does not fit the model of {config_file}: {first}") from exc
    model.eval()
    data = DataDir.load(args.data_dir, require=("wav.scp",), allow_empty_text=True)
    utts = data.utt_ids if data.text else sorted(data.wav_scp)
    stats: Optional[Dict[str, Any]] = None  # SpeakerStats of each utterance
    if conf.get("speaker_cmvn", False):
        from ent.features.cmvn import speaker_cmvn

        logging.info(f"per-speaker fbank statistics of every speaker of {args.data_dir}")
        stats = speaker_cmvn(data, SERTask.speaker_cmvn_frontend(namespace), utt_ids=utts)
    waves = {u: data.load_audio(u) for u in utts}
    order = sorted(utts, key=lambda u: (-len(waves[u]), u))  # similar lengths together: less padding
    post: Dict[str, np.ndarray] = {}
    with torch.no_grad():
        for start in range(0, len(order), args.batch_size):
            chunk = order[start : start + args.batch_size]
            lengths = torch.tensor([len(waves[u]) for u in chunk])
            speech = torch.zeros(len(chunk), int(lengths.max()))
            for i, u in enumerate(chunk):
                speech[i, : len(waves[u])] = torch.from_numpy(np.asarray(waves[u], dtype=np.float32))
            extra = {}
            if stats is not None:
                extra["speech_cmvn"] = torch.from_numpy(np.stack([stats[u].cmvn for u in chunk]).astype(np.float32))
            probs = model.posteriors(speech, lengths, **extra).double().numpy()
            post.update(zip(chunk, probs))
    logging.info(f"decoded {len(utts)} utterances of {args.data_dir} with {checkpoint}")
    return tuple(model.emotions), utts, np.stack([post[u] for u in utts])


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m ent.bin.ser_inference``."""
    setup_logging()
    args = get_parser().parse_args(argv)
    try:
        if args.num_threads > 0:
            import torch

            torch.set_num_threads(args.num_threads)
        from ent.models.ser.functional_classifier import RECORD_FILE

        if (args.model_dir / RECORD_FILE).is_file():
            emotions, utts, posteriors = functional_posteriors(args)
        else:
            emotions, utts, posteriors = neural_posteriors(args)
        write_outputs(args.out_dir, emotions, utts, posteriors)
        logging.info(f"wrote {args.out_dir}/utt2emo and posteriors")
    except DataError as exc:
        logging.error(str(exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
