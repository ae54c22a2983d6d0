"""Benchmark of the fused lattice max pooling back ends against the plain PyTorch path.

For one lattice size (default B=16, T=500, U=100, J=512, C=4, the issue's
setting) and a sweep over T x U, every back end available on the device runs
the loss forward and backward on the same random inputs
(:func:`ent.losses.fused_lattice.fused_lattice_max_pool_loss`, or the
supervised interval loss with ``--loss supervised``); ``torch`` is the plain
path (materialized lattice + the reference loss). Each measurement runs in a
fresh subprocess, so that peak memory is that of the measured call alone:

* time: median of ``--repeats`` forward passes, and of forward + backward;
* peak memory above what the inputs already hold: the process' resident set
  high-water mark on CPU (``VmHWM``, reset through ``/proc/self/clear_refs``),
  ``torch.cuda.max_memory_allocated`` on GPU;
* on GPU, the arithmetic floor: every node needs J tanh and J (C + 1)
  multiply-adds (the pre-activation sum and the C logits), counted at the
  device's peak FP32 rate (SMs x 128 lanes x clock, tanh as one
  instruction); the table gives the forward time over that floor.

The plain path is skipped for sizes whose lattice would need more than
``--max-plain-gb`` (about three (B, T, U+1, J) tensors live at its peak).

With ``--train-steps N`` it also measures training throughput of the
``mini_emo`` ENT model (random weights, synthetic batches with the corpus'
mean duration and token count), ``lattice_backend: torch`` against ``auto``.

Example (what the README reports)::

    nice -n 15 python bench/lattice_pool.py --train-steps 12
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tables import markdown  # noqa: E402
from ent.kernels.availability import BackendUnavailableError  # noqa: E402
from ent.kernels.backends import resolve_backend  # noqa: E402
from ent.losses.fused_lattice import fused_lattice_max_pool_loss, fused_supervised_lattice_loss  # noqa: E402

RECIPE = ROOT / "egs" / "mini_emo" / "ent1"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python bench/lattice_pool.py",
        description="Speed and peak memory of the fused lattice max pooling back ends "
        "vs the plain PyTorch path.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda")
    parser.add_argument("--backends", nargs="+", default=None,
                        help="back ends to compare (default: torch and every fused one "
                        "available on the device)")
    parser.add_argument("--batch", type=int, default=16, help="B")
    parser.add_argument("--frames", type=int, default=500, help="T (encoder frames)")
    parser.add_argument("--tokens", type=int, default=100, help="U (tokens; U+1 predictor positions)")
    parser.add_argument("--joint", type=int, default=512, help="J (emotion joint size)")
    parser.add_argument("--classes", type=int, default=4, help="C (emotion classes)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="compute dtype")
    parser.add_argument("--loss", choices=("pool", "supervised"), default="pool",
                        help="lattice max pooling, or the supervised interval loss (every node trained)")
    parser.add_argument("--mode", default="one", help="lattice max pooling mode: one, full_t or full_u")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--sweep", nargs="*", default=["125x25", "250x50", "500x100", "1000x200"],
                        help="T x U sizes of the sweep (at --batch); none to skip")
    parser.add_argument("--max-plain-gb", type=float, default=8.0,
                        help="skip the plain path where its lattice tensors would exceed this")
    parser.add_argument("--train-steps", type=int, default=0,
                        help="also time this many mini_emo training steps per back end (0: skip)")
    parser.add_argument("--train-config", type=Path, default=RECIPE / "conf" / "train_ent.yaml",
                        help="training config of the throughput model")
    parser.add_argument("--token-dir", type=Path, default=RECIPE / "data" / "token_list" / "bpe200",
                        help="token list of the throughput model")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads of torch and numba (0: the libraries' defaults)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one measurement (JSON)
    return parser


# --------------------------------------------------------------------------
# One measurement (runs in its own process)
# --------------------------------------------------------------------------


def make_inputs(spec: Dict[str, object]) -> Tuple[List[torch.Tensor], Dict[str, torch.Tensor]]:
    """Random projected encoder/predictor outputs, output layer and labels of a full-length batch."""
    device = torch.device(str(spec["device"]))
    dtype = DTYPES[str(spec["dtype"])]
    batch, frames, tokens = int(spec["batch"]), int(spec["frames"]), int(spec["tokens"])
    joint, classes = int(spec["joint"]), int(spec["classes"])
    g = torch.Generator().manual_seed(0)
    leaves = [
        torch.randn(batch, frames, joint, generator=g),
        torch.randn(batch, tokens + 1, joint, generator=g),
        torch.randn(classes, joint, generator=g) / joint**0.5,
        torch.randn(classes, generator=g),
    ]
    leaves = [x.to(device=device, dtype=dtype).requires_grad_(True) for x in leaves]
    frame_labels = torch.randint(0, classes, (batch, 1), generator=g).expand(batch, frames).clone()
    frame_labels[:, frames // 3 : 2 * frames // 3] = 0  # three intervals: e, neutral, e
    labels = {
        "enc_lens": torch.full((batch,), frames),
        "label_lens": torch.full((batch,), tokens),
        "emo_labels": torch.randint(0, classes, (batch,), generator=g),
        "frame_labels": frame_labels,
    }
    return leaves, labels


def loss_fn(
    spec: Dict[str, object], leaves: List[torch.Tensor], labels: Dict[str, torch.Tensor]
) -> torch.Tensor:
    """The measured loss: pooling or supervised, on ``spec``'s back end."""
    lens = (labels["enc_lens"], labels["label_lens"])
    backend = str(spec["backend"])
    if spec["loss"] == "supervised":
        return fused_supervised_lattice_loss(*leaves, *lens, labels["frame_labels"], backend=backend)
    mode = str(spec["mode"])
    return fused_lattice_max_pool_loss(*leaves, *lens, labels["emo_labels"], mode=mode, backend=backend)


class PeakMemory:
    """Peak memory (bytes) allocated inside the block, above what was held on entry."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0

    @staticmethod
    def _status_kb(field: str) -> int:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError(f"/proc/self/status has no {field}")

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")  # resets VmHWM to the current resident set
            self._base = self._status_kb("VmRSS") * 1024
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self.peak = self._status_kb("VmHWM") * 1024 - self._base


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in torch and numba (0: leave the defaults)."""
    if threads > 0:
        torch.set_num_threads(threads)
        try:
            import numba
        except ImportError:
            return
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def measure(spec: Dict[str, object]) -> Dict[str, object]:
    """Time and peak memory of one back end on one size (see the module docstring)."""
    set_threads(int(spec["threads"]))
    device = torch.device(str(spec["device"]))
    leaves, labels = make_inputs(spec)

    def step(backward: bool) -> None:
        loss = loss_fn(spec, leaves, labels)
        if backward:
            torch.autograd.grad(loss, leaves)
        _sync(device)

    step(True)  # warm-up: compilation, extension loading, allocator
    with PeakMemory(device) as mem:
        step(True)
    result: Dict[str, object] = {"peak_bytes": mem.peak}
    for name, backward in (("fwd_s", False), ("fwd_bwd_s", True)):
        times = []
        for _ in range(int(spec["repeats"])):
            start = time.perf_counter()
            step(backward)
            times.append(time.perf_counter() - start)
        result[name] = statistics.median(times)
    return result


def run_worker(spec: Dict[str, object]) -> Dict[str, object]:
    """Run :func:`measure` in a fresh Python process; returns its JSON result."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measurement {spec} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------


def gpu_floor_seconds(spec: Dict[str, object]) -> Optional[float]:
    """Forward arithmetic floor on the GPU (module docstring), or None off GPU."""
    if str(spec["device"]) != "cuda":
        return None
    props = torch.cuda.get_device_properties(0)
    lanes_per_s = props.multi_processor_count * 128 * props.clock_rate * 1e3  # clock_rate in kHz
    nodes = int(spec["batch"]) * int(spec["frames"]) * (int(spec["tokens"]) + 1)
    ops = nodes * int(spec["joint"]) * (1 + int(spec["classes"]) + 1)
    return ops / lanes_per_s


def plain_gb(spec: Dict[str, object]) -> float:
    itemsize = torch.empty((), dtype=DTYPES[str(spec["dtype"])]).element_size()
    nodes = int(spec["batch"]) * int(spec["frames"]) * (int(spec["tokens"]) + 1)
    return 3 * nodes * int(spec["joint"]) * itemsize / 1e9


def compare(base: Dict[str, object], backends: Sequence[str], max_plain_gb: float) -> List[List[str]]:
    """One table row per back end on the size of ``base``."""
    results: Dict[str, Dict[str, object]] = {}
    for backend in backends:
        spec = dict(base, backend=backend)
        if backend == "torch" and plain_gb(spec) > max_plain_gb:
            results[backend] = {"skipped": f"needs ~{plain_gb(spec):.0f} GB"}
            continue
        results[backend] = run_worker(spec)
    plain = results.get("torch", {})
    floor = gpu_floor_seconds(base)
    rows = []
    for backend in backends:
        res = results[backend]
        size = f"{base['batch']}x{base['frames']}x{base['tokens']}"
        if "skipped" in res:
            rows.append([size, backend, "skipped", res["skipped"], "", "", "", ""])
            continue
        speed = memory = ""
        if "fwd_bwd_s" in plain and backend != "torch":
            speed = f"{plain['fwd_bwd_s'] / res['fwd_bwd_s']:.1f}x"
            # Resident-set peaks are coarse below 1 MiB: give a lower bound there.
            floor_bytes = max(int(res["peak_bytes"]), 2**20)
            bound = "" if floor_bytes == res["peak_bytes"] else ">"
            memory = f"{bound}{plain['peak_bytes'] / floor_bytes:.0f}x"
        rows.append([
            size, backend, f"{res['fwd_s'] * 1e3:.1f}", f"{res['fwd_bwd_s'] * 1e3:.1f}",
            f"{res['peak_bytes'] / 2**20:.1f}", speed, memory,
            "" if floor is None else f"{res['fwd_s'] / floor:.1f}x",
        ])
    return rows


# --------------------------------------------------------------------------
# Training throughput of mini_emo
# --------------------------------------------------------------------------


def train_throughput(config: Path, token_dir: Path, steps: int, device: torch.device) -> List[List[str]]:
    """ms per training step of the mini_emo ENT model, lattice_backend torch vs auto."""
    from ent.kernels.backends import ComputeBackends
    from ent.tasks.ent_task import ENTTask

    g = torch.Generator().manual_seed(0)
    # mini_emo train: 2000 utterances of 2.53 s and 17.8 bpe200 tokens on average;
    # max_frames_per_batch 8000 (10 ms frames) gives about 31 utterances per batch.
    batch = 31
    samples = (torch.rand(batch, generator=g) * 16000 + 32400).long()
    tokens = torch.randint(12, 24, (batch,), generator=g)
    speech = 0.05 * torch.randn(batch, int(samples.max()), generator=g)
    for b in range(batch):
        speech[b, samples[b]:] = 0
    text = torch.full((batch, int(tokens.max())), -1, dtype=torch.long)
    for b in range(batch):
        text[b, : tokens[b]] = torch.randint(2, 150, (int(tokens[b]),), generator=g)
    emotion = torch.randint(0, 4, (batch,), generator=g)
    inputs = [x.to(device) for x in (speech, samples, text, tokens, emotion)]

    models = {}
    for backend in ("torch", "auto"):
        args = ENTTask.get_parser().parse_args([
            "--config", str(config), "--token_dir", str(token_dir), "--output_dir", "unused",
        ])
        torch.manual_seed(0)
        model = ENTTask.build_model(args).to(device).train()
        model.set_backends(ComputeBackends(lattice=backend))  # a run-time choice, not a model option
        models[backend] = (model, torch.optim.Adam(model.parameters(), lr=1e-4))

    def train_step(backend: str) -> float:
        model, optim = models[backend]
        start = time.perf_counter()
        optim.zero_grad()
        loss, _, _ = model(*inputs)
        loss.backward()
        optim.step()
        _sync(device)
        return time.perf_counter() - start

    def lattice_step(backend: str) -> float:
        model, _ = models[backend]
        with torch.no_grad():
            enc = model.encode(inputs[0], inputs[1])
            enc_out, enc_lens = enc.enc, enc.lengths
            _, emo_pred = model.predict(inputs[2])
        enc_out.requires_grad_(True)
        emo_pred.requires_grad_(True)
        start = time.perf_counter()
        loss = model._lattice_loss(enc_out, emo_pred, enc_lens, inputs[3], inputs[4], None)
        loss.backward()
        _sync(device)
        return time.perf_counter() - start

    times: Dict[Tuple[str, str], List[float]] = {}
    for backend in models:  # warm-up
        train_step(backend)
        lattice_step(backend)
    for _ in range(steps):  # interleaved, so that load from other processes hits both alike
        for backend in models:
            times.setdefault(("step", backend), []).append(train_step(backend))
            times.setdefault(("lattice", backend), []).append(lattice_step(backend))
    rows = []
    for what, label in (("step", "training step"), ("lattice", "lattice loss fwd+bwd")):
        plain = statistics.median(times[(what, "torch")])
        fused = statistics.median(times[(what, "auto")])
        rows.append([label, f"{plain * 1e3:.1f}", f"{fused * 1e3:.1f}", f"{plain / fused:.2f}x"])
    return rows


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def default_backends(device: torch.device) -> List[str]:
    names = ["torch"]
    candidates = ("numba",) if device.type == "cpu" else ("cuda", "numba_cuda")
    for name in candidates:
        try:
            resolve_backend(name, device)
        except (BackendUnavailableError, ValueError) as err:
            print(f"# {name}: unavailable ({err})")
            continue
        names.append(name)
    return names


def main(argv: Optional[List[str]] = None) -> None:
    """Print the tables (Markdown) of the module docstring."""
    args = get_parser().parse_args(argv)
    if args.worker is not None:
        print(json.dumps(measure(json.loads(args.worker))))
        return
    device = torch.device(args.device)
    set_threads(args.threads)
    backends = args.backends or default_backends(device)
    print("# command: " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]))
    try:
        import numba

        threads = f"numba threads {numba.get_num_threads()}, "
    except ImportError:
        threads = ""
    where = f"CPU ({threads}torch threads {torch.get_num_threads()})"
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    loss = f"{args.loss} (mode {args.mode})" if args.loss == "pool" else args.loss
    print(f"# device: {where}; dtype {args.dtype}; loss {loss}")
    base = {
        "device": args.device, "dtype": args.dtype, "loss": args.loss, "mode": args.mode,
        "repeats": args.repeats, "batch": args.batch, "frames": args.frames, "tokens": args.tokens,
        "joint": args.joint, "classes": args.classes, "threads": args.threads,
    }
    headers = [
        "B x T x U", "backend", "fwd ms", "fwd+bwd ms", "peak MiB", "speed-up", "memory ratio", "fwd / floor"
    ]
    print(f"\n## J={args.joint}, C={args.classes}\n")
    print(markdown(headers, compare(base, backends, args.max_plain_gb)), flush=True)
    sizes = [tuple(int(v) for v in item.lower().split("x")) for item in args.sweep]
    sizes = [s for s in sizes if s != (args.frames, args.tokens)]
    if sizes:
        rows: List[List[str]] = []
        for frames, tokens in sizes:
            rows += compare(dict(base, frames=frames, tokens=tokens), backends, args.max_plain_gb)
        print(f"\n## Sweep over T x U (B={args.batch}, J={args.joint}, C={args.classes})\n")
        print(markdown(headers, rows), flush=True)
    if args.train_steps > 0:
        rows = train_throughput(args.train_config, args.token_dir, args.train_steps, device)
        print(f"\n## mini_emo ENT training throughput ({args.train_config.name}, 31 utterances of "
              f"~2.5 s per batch, median of {args.train_steps} steps)\n")
        print(markdown(["ms per", "lattice_backend torch", "lattice_backend auto", "speed-up"], rows))


if __name__ == "__main__":
    main()
