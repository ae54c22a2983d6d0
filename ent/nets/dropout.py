"""Dropout whose random mask is cheaper to draw on the CPU.

``torch.nn.Dropout`` on the CPU draws one Bernoulli sample per element
(``bernoulli_``), which costs more than the matrix products around it in a
small model: in a training step of the ``mini_emo`` ENT (14 utterances, 40 s
of audio) the 31 dropout masks took 15 % of the step. :class:`FastDropout`
draws 64 random bits per four elements and keeps an element when its 16 bits,
read as a signed integer, are at least ``-32768 + round(p * 65536)``: the
drop probability is ``p`` to within 2^-17, the kept elements are scaled by
``1 / (1 - p)`` as in ``torch.nn.Dropout``, and the masks come from torch's
default generator (``torch.manual_seed`` makes them repeat). On other devices,
in evaluation mode and for ``p`` of 0 it is ``torch.nn.Dropout`` itself.

``bench/dropout.py`` measures it against ``torch.nn.Dropout``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

_LEVELS = 1 << 16
_LOWEST = -(1 << 15)


def keep_mask(shape: Sequence[int], p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """A random boolean mask that is False with probability ``p`` (to within 2^-17).

    Args:
        shape: Shape of the mask.
        p: Drop probability in [0, 1].

    Returns:
        Bool tensor of ``shape``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    n = math.prod(int(size) for size in shape)
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    lanes = words.view(torch.int16)[:n].view(*shape)
    return lanes >= _LOWEST + int(round(p * _LEVELS))


class FastDropout(torch.nn.Dropout):
    """``torch.nn.Dropout`` with the mask of :func:`keep_mask` for CPU tensors in training.

    Args:
        p: Drop probability.
        inplace: As ``torch.nn.Dropout`` (used only where it falls back to it).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Drop elements of ``x`` (any shape) with probability ``p`` and scale the rest by ``1 / (1 - p)``."""
        if not self.training or self.p == 0.0 or x.device.type != "cpu" or not x.is_floating_point():
            return super().forward(x)
        if self.p == 1.0:
            return x * 0.0
        scale = 1.0 / (1.0 - self.p)
        return x * (keep_mask(x.shape, self.p, x.device).to(x.dtype) * scale)


def use_fast_dropout(module: torch.nn.Module) -> int:
    """Replace every ``torch.nn.Dropout`` inside ``module`` by a :class:`FastDropout` of the same ``p`` and mode.

    Returns:
        The number of modules replaced.
    """
    count = 0
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Dropout:
                fast = FastDropout(child.p, child.inplace)
                fast.train(child.training)
                setattr(parent, name, fast)
                count += 1
    return count
