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
from typing import Callable, Dict, List, Sequence

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tables import markdown  # noqa: E402
from ent.nets.dropout import FastDropout  # noqa: E402

RECIPE = ROOT / "egs" / "mini_emo" / "ent1"
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
    from ent.tasks.ent_task import ENTTask

    args = ENTTask.get_parser().parse_args([
        "--config", str(config), "--token_dir", str(token_dir), "--output_dir", "unused",
    ])
    torch.manual_seed(0)
    model = ENTTask.build_model(args).train()
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    batch = 14
    samples = (torch.rand(batch, generator=g) * 16000 + 37000).long()  # about 2.8 s
    tokens = torch.randint(36, 48, (batch,), generator=g)  # characters
    speech = 0.05 * torch.randn(batch, int(samples.max()), generator=g)
    text = torch.full((batch, int(tokens.max())), -1, dtype=torch.long)
    for b in range(batch):
        speech[b, samples[b]:] = 0
        text[b, : tokens[b]] = torch.randint(2, model.vocab_size - 1, (int(tokens[b]),), generator=g)
    emotion = torch.randint(0, 4, (batch,), generator=g)

    def use(cls: type) -> None:
        for parent in model.modules():
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.nn.Dropout):
                    setattr(parent, name, cls(child.p))

    def step() -> float:
        start = time.perf_counter()
        optim.zero_grad()
        loss, _, _ = model(speech, samples, text, tokens, emotion)
        loss.backward()
        optim.step()
        return time.perf_counter() - start

    times: Dict[str, List[float]] = {"torch": [], "fast": []}
    for cls in (torch.nn.Dropout, FastDropout):  # warm-up
        use(cls)
        step()
    for _ in range(steps):  # alternate, so that a slower spell of the machine hits both
        for impl, cls in (("torch", torch.nn.Dropout), ("fast", FastDropout)):
            use(cls)
            times[impl].append(step())
    torch_ms, fast_ms = (1e3 * statistics.median(times[k]) for k in ("torch", "fast"))
    count = sum(isinstance(m, torch.nn.Dropout) for m in model.modules())
    return [[f"{config.name}, {count} dropout modules", f"{torch_ms:.0f}", f"{fast_ms:.0f}",
             f"{torch_ms / fast_ms:.2f}x"]]


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
