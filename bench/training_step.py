"""Training steps of the ``mini_emo`` models for the benchmark scripts (imported as ``bench.training_step``).

A model is built from a recipe config exactly as ``ENTTask`` builds it for
training (random weights), and fed a synthetic batch of the corpus' sizes;
:func:`alternate` times several variants in turn so that a change of machine
speed hits them alike.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Sequence, Tuple

import torch

RECIPE = Path(__file__).resolve().parent.parent / "egs" / "mini_emo" / "ent1"


def build_model(config: Path, token_dir: Path, **model_conf: object) -> torch.nn.Module:
    """The model of ``config`` (``model_conf`` entries overridden), seeded, in training mode."""
    from ent.tasks.ent_task import ENTTask

    args = ENTTask.get_parser().parse_args([
        "--config", str(config), "--token_dir", str(token_dir), "--output_dir", "unused",
    ])
    args.model_conf = dict(args.model_conf, **model_conf)
    torch.manual_seed(0)
    return ENTTask.build_model(args).train()


def synthetic_batch(
    batch: int, seconds: Tuple[float, float], tokens: Tuple[int, int], vocab: int, seed: int = 0
) -> Tuple[torch.Tensor, ...]:
    """``speech (B, N), speech_lengths, text (B, U), text_lengths, emotion`` for ``model(*batch)``.

    Args:
        batch: Utterances.
        seconds: Range of utterance durations (16 kHz noise at 0.05).
        tokens: Range of token counts; token ids are drawn from [2, vocab - 1).
        vocab: Vocabulary size of the model.
        seed: Generator seed.
    """
    g = torch.Generator().manual_seed(seed)
    low, high = (int(16000 * s) for s in seconds)
    samples = (torch.rand(batch, generator=g) * (high - low) + low).long()
    counts = torch.randint(tokens[0], tokens[1] + 1, (batch,), generator=g)
    speech = 0.05 * torch.randn(batch, int(samples.max()), generator=g)
    text = torch.full((batch, int(counts.max())), -1, dtype=torch.long)
    for b in range(batch):
        speech[b, samples[b]:] = 0
        text[b, : counts[b]] = torch.randint(2, vocab - 1, (int(counts[b]),), generator=g)
    emotion = torch.randint(0, 4, (batch,), generator=g)
    return speech, samples, text, counts, emotion


def step_timer(model: torch.nn.Module, batch: Sequence[torch.Tensor]) -> Callable[[], float]:
    """A function that runs one forward, backward and Adam step and returns its seconds."""
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> float:
        start = time.perf_counter()
        optim.zero_grad()
        loss, _, _ = model(*batch)
        loss.backward()
        optim.step()
        return time.perf_counter() - start

    return step


def alternate(steps: int, timers: Mapping[str, Callable[[], float]], warmup: int = 1) -> Dict[str, float]:
    """Median seconds of each timer over ``steps`` rounds, the timers taking turns."""
    for timer in timers.values():
        for _ in range(warmup):
            timer()
    times: Dict[str, List[float]] = {name: [] for name in timers}
    for _ in range(steps):
        for name, timer in timers.items():
            times[name].append(timer())
    return {name: statistics.median(values) for name, values in times.items()}
