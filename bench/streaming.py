"""Benchmark of streaming decoding: real-time factor and per-chunk latency on CPU.

For each chunk size (160, 320 and 640 ms by default) every audio file is fed
to a :class:`~ent.decoding.streaming.StreamingSession` in pieces of one chunk
(as a live source would deliver it) and finalized; full-context decoding of
the same audio with the same model (greedy search) runs in the same process
for comparison. Reported per mode:

* RTF: processing time / audio duration (all calls, finalize included), in
  wall-clock time and in CPU time of the process (less sensitive to other
  processes sharing the machine);
* chunk latency: the compute time of each ``accept`` call that decided new
  frames (one chunk per call in steady state), median and 95th percentile;
* algorithmic latency: chunk duration + the look-ahead of the subsampling
  convolutions and of the fbank window (audio that must arrive before the
  chunk's first frame can be decided).

Without ``--model-dir`` the model is built from ``--config`` with random
weights (``mini_emo`` sizes): the compute is that of a trained model, but a
random joint emits a token at most steps (up to ``max_symbols_per_frame``
per frame), so the search part is a worst case; the table says how many
tokens were emitted per second of audio.

Example (one CPU thread)::

    python bench/streaming.py --threads 1 \\
        --config egs/mini_emo/ent1/conf/train_ent_streaming.yaml \\
        --wav-dir egs/mini_emo/ent1/wav/test --max-files 40
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ent.data.audio import load_audio  # noqa: E402
from ent.decoding.recognizer import DecodeOptions, EmotionRecognizer  # noqa: E402
from ent.decoding.streaming import StreamingSession  # noqa: E402
from ent.utils.cli import setup_logging  # noqa: E402

RECIPE = ROOT / "egs" / "mini_emo" / "ent1"


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python bench/streaming.py",
        description="Real-time factor and per-chunk latency of streaming decoding vs full context.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="trained streaming model dir (default: random weights from --config)")
    parser.add_argument("--model-file", default="valid.loss.ave.pth", help="checkpoint in --model-dir")
    parser.add_argument("--config", type=Path, default=RECIPE / "conf" / "train_ent_streaming.yaml",
                        help="training config of the random model")
    parser.add_argument("--token-dir", type=Path, default=RECIPE / "data" / "token_list" / "char",
                        help="token list of the random model")
    parser.add_argument("--stats", type=Path, default=RECIPE / "exp" / "stats_fbank80_pitch" / "feats_stats.npz",
                        help="CMVN statistics of the random model (skipped if missing)")
    parser.add_argument("--wav-dir", type=Path, default=RECIPE / "wav" / "test", help="audio files (*.wav)")
    parser.add_argument("--max-files", type=int, default=40, help="files used (sorted by name)")
    parser.add_argument("--chunk-ms", type=float, nargs="+", default=[160.0, 320.0, 640.0],
                        help="chunk durations")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    return parser


def random_recognizer(config: Path, token_dir: Path, stats: Path, seed: int) -> EmotionRecognizer:
    """A model of ``config``'s sizes with random weights (eval mode, greedy search)."""
    from ent.tasks.ent_task import ENTTask
    from ent.text.tokenizer import Tokenizer

    with open(config, encoding="utf-8") as fh:
        conf = yaml.safe_load(fh)
    args = argparse.Namespace(
        token_dir=str(token_dir),
        emotions="neutral,happy,angry,sad",
        frontend_conf=conf.get("frontend_conf", {}),
        normalize_conf={"stats_file": str(stats)} if stats.is_file() else {},
        specaug_conf={},
        encoder=conf.get("encoder", "conformer"),
        encoder_conf=conf.get("encoder_conf", {}),
        predictor=conf.get("predictor", "rnn"),
        predictor_conf=conf.get("predictor_conf", {}),
        blank_predictor_conf=conf.get("blank_predictor_conf", {}),
        model_conf=conf.get("model_conf", {}),
    )
    torch.manual_seed(seed)
    model = ENTTask.build_model(args)
    return EmotionRecognizer(model, Tokenizer.from_dir(token_dir), DecodeOptions(search="greedy"))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (linear interpolation); NaN for no values."""
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def bench_full(recognizer: EmotionRecognizer, waves: List[np.ndarray]) -> Dict[str, object]:
    """Full-context decoding of each file: wall and CPU seconds, tokens."""
    start, cpu = time.perf_counter(), time.process_time()
    tokens = 0
    for i, wave in enumerate(waves):
        (result,) = recognizer.decode([f"utt{i}"], [wave])
        tokens += len(result.tokens)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
            "tokens": tokens, "latencies": []}


def bench_streaming(recognizer: EmotionRecognizer, waves: List[np.ndarray], chunk_ms: float) -> Dict[str, object]:
    """Chunk-by-chunk decoding of each file: wall and CPU seconds, per-chunk latencies, tokens."""
    session = StreamingSession(recognizer, chunk_ms=chunk_ms)
    piece = int(round(session.chunk_seconds * session.sample_rate))
    latencies: List[float] = []
    total = 0.0
    tokens = 0
    cpu = time.process_time()
    for wave in waves:
        session.reset()
        for i in range(0, len(wave), piece):
            start = time.perf_counter()
            update = session.accept(wave[i : i + piece])
            spent = time.perf_counter() - start
            total += spent
            if update.frame_emotions:
                latencies.append(spent)
        start = time.perf_counter()
        final = session.finalize()
        total += time.perf_counter() - start
        if final.result is None:
            raise RuntimeError("finalize() gave no result")
        tokens += len(final.result.tokens)
    return {"seconds": total, "cpu_seconds": time.process_time() - cpu, "tokens": tokens, "latencies": latencies,
            "chunk_size": session.chunk_size, "chunk_seconds": session.chunk_seconds}


def main(argv: Optional[List[str]] = None) -> None:
    """Run the benchmark and print a Markdown table."""
    setup_logging()
    args = get_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.model_dir is not None:
        recognizer = EmotionRecognizer.from_model_dir(args.model_dir, args.model_file,
                                                      DecodeOptions(search="greedy"))
        what = f"{args.model_dir}/{args.model_file}"
    else:
        recognizer = random_recognizer(args.config, args.token_dir, args.stats, args.seed)
        what = f"random weights, {args.config.name}"
    files = sorted(args.wav_dir.glob("*.wav"))[: args.max_files]
    if not files:
        raise SystemExit(f"no *.wav files in {args.wav_dir}")
    waves = [load_audio(f) for f in files]
    duration = sum(len(w) for w in waves) / 16000.0
    model = recognizer.model
    params = sum(p.numel() for p in model.parameters()) / 1e6
    logging.info(f"{len(files)} files, {duration:.1f} s of audio; model: {what} ({params:.2f} M parameters); "
                 f"{torch.get_num_threads()} thread(s)")

    with torch.inference_mode():
        bench_full(recognizer, waves[:2])  # warm-up
        bench_streaming(recognizer, waves[:2], args.chunk_ms[0])
        rows = [("full context", None, bench_full(recognizer, waves))]
        for chunk_ms in args.chunk_ms:
            rows.append((f"streaming {chunk_ms:g} ms", chunk_ms, bench_streaming(recognizer, waves, chunk_ms)))

    encoder, fbank = model.encoder, model.frontend
    lookahead_ms = (encoder.frontend_lookahead * fbank.window_shift + fbank.window_size - fbank.window_shift) \
        / fbank.sample_rate * 1000.0
    print(f"\n{len(files)} files, {duration:.1f} s of audio, {torch.get_num_threads()} CPU thread(s), "
          f"model: {what} ({params:.2f} M parameters)\n")
    print("| mode | chunk | RTF (wall) | RTF (CPU time) | chunk latency median (ms) | chunk latency p95 (ms) "
          "| algorithmic latency (ms) | tokens/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, chunk_ms, res in rows:
        lat = [1000.0 * x for x in res["latencies"]]  # type: ignore[union-attr]
        rtf = res["seconds"] / duration  # type: ignore[operator]
        rtf_cpu = res["cpu_seconds"] / duration  # type: ignore[operator]
        if chunk_ms is None:
            chunk, algo = "-", "whole utterance"
        else:
            chunk_s = res["chunk_seconds"]  # type: ignore[index]
            chunk = f"{res['chunk_size']} frames ({chunk_s * 1000:.0f} ms)"
            algo = f"{chunk_s * 1000 + lookahead_ms:.0f}"
        med = f"{statistics.median(lat):.1f}" if lat else "-"
        p95 = f"{percentile(lat, 95):.1f}" if lat else "-"
        print(f"| {name} | {chunk} | {rtf:.4f} | {rtf_cpu:.4f} | {med} | {p95} | {algo} | "
              f"{res['tokens'] / duration:.1f} |")


if __name__ == "__main__":
    main()
