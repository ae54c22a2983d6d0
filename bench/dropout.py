"""Benchmark of FastDropout against torch.nn.Dropout on the CPU.

Two tables, both measured in the same process, alternating the two
implementations so that a change of machine speed hits both alike:

* the dropout call alone (forward, and forward + backward) on the tensor
  shapes of a ``mini_emo`` ENT batch (14 utterances of about 2.8 s: 107
  encoder frames, 144 model dims, 576 feed-forward dims, 4 attention heads);
* with ``--train-steps N``, a whole training step (forward, backward, Adam)
  of the ``mini_emo`` ENT model built from ``conf/train_ent.yaml`` (random
  weights, a synthetic batch of that size), with every dropout module
  ``torch.nn.Dropout`` and then :class:`~ent.nets.dropout.FastDropout`.

The ratio column is torch's time over FastDropout's (above 1: faster).

Example (what the README reports; needs the recipe's token list, i.e. a run
of ``egs/mini_emo/ent1/run.sh`` up to stage 4)::

    python bench/dropout.py --threads 2 --train-steps 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, List, Sequence

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tables import markdown  # noqa: E402
from bench.training_step import RECIPE, alternate, build_model, step_timer, synthetic_batch  # noqa: E402
from ent.nets.dropout import FastDropout  # noqa: E402

SHAPES = {
    "feed-forward (14, 107, 576)": (14, 107, 576),
    "model dim (14, 107, 144)": (14, 107, 144),
    "attention (14, 4, 107, 107)": (14, 4, 107, 107),
}


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        description="FastDropout against torch.nn.Dropout on the CPU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--p", type=float, default=0.1, help="drop probability")
    parser.add_argument("--repeats", type=int, default=50, help="calls per measurement of the dropout call")
    parser.add_argument("--train-steps", type=int, default=0, help="training steps per implementation (0: skip)")
    parser.add_argument("--train-config", type=Path, default=RECIPE / "conf" / "train_ent.yaml",
                        help="model config of the training step")
    parser.add_argument("--token-dir", type=Path, default=RECIPE / "data" / "token_list" / "char",
                        help="token list of that model")
    return parser


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def call_table(p: float, repeats: int) -> List[List[str]]:
    """Forward and forward + backward of one dropout call per shape."""
    layers = {"torch": torch.nn.Dropout(p).train(), "fast": FastDropout(p).train()}
    rows = []
    for name, shape in SHAPES.items():
        x = torch.randn(*shape, requires_grad=True)
        grad = torch.ones(*shape)

        def fwd(layer: torch.nn.Module) -> Callable[[], object]:
            return lambda: layer(x.detach())

        def fwd_bwd(layer: torch.nn.Module) -> Callable[[], object]:
            return lambda: layer(x).backward(grad)

        row = [name]
        for make in (fwd, fwd_bwd):
            base, fast = (median_ms(make(layers[impl]), repeats) for impl in ("torch", "fast"))
            row += [f"{base:.2f}", f"{fast:.2f}", f"{base / fast:.1f}x"]
        rows.append(row)
    return rows


def train_table(config: Path, token_dir: Path, steps: int) -> List[List[str]]:
    """ms per training step with torch.nn.Dropout and with FastDropout (same model, same batch)."""
    model = build_model(config, token_dir)
    batch = synthetic_batch(14, (2.3, 3.3), (36, 48), model.vocab_size)  # about 2.8 s of characters
    step = step_timer(model, batch)

    def with_dropout(cls: type) -> Callable[[], float]:
        def run() -> float:
            for parent in model.modules():
                for name, child in list(parent.named_children()):
                    if isinstance(child, torch.nn.Dropout):
                        setattr(parent, name, cls(child.p))
            return step()

        return run

    ms = {k: 1e3 * v for k, v in alternate(steps, {
        "torch": with_dropout(torch.nn.Dropout), "fast": with_dropout(FastDropout)}).items()}
    count = sum(isinstance(m, torch.nn.Dropout) for m in model.modules())
    return [[f"{config.name}, {count} dropout modules", f"{ms['torch']:.0f}", f"{ms['fast']:.0f}",
             f"{ms['torch'] / ms['fast']:.2f}x"]]


def main(argv: Sequence[str] = ()) -> None:
    args = get_parser().parse_args(list(argv) or None)
    torch.set_num_threads(args.threads)
    print(f"## dropout call, p = {args.p}, {args.threads} threads (median ms of {args.repeats} calls)\n")
    print(markdown(["tensor", "torch fwd", "fast fwd", "ratio", "torch fwd+bwd", "fast fwd+bwd", "ratio"],
                   call_table(args.p, args.repeats)))
    if args.train_steps > 0:
        print(f"\n## mini_emo ENT training step (14 utterances of ~2.8 s; median ms of {args.train_steps} steps)\n")
        print(markdown(["model", "torch.nn.Dropout", "FastDropout", "ratio"],
                       train_table(args.train_config, args.token_dir, args.train_steps)))


if __name__ == "__main__":
    main(sys.argv[1:])
