"""ESPnet's per-epoch iterator factory over the batches a :class:`DistributedBatchSampler` deals this rank.

ESPnet's trainer calls ``build_iter(epoch)`` at the start of every epoch;
:class:`ShardedIterFactory` asks the sampler for this rank's batches of that
epoch (reshuffled and dealt anew every epoch, the same number on every rank)
and loads them with ESPnet's ``SequenceIterFactory`` (a PyTorch
``DataLoader`` whose workers are seeded by the epoch), without its own
shuffling or ``num_iters_per_epoch`` windowing, which the sampler does.

Debugging: with the environment variable ``ENT_BATCH_LOG`` set to a
directory, every rank appends one JSON line per batch it iterates,
``{"mode": "train", "epoch": 1, "rank": 0, "utts": [...]}``, to
``$ENT_BATCH_LOG/<mode>.rank<rank>.jsonl``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.iterators.sequence_iter_factory import SequenceIterFactory

from ent.data.distributed_sampler import DistributedBatchSampler

#: Environment variable naming the directory of the per-rank batch logs.
BATCH_LOG_ENV = "ENT_BATCH_LOG"


class ShardedIterFactory(AbsIterFactory):
    """Per-epoch ``DataLoader`` over this rank's share of the batches.

    Args:
        dataset: Maps an utterance key to an example (ESPnet's
            ``(utt_id, data)`` dataset contract).
        sampler: Deals the batches of every epoch to this rank.
        num_iters_per_epoch: Steps per epoch (ESPnet's option); None: one
            pass over this rank's share.
        seed: Base seed of the ``DataLoader`` workers (``seed + epoch``).
        num_workers: ``DataLoader`` worker processes.
        collate_fn: Batches examples (ESPnet's ``(utt_ids, batch dict)``).
        pin_memory: Pin the batches' memory (GPU training).
        mode: Name of the iterated set in the batch log (``train``, ``valid``).
    """

    def __init__(
        self,
        dataset: Any,
        sampler: DistributedBatchSampler,
        num_iters_per_epoch: Optional[int] = None,
        seed: int = 0,
        num_workers: int = 0,
        collate_fn: Optional[Callable] = None,
        pin_memory: bool = False,
        mode: str = "train",
    ) -> None:
        self.dataset = dataset
        self.sampler = sampler
        self.num_iters_per_epoch = num_iters_per_epoch
        self.seed = seed
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.pin_memory = pin_memory
        self.mode = mode

    def build_iter(self, epoch: int, shuffle: Optional[bool] = None) -> Iterable:
        """The iterator over this rank's batches of ``epoch``.

        Args:
            epoch: The epoch (ESPnet counts from 1).
            shuffle: Overrides the sampler's ``shuffle``.
        """
        if self.num_iters_per_epoch is not None:
            batches = self.sampler.iteration_batches(epoch, self.num_iters_per_epoch, shuffle)
        else:
            batches = self.sampler.epoch_batches(epoch, shuffle)
        loader = SequenceIterFactory(
            dataset=self.dataset,
            batches=batches,
            seed=self.seed,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            pin_memory=self.pin_memory,
        ).build_iter(epoch)
        log_dir = os.environ.get(BATCH_LOG_ENV)
        if log_dir:
            path = Path(log_dir) / f"{self.mode}.rank{self.sampler.rank}.jsonl"
            return LoggedBatches(loader, path, dict(mode=self.mode, epoch=epoch, rank=self.sampler.rank))
        return loader


class LoggedBatches:
    """An iterable of ``(utt_ids, batch)`` that appends each batch's ids to a JSON-lines file as it yields it.

    Args:
        batches: The iterable (with ``len``).
        path: The log file (appended to; its directory is created).
        fields: Written in every line beside ``utts``.
    """

    def __init__(self, batches: Iterable, path: Path, fields: dict) -> None:
        self.batches = batches
        self.path = path
        self.fields = fields

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for utt_ids, batch in self.batches:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(dict(self.fields, utts=list(utt_ids)), allow_nan=False) + "\n")
            yield utt_ids, batch
