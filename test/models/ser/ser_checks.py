"""Checks every SER baseline must pass: gradients, padding invariance, memorizing a few utterances."""

from __future__ import annotations

from typing import Callable, Dict

import torch

from ent.models.ser.abs_ser_model import AbsSERModel
from tiny_ent_experiment import pad, waves


def batch(n: int = 3, seed: int = 1) -> Dict[str, torch.Tensor]:
    """A padded batch of ``n`` utterances with labels and token texts (ids 1..9, padded with -1)."""
    speech, lens = pad(waves(n, seed=seed))
    g = torch.Generator().manual_seed(seed)
    texts = [torch.randint(1, 10, (int(k),), generator=g) for k in torch.randint(2, 6, (n,), generator=g)]
    text = torch.full((n, max(len(t) for t in texts)), -1, dtype=torch.long)
    for i, t in enumerate(texts):
        text[i, : len(t)] = t
    return {"speech": speech, "speech_lengths": lens, "text": text,
            "text_lengths": torch.tensor([len(t) for t in texts]), "emotion": torch.arange(n) % 4}


def check_gradients(model: AbsSERModel, frozen: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """One training step's backward: every trainable parameter gets a gradient, the frozen encoder none."""
    model.train()
    b = batch()
    loss, stats, weight = model(**b)
    assert loss.numel() == 1 and torch.isfinite(loss).all()  # (1,): ESPnet's force_gatherable
    assert int(weight) == 3 and "acc_emo" in stats
    model.zero_grad()
    loss.sum().backward()
    frozen_ids = {id(p) for p in frozen.parameters()}
    assert frozen_ids, "the frozen encoder has parameters"
    for p in frozen.parameters():
        assert not p.requires_grad and p.grad is None
    trainable = [(n, p) for n, p in model.named_parameters() if id(p) not in frozen_ids]
    assert trainable
    for name, p in trainable:
        assert p.requires_grad, name
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert sum(float(p.grad.abs().sum()) for _, p in trainable) > 0
    return stats


def check_padding_invariance(model: AbsSERModel, **extra: Callable) -> None:
    """Posteriors of each utterance alone equal those inside a padded batch (eval mode), within 1e-5."""
    model.eval()
    ws = waves(3, seed=7, min_s=0.5, max_s=1.5)
    speech, lens = pad(ws)
    with torch.no_grad():
        together = model.posteriors(speech, lens)
        assert together.shape == (3, model.num_classes)
        torch.testing.assert_close(together.sum(-1), torch.ones(3))
        for i, w in enumerate(ws):
            s1, l1 = pad([w])
            alone = model.posteriors(s1, l1)
            torch.testing.assert_close(alone[0], together[i], rtol=0, atol=1e-5)
        # longer padding changes nothing either
        padded = torch.cat([speech, torch.zeros(3, 4000)], dim=1)
        torch.testing.assert_close(model.posteriors(padded, lens), together, rtol=0, atol=1e-5)


def check_overfits(model: AbsSERModel, steps: int = 150, lr: float = 3e-3, n: int = 4) -> int:
    """Train on ``n`` utterances with distinct labels until all are classified right in eval mode.

    Returns:
        The number of steps it took (fails if ``steps`` were not enough).
    """
    torch.manual_seed(0)
    b = batch(n, seed=11)
    b["emotion"] = torch.arange(n) % model.num_classes
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    post = None
    for step in range(1, steps + 1):
        model.train()
        loss, _, _ = model(**b)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        if step % 10 == 0:
            model.eval()
            with torch.no_grad():
                post = model.posteriors(b["speech"], b["speech_lengths"], text=b["text"],
                                        text_lengths=b["text_lengths"])
            if torch.equal(post.argmax(-1), b["emotion"]) and float(post[torch.arange(n), b["emotion"]].min()) > 0.9:
                return step
    raise AssertionError(f"not memorized in {steps} steps: posteriors {post}")
