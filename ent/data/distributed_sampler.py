"""Whole batches dealt to distributed ranks, reshuffled every epoch, the same number per rank.

Distributed data-parallel training runs one process (rank) per device, and
every optimizer step is one batch on every rank, the gradients averaged across
ranks. :class:`DistributedBatchSampler` takes the batches of a data set (e.g.
the length buckets of :class:`~ent.data.sampler.LengthBucketBatchSampler`) and
gives each rank its share of them for an epoch:

* every epoch the batch order is drawn again with ``RandomState(seed + epoch)``
  (the same on every rank, so no communication is needed) and rank ``r``
  takes the batches at positions ``r, r + W, r + 2W, ...`` of it (``W`` ranks):
  within an epoch the ranks' batches are disjoint and cover the data set, and
  which rank sees which batch changes from epoch to epoch;
* every rank gets the same number of batches: when the number of batches is
  not a multiple of ``W``, the batches with the most utterances are split in
  two (halves within the frame budget, since both are smaller) until it is,
  so no utterance is repeated or dropped. ESPnet's trainer stops every rank
  at the end of the shortest rank's iterator (``iterator_stop``), so uneven
  counts would drop the other ranks' last batches, of validation too.

Only when no batch can be split (every batch a single utterance) and the
number of utterances is not a multiple of ``W`` is an even deal impossible:
with ``repeat_to_fill`` (training) the first batches of the epoch's order
fill the last round, as ``torch.utils.data.DistributedSampler`` does; without
it (validation, whose averaged statistics must count every utterance once) it
is a ``ValueError``.

With ESPnet's ``num_iters_per_epoch`` an epoch is a window of fixed length on
the endless sequence of this rank's passes over the data (pass ``p`` ordered
by ``seed + p``), as ESPnet's ``SequenceIterFactory`` does with its batches.
"""

from __future__ import annotations

import logging
from typing import Hashable, List, Optional, Sequence, Tuple

import numpy as np

Batch = Tuple[Hashable, ...]

logger = logging.getLogger(__name__)


def split_to_multiple(batches: Sequence[Sequence[Hashable]], num_replicas: int) -> List[Batch]:
    """Split the largest batches in two until their number is a multiple of ``num_replicas``.

    The batch with the most utterances (the first of equals) is replaced by
    its two halves in place (the first half the larger), keeping the order of
    the utterances inside it, and so on.

    Args:
        batches: The batches, each a sequence of keys.
        num_replicas: Number of ranks.

    Returns:
        The batches, ``len % num_replicas == 0``, the same utterances each once.

    Raises:
        ValueError: When a single-utterance batch would have to be split.
    """
    if num_replicas < 1:
        raise ValueError(f"num_replicas must be >= 1, not {num_replicas}")
    out: List[Batch] = [tuple(b) for b in batches]
    while len(out) % num_replicas:
        i = max(range(len(out)), key=lambda j: (len(out[j]), -j))
        if len(out[i]) < 2:
            raise ValueError(
                f"{len(out)} single-utterance batches cannot be dealt evenly to {num_replicas} ranks"
            )
        half = (len(out[i]) + 1) // 2
        out[i : i + 1] = [out[i][:half], out[i][half:]]
    return out


class DistributedBatchSampler:
    """This rank's batches of every epoch: disjoint from the other ranks', reshuffled, equal in number.

    Args:
        batches: All ranks' batches (the same list on every rank), each a
            sequence of utterance keys.
        num_replicas: Number of ranks ``W``.
        rank: This rank, in ``[0, W)``.
        shuffle: Draw a new batch order every epoch (training); else the
            order of ``batches`` every epoch (validation).
        seed: Base seed; epoch ``e`` is ordered by ``RandomState(seed + e)``.
        repeat_to_fill: Where an even deal is impossible (see the module
            docstring), repeat batches to fill the last round instead of
            raising.

    Raises:
        ValueError: On no batches, a bad rank, or an impossible even deal
            without ``repeat_to_fill``.
    """

    def __init__(
        self,
        batches: Sequence[Sequence[Hashable]],
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        repeat_to_fill: bool = False,
    ) -> None:
        if not batches:
            raise ValueError("no batches to deal")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, num_replicas={num_replicas}")
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = int(seed)
        self.pad = 0
        try:
            self.batches = split_to_multiple(batches, num_replicas)
        except ValueError as exc:
            if not repeat_to_fill:
                raise ValueError(
                    f"{exc}: {sum(len(b) for b in batches)} utterances, each longer than half the "
                    "batch budget; use a number of ranks that divides it or a larger budget"
                ) from None
            self.batches = [tuple(b) for b in batches]
            self.pad = (-len(self.batches)) % num_replicas
            logger.warning(f"{exc}: {self.pad} batches are repeated every epoch to fill the last round")

    def __len__(self) -> int:
        """Batches per rank per epoch (without ``num_iters_per_epoch``)."""
        return (len(self.batches) + self.pad) // self.num_replicas

    def epoch_batches(self, epoch: int, shuffle: Optional[bool] = None) -> List[Batch]:
        """This rank's batches of ``epoch``, in the order it trains on them.

        Args:
            epoch: The epoch (ESPnet counts from 1).
            shuffle: Overrides the constructor's ``shuffle``.
        """
        shuffle = self.shuffle if shuffle is None else shuffle
        n = len(self.batches)
        order = np.random.RandomState(self.seed + epoch).permutation(n) if shuffle else np.arange(n)
        order = np.concatenate([order, order[: self.pad]])
        return [self.batches[i] for i in order[self.rank :: self.num_replicas]]

    def iteration_batches(self, epoch: int, num_iters: int, shuffle: Optional[bool] = None) -> List[Batch]:
        """This rank's ``num_iters`` batches of ``epoch`` when an epoch is a fixed number of steps.

        Epoch ``e`` covers positions ``[(e - 1) * num_iters, e * num_iters)``
        of the concatenation of this rank's passes 1, 2, 3, ... (pass ``p``
        is :meth:`epoch_batches` of ``p``).
        """
        if num_iters < 1:
            raise ValueError(f"num_iters must be >= 1, not {num_iters}")
        per_pass = len(self)
        start = (epoch - 1) * num_iters
        out: List[Batch] = []
        while len(out) < num_iters:
            pass_index, offset = divmod(start + len(out), per_pass)
            batches = self.epoch_batches(pass_index + 1, shuffle)
            out.extend(batches[offset : offset + num_iters - len(out)])
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(batches={len(self.batches)}, per_rank={len(self)}, "
            f"rank={self.rank}/{self.num_replicas}, shuffle={self.shuffle}, seed={self.seed}, pad={self.pad})"
        )
