"""Benchmark of long inputs: peak memory of ``ent-transcribe`` on long recordings, and of a long stream.

Two tables:

* **transcribe**: synthetic recordings of 1, 5 and 20 minutes (``--minutes``)
  are built by joining ``mini_emo`` test utterances (``--wav-dir``, in name
  order, repeated as needed) with pauses of 0.3 to 0.6 s of silence; each is
  decoded by ``ent-transcribe --model PACK FILE`` in a child process, whose
  peak resident memory (``ru_maxrss`` of that child, from ``os.wait4``) and
  wall-clock time are reported with the number of pieces the recording was
  decoded in and its encoder frames. ``--unsplit-minutes`` also decodes the
  given lengths with ``--long-audio-max 0`` (one piece: the behaviour before
  long audio was split).
* **stream**: a ``--stream-minutes`` stream of the same kind is fed chunk by
  chunk (``--chunk-ms``) to a :class:`~ent.decoding.streaming.StreamingSession`
  in a child process, which reports its resident memory (``VmRSS``), the
  bytes of the tensors the session retains and the segments ended, after 1
  minute and every ``--stream-every`` minutes.

Models: ``--pack`` a packed model (``ent.bin.pack_model``) for the
transcribe table; without it a model of ``--config``'s sizes with random
weights is packed (with the recipe's ``conf/decode.yaml`` and, if present,
its LM), which has the memory profile of a trained one (a random joint emits
more tokens, so its search is slower). The stream uses a random model of
``--stream-config`` (a streaming model; ``--blank-bias`` on its blank logit, so
that it emits few tokens, as a trained model does) unless ``--stream-pack`` is
given.

Example (from the repository root; about 10 minutes of CPU)::

    python bench/long_audio.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import soundfile as sf
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tables import markdown  # noqa: E402

RECIPE = ROOT / "egs" / "mini_emo" / "ent1"
SR = 16000


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python bench/long_audio.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Peak memory of ent-transcribe on long recordings and of a long StreamingSession.",
    )
    parser.add_argument("--wav-dir", type=Path, default=RECIPE / "wav" / "test", help="utterances to join (*.wav)")
    parser.add_argument("--pack", type=Path, default=None, help="packed model (default: a random one of --config)")
    parser.add_argument("--config", type=Path, default=RECIPE / "conf" / "train_ent.yaml",
                        help="training config of the random model")
    parser.add_argument("--decode-config", type=Path, default=RECIPE / "conf" / "decode.yaml",
                        help="decoding options packed with the random model")
    parser.add_argument("--lm", type=Path, default=RECIPE / "exp" / "lm_char_8gram" / "lm.arpa",
                        help="LM packed with the random model (skipped if missing)")
    parser.add_argument("--token-dir", type=Path, default=RECIPE / "data" / "token_list" / "char",
                        help="token list of the random models")
    parser.add_argument("--stats", type=Path, default=RECIPE / "exp" / "stats_fbank80_pitch" / "feats_stats.npz",
                        help="CMVN statistics of the random models")
    parser.add_argument("--search", choices=("greedy", "modified_beam_search"), default=None,
                        help="ent-transcribe --search (default: the pack's decode.yaml)")
    parser.add_argument("--minutes", type=float, nargs="*", default=[1.0, 5.0, 20.0], help="recording lengths")
    parser.add_argument("--unsplit-minutes", type=float, nargs="*", default=[],
                        help="lengths also decoded with --long-audio-max 0 (whole-recording attention)")
    parser.add_argument("--stream-minutes", type=float, default=30.0, help="stream length (0: no stream table)")
    parser.add_argument("--stream-every", type=float, default=10.0, help="stream: report every this many minutes")
    parser.add_argument("--stream-config", type=Path, default=RECIPE / "conf" / "train_ent_streaming.yaml",
                        help="training config of the random streaming model")
    parser.add_argument("--stream-pack", type=Path, default=None, help="packed streaming model (default: random)")
    parser.add_argument("--chunk-ms", type=float, default=320.0, help="stream: chunk and piece duration")
    parser.add_argument("--blank-bias", type=float, default=8.0,
                        help="stream: added to the blank logit of the random streaming model (a random joint "
                        "emits up to max_symbols_per_frame tokens at most frames, which makes greedy search the "
                        "bulk of the time; a trained model mostly emits blanks)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (OMP_NUM_THREADS of the children)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and the pauses")
    parser.add_argument("--work-dir", type=Path, default=None, help="where recordings and packs go (default: a temp dir)")
    parser.add_argument("--stream-child", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


def recording(wav_dir: Path, seconds: float, seed: int) -> np.ndarray:
    """Utterances of ``wav_dir`` (name order, repeated) joined by 0.3-0.6 s of silence, cut to ``seconds``."""
    files = sorted(wav_dir.glob("*.wav"))
    if not files:
        raise SystemExit(f"no *.wav in {wav_dir}")
    rng = np.random.default_rng(seed)
    total = int(seconds * SR)
    parts: List[np.ndarray] = []
    n, k = 0, 0
    while n < total:
        wave, rate = sf.read(files[k % len(files)], dtype="float32")
        if rate != SR or wave.ndim != 1:
            raise SystemExit(f"{files[k % len(files)]}: need 16 kHz mono")
        pause = np.zeros(int(rng.uniform(0.3, 0.6) * SR), dtype=np.float32)
        parts += [wave, pause]
        n += len(wave) + len(pause)
        k += 1
    return np.concatenate(parts)[:total]


def random_model_dir(config: Path, token_dir: Path, stats: Path, out: Path, seed: int,
                     blank_bias: float = 0.0) -> Path:
    """A model dir (config.yaml + model.pth) of ``config``'s sizes with random weights.

    ``blank_bias`` is added to the blank logit of the joint (0: none).
    """
    from ent.tasks.ent_task import ENTTask

    with open(config, encoding="utf-8") as fh:
        conf = yaml.safe_load(fh)
    args = {
        "token_dir": str(token_dir.resolve()), "emotions": "neutral,happy,angry,sad",
        "frontend": conf.get("frontend", "fbank"), "frontend_conf": conf.get("frontend_conf", {}),
        "normalize_conf": {"stats_file": str(stats.resolve())} if stats.is_file() else {},
        "specaug_conf": {}, "encoder": conf.get("encoder", "conformer"), "encoder_conf": conf.get("encoder_conf", {}),
        "predictor": conf.get("predictor", "rnn"), "predictor_conf": conf.get("predictor_conf", {}),
        "blank_predictor_conf": conf.get("blank_predictor_conf", {}), "model_conf": conf.get("model_conf", {}),
        "speaker_cmvn": False,
    }
    torch.manual_seed(seed)
    model = ENTTask.build_model(argparse.Namespace(**args))
    with torch.no_grad():
        if getattr(model, "head_prosody", False):  # prosody statistics as training leaves them (here: mean 0, std 1)
            model.prosody_stats.copy_(torch.stack([torch.ones(model.prosody_stats.size(1)),
                                                   torch.zeros(model.prosody_stats.size(1)),
                                                   torch.ones(model.prosody_stats.size(1))]))
        if blank_bias:  # a random joint emits a token at most frames; a trained one mostly blanks
            model.joint.lin_out.bias[model.blank_id] += blank_bias
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(args), encoding="utf-8")
    torch.save(model.state_dict(), out / "model.pth")
    return out


def pack(model_dir: Path, out: Path, decode_config: Optional[Path], lm: Optional[Path]) -> Path:
    """``ent.bin.pack_model`` of a model dir."""
    from ent.bin import pack_model

    argv = ["--model-dir", str(model_dir), "--model-file", "model.pth", "--out-dir", str(out)]
    if decode_config is not None and decode_config.is_file():
        argv += ["--decode-config", str(decode_config)]
    if lm is not None and lm.is_file():
        argv += ["--lm", str(lm)]
    pack_model.main(argv)
    return out


def child_env(threads: int) -> Dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def run_child(cmd: List[str], env: Dict[str, str]) -> Tuple[int, float, float, str]:
    """Run ``cmd``; return its exit status, peak RSS (MB), wall seconds and stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return proc.returncode, usage.ru_maxrss / 1024.0, time.perf_counter() - start, text


def bench_transcribe(args: argparse.Namespace, pack_dir: Path, work: Path) -> str:
    """The transcribe table."""
    from ent.decoding.long_audio import encoder_frames, split_long_audio
    from ent.decoding.recognizer import DecodeOptions, EmotionRecognizer

    options = DecodeOptions.from_yaml(pack_dir / "decode.yaml" if (pack_dir / "decode.yaml").is_file() else None)
    model_file = "model.pth" if (pack_dir / "model.pth").is_file() else "valid.loss.ave.pth"
    model = EmotionRecognizer.from_model_dir(pack_dir, model_file, DecodeOptions(search="greedy")).model
    align = int(round(model.frame_shift * SR))
    rows = []
    runs = [(m, True) for m in args.minutes] + [(m, False) for m in args.unsplit_minutes]
    for minutes, split in runs:
        wav = work / f"long_{minutes:g}min.wav"
        wave = recording(args.wav_dir, 60.0 * minutes, args.seed)
        sf.write(wav, wave, SR)
        pieces = len(split_long_audio(wave, options.long_audio_max, options.long_audio_min, options.long_audio_pause,
                                      align)) if split and len(wave) > options.long_audio_max * SR else 1
        cmd = [sys.executable, "-m", "ent.bin.transcribe", "--model", str(pack_dir), "--json", str(wav)]
        if args.search:
            cmd += ["--search", args.search]
        if not split:
            cmd += ["--long-audio-max", "0"]
        print(f"transcribe: {minutes:g} min{'' if split else ' unsplit'} ...", file=sys.stderr, flush=True)
        status, rss, seconds, out = run_child(cmd, child_env(args.threads))
        frames = words = "-"
        if status == 0:
            result = json.loads(out.strip().splitlines()[-1])
            frames = str(sum(round((e - s) / model.frame_shift) for s, e, _ in result["timeline"]))
            words = str(len(result["words"]))
        else:
            tail = out.strip().splitlines()[-1:] or [""]
            print(f"  exit status {status}: {tail[0]}", file=sys.stderr)
        expected = encoder_frames(model, len(wave))
        rows.append([f"{minutes:g}", "yes" if split else "no (--long-audio-max 0)", str(pieces), frames,
                     str(expected), words, f"{rss:.0f}", f"{seconds:.0f}", str(status)])
        wav.unlink()
    return markdown(["minutes", "split", "pieces", "frames", "unsplit frames", "words", "peak RSS (MB)",
                     "wall (s)", "exit"], rows)


def vm_rss_mb() -> float:
    """Resident memory of this process now (``VmRSS``), in MB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def stream_child(args: argparse.Namespace) -> None:
    """Child process of the stream table: feed the stream, print one JSON line per report."""
    from ent.decoding.recognizer import DecodeOptions, EmotionRecognizer
    from ent.decoding.streaming import StreamingSession

    torch.set_num_threads(args.threads)
    model_dir = args.stream_child
    model_file = "model.pth" if (model_dir / "model.pth").is_file() else "valid.loss.ave.pth"
    rec = EmotionRecognizer.from_model_dir(model_dir, model_file, DecodeOptions(search="greedy"))
    session = StreamingSession(rec, chunk_ms=args.chunk_ms)
    # the stream is built in pieces of 10 minutes (the recording of a whole stream would dominate the memory)
    piece = int(round(args.chunk_ms / 1000.0 * SR))
    marks = [1.0] + [m for m in np.arange(args.stream_every, args.stream_minutes + 1e-9, args.stream_every)]
    fed, start, cpu = 0, time.perf_counter(), time.process_time()
    block_s = 600.0
    for b in range(int(np.ceil(args.stream_minutes * 60.0 / block_s))):
        seconds = min(block_s, args.stream_minutes * 60.0 - b * block_s)
        wave = recording(args.wav_dir, seconds, args.seed + b)
        for i in range(0, len(wave), piece):
            session.accept(wave[i: i + piece])
            fed += len(wave[i: i + piece])
            if marks and fed >= marks[0] * 60 * SR:
                print(json.dumps({"minutes": marks.pop(0), "rss_mb": vm_rss_mb(),
                                  "retained_kb": session.retained_tensor_bytes() / 1024.0,
                                  "segments": session.num_segments, "wall_s": time.perf_counter() - start,
                                  "cpu_s": time.process_time() - cpu}), flush=True)
    final = session.finalize().result
    print(json.dumps({"final": True, "frames": len(final.frame_emotions), "words": len(final.words),
                      "rss_mb": vm_rss_mb()}), flush=True)


def bench_stream(args: argparse.Namespace, work: Path) -> str:
    """The stream table."""
    pack_dir = args.stream_pack
    if pack_dir is None:
        pack_dir = random_model_dir(args.stream_config, args.token_dir, args.stats, work / "stream_model", args.seed,
                                    args.blank_bias)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stream-child", str(pack_dir),
           "--wav-dir", str(args.wav_dir), "--stream-minutes", str(args.stream_minutes),
           "--stream-every", str(args.stream_every), "--chunk-ms", str(args.chunk_ms),
           "--threads", str(args.threads), "--seed", str(args.seed)]
    print(f"stream: {args.stream_minutes:g} min ...", file=sys.stderr, flush=True)
    status, rss, seconds, out = run_child(cmd, child_env(args.threads))
    rows = []
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        if rec.get("final"):
            rows.append(["end (finalize)", f"{rec['rss_mb']:.0f}", "-", "-", "-",
                         f"{rec['frames']} frames, {rec['words']} words"])
        else:
            rows.append([f"{rec['minutes']:g}", f"{rec['rss_mb']:.0f}", f"{rec['retained_kb']:.0f}",
                         str(rec["segments"]), f"{rec['cpu_s'] / (rec['minutes'] * 60):.2f}", ""])
    if status != 0:
        rows.append(["failed", "", "", "", "", f"exit status {status}: {out.strip().splitlines()[-1:]}"])
    table = markdown(["stream minutes", "RSS (MB)", "retained tensors (KB)", "segments", "CPU RTF", "result"], rows)
    return table + f"\n\npeak RSS of the stream process: {rss:.0f} MB, wall {seconds:.0f} s"


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point."""
    args = get_parser().parse_args(argv)
    if args.stream_child is not None:
        stream_child(args)
        return
    torch.set_num_threads(args.threads)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="ent_long_audio_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.minutes or args.unsplit_minutes:
            pack_dir = args.pack
            kind = f"packed model {pack_dir}"
            if pack_dir is None:
                model_dir = random_model_dir(args.config, args.token_dir, args.stats, work / "model", args.seed)
                pack_dir = pack(model_dir, work / "packed", args.decode_config, args.lm)
                kind = f"random weights of {args.config}, packed with {args.decode_config}"
            print(f"## ent-transcribe on long recordings ({kind}; {args.threads} thread(s))\n")
            print(bench_transcribe(args, pack_dir, work), flush=True)
        if args.stream_minutes > 0:
            kind = f"packed model {args.stream_pack}" if args.stream_pack else f"random weights of {args.stream_config}"
            print(f"\n## StreamingSession, {args.stream_minutes:g}-minute stream in {args.chunk_ms:g} ms pieces "
                  f"({kind}; greedy; {args.threads} thread(s))\n")
            print(bench_stream(args, work), flush=True)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
