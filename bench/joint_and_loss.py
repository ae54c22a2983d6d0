"""Benchmark of the CPU transducer lattice: RNN-T loss back ends and fused joint lattices.

Three tables, each variant measured in the same process as its baseline,
taking turns so that a change of machine speed hits both alike:

* the RNN-T loss, forward + backward, ``torchaudio`` against ``numba``
  (:func:`ent.losses.rnnt.rnnt_loss`) on lattices of a ``mini_emo`` batch,
  of long utterances, and of a 500-piece BPE vocabulary;
* one joint network's lattice (J = 192, a ``mini_emo`` batch: B = 14,
  T = 107, U+1 = 49), forward + backward, the plain PyTorch path against the
  fused numba kernels (:mod:`ent.kernels.fused_joint`) for C = 1 (FENT's
  blank joint), 4 (emotions), 30 (characters), 64 and 128 outputs;
* with ``--train-steps N``, whole training steps (forward, backward, Adam) of
  the ``mini_emo`` ENT and FENT models built from the recipe's configs
  (random weights, a synthetic batch of 14 utterances of ~2.8 s and ~42
  characters): torchaudio with plain joints against the defaults.

The ratio column is the baseline's time over the new one's (above 1: faster).

Example (what the README reports; the training steps need the recipe's token
list, i.e. a run of ``egs/mini_emo/ent1/run.sh`` up to stage 4)::

    python bench/joint_and_loss.py --threads 2 --train-steps 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, List, Sequence

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tables import markdown  # noqa: E402
from bench.training_step import RECIPE, alternate, build_model, step_timer, synthetic_batch  # noqa: E402
from ent.losses.rnnt import rnnt_loss  # noqa: E402
from ent.nets.joint import JointNetwork  # noqa: E402

#: (name, B, T, U, V) of the loss table.
LOSS_SHAPES = [
    ("mini_emo batch", 14, 107, 48, 30),
    ("long utterances", 4, 400, 150, 30),
    ("BPE 500", 16, 150, 40, 500),
]
JOINT_OUTPUTS = [1, 4, 30, 64, 128]


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        description="RNN-T loss back ends and fused joint lattices on the CPU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--threads", type=int, default=2, help="torch and numba CPU threads")
    parser.add_argument("--repeats", type=int, default=10, help="rounds per measurement of the loss and joint")
    parser.add_argument("--train-steps", type=int, default=0, help="training steps per variant (0: skip)")
    parser.add_argument("--token-dir", type=Path, default=RECIPE / "data" / "token_list" / "char",
                        help="token list of the recipe's models")
    return parser


def loss_table(repeats: int) -> List[List[str]]:
    """ms of the RNN-T loss forward + backward per back end and lattice."""
    rows = []
    for name, batch, max_t, max_u, vocab in LOSS_SHAPES:
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(batch, max_t, max_u + 1, vocab, generator=g, requires_grad=True)
        labels = torch.randint(1, vocab, (batch, max_u), generator=g)
        enc_lens = torch.randint(max_t * 2 // 3, max_t + 1, (batch,), generator=g)
        label_lens = torch.randint(max_u * 2 // 3, max_u + 1, (batch,), generator=g)
        enc_lens[0], label_lens[0] = max_t, max_u

        def timer(backend: str) -> Callable[[], float]:
            def run() -> float:
                logits.grad = None
                start = time.perf_counter()
                rnnt_loss(logits, labels, enc_lens, label_lens, backend=backend).backward()
                return time.perf_counter() - start

            return run

        ms = {k: 1e3 * v for k, v in alternate(repeats, {b: timer(b) for b in ("torchaudio", "numba")}).items()}
        rows.append([f"{name} ({batch}, {max_t}, {max_u + 1}, {vocab})", f"{ms['torchaudio']:.1f}",
                     f"{ms['numba']:.1f}", f"{ms['torchaudio'] / ms['numba']:.1f}x"])
    return rows


def joint_table(repeats: int) -> List[List[str]]:
    """ms of one joint lattice forward + backward, plain against fused, per output size."""
    rows = []
    g = torch.Generator().manual_seed(0)
    enc = torch.randn(14, 107, 1, 144, generator=g, requires_grad=True)
    pred = torch.randn(14, 1, 49, 144, generator=g, requires_grad=True)
    for outputs in JOINT_OUTPUTS:
        torch.manual_seed(0)
        joint = JointNetwork(144, 144, 192, outputs)
        grad = torch.randn(14, 107, 49, outputs, generator=g)

        def timer(fused: bool) -> Callable[[], float]:
            def run() -> float:
                joint.fused = fused
                joint.zero_grad()
                enc.grad = pred.grad = None
                start = time.perf_counter()
                joint(enc, pred).backward(grad)
                return time.perf_counter() - start

            return run

        ms = {k: 1e3 * v for k, v in alternate(repeats, {"plain": timer(False), "fused": timer(True)}).items()}
        rows.append([f"C = {outputs}", f"{ms['plain']:.1f}", f"{ms['fused']:.1f}",
                     f"{ms['plain'] / ms['fused']:.1f}x"])
    return rows


def train_table(token_dir: Path, steps: int) -> List[List[str]]:
    """ms per training step of the recipe's ENT and FENT models, plain against the defaults."""
    rows = []
    for name in ("ent", "fent"):
        config = RECIPE / "conf" / f"train_{name}.yaml"
        fast = build_model(config, token_dir)
        plain = build_model(config, token_dir, rnnt_backend="torchaudio", fused_joint=False)
        batch = synthetic_batch(14, (2.3, 3.3), (36, 48), fast.vocab_size)
        ms = {k: 1e3 * v for k, v in alternate(steps, {
            "plain": step_timer(plain, batch), "fast": step_timer(fast, batch)}).items()}
        rows.append([f"{config.name}", f"{ms['plain']:.0f}", f"{ms['fast']:.0f}",
                     f"{ms['plain'] / ms['fast']:.2f}x"])
    return rows


def main(argv: Sequence[str] = ()) -> None:
    args = get_parser().parse_args(list(argv) or None)
    torch.set_num_threads(args.threads)
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    print(f"## RNN-T loss forward + backward, {args.threads} threads (median ms of {args.repeats})\n")
    print(markdown(["lattice (B, T, U+1, V)", "torchaudio", "numba", "ratio"], loss_table(args.repeats)))
    print(f"\n## joint lattice (14, 107, 49), J = 192, forward + backward (median ms of {args.repeats})\n")
    print(markdown(["outputs", "plain", "fused", "ratio"], joint_table(args.repeats)))
    if args.train_steps > 0:
        print(f"\n## mini_emo training step, 14 utterances of ~2.8 s (median ms of {args.train_steps})\n")
        print(markdown(["model", "torchaudio + plain joints", "numba + fused joints", "ratio"],
                       train_table(args.token_dir, args.train_steps)))


if __name__ == "__main__":
    main(sys.argv[1:])
