"""Length-bucketed batches under a frame budget, shardable across workers.

:class:`LengthBucketBatchSampler` sorts utterances by length and cuts the
sorted list into batches whose *padded* size, ``batch size × longest length in
the batch``, stays within ``max_frames_per_batch`` (the unit is whatever the
lengths are in: samples or feature frames), like ESPnet's ``numel`` batch
type with ``batch_bins``. An utterance longer than the budget on its own forms
a batch of one. Batch composition is fixed (ties in length are broken by key);
the order of the batches is shuffled once per epoch with
``RandomState(seed + epoch)``.

With ``num_replicas > 1`` every rank takes an equal share of whole batches
(``batches[rank::num_replicas]`` of the epoch's shuffled list); when the
number of batches does not divide, the first batches of the epoch's list are
repeated to fill the last round (``drop_last=False``) or the tail is dropped
(``drop_last=True``), as in ``torch.utils.data.DistributedSampler``.

It is an ESPnet :class:`~espnet2.samplers.abs_sampler.AbsSampler`: iterating
yields tuples of keys (utterance ids when ``lengths`` is a dict, positions
when it is a list), and ``generate(seed)`` returns the batches of the epoch
whose seed is ``seed``, so it can be handed to ESPnet's
``SequenceIterFactory(batches=sampler, seed=args.seed, ...)``, which calls
``generate(epoch + args.seed)`` (it then reshuffles the batch order itself,
identically on every rank). Because the sampler shards whole batches, a task
using it must not also split each batch across ranks as ESPnet's
``build_sequence_iter_factory`` does. It also works as a plain PyTorch
``DataLoader(batch_sampler=...)`` with :meth:`set_epoch` called every epoch.
"""

from __future__ import annotations

from typing import Dict, Hashable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from espnet2.samplers.abs_sampler import AbsSampler

from ent.data.audio import TARGET_SAMPLE_RATE, audio_info
from ent.data.datadir import DataDir
from ent.utils.errors import DataError

Batch = Tuple[Hashable, ...]


class LengthBucketBatchSampler(AbsSampler):
    """Batches of similar-length utterances under a padded frame budget.

    Args:
        lengths: utt id → length, or a list of lengths (keys are then the
            positions 0..n-1). Lengths are positive integers (samples or
            frames).
        max_frames_per_batch: Budget for ``batch size × max length`` of a
            batch (same unit as ``lengths``).
        max_batch_size: Optional cap on the number of utterances per batch.
        shuffle: Shuffle the order of the batches every epoch.
        seed: Base random seed; epoch ``e`` uses ``seed + e``.
        drop_last: With several replicas, drop the batches that do not fill a
            last round instead of repeating batches.
        num_replicas: Number of distributed workers.
        rank: This worker's rank in ``[0, num_replicas)``.
    """

    def __init__(
        self,
        lengths: Union[Mapping[str, int], Sequence[int]],
        max_frames_per_batch: int,
        max_batch_size: Optional[int] = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if isinstance(lengths, Mapping):
            items: List[Tuple[Hashable, int]] = [(k, int(v)) for k, v in lengths.items()]
        else:
            items = [(i, int(v)) for i, v in enumerate(lengths)]
        if not items:
            raise ValueError("no utterances to batch")
        bad = [k for k, v in items if v <= 0]
        if bad:
            raise ValueError(f"lengths must be positive; not for {bad[:5]}")
        if max_frames_per_batch <= 0:
            raise ValueError(f"max_frames_per_batch must be positive, not {max_frames_per_batch}")
        if max_batch_size is not None and max_batch_size <= 0:
            raise ValueError(f"max_batch_size must be positive, not {max_batch_size}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, num_replicas={num_replicas}")
        self.max_frames_per_batch = int(max_frames_per_batch)
        self.max_batch_size = max_batch_size
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.lengths: Dict[Hashable, int] = dict(items)
        self.batches: List[Batch] = self._bucket(items)
        if drop_last and len(self.batches) < num_replicas:
            raise ValueError(f"{len(self.batches)} batches cannot feed {num_replicas} replicas with drop_last")

    def _bucket(self, items: List[Tuple[Hashable, int]]) -> List[Batch]:
        """Greedy cut of the length-sorted utterances (ascending) into batches."""
        ordered = sorted(items, key=lambda kv: (kv[1], str(kv[0])))
        batches: List[Batch] = []
        current: List[Tuple[Hashable, int]] = []
        for key, length in ordered:
            size = len(current) + 1
            too_big = size * length > self.max_frames_per_batch
            too_many = self.max_batch_size is not None and size > self.max_batch_size
            if current and (too_big or too_many):
                batches.append(self._finish(current))
                current = []
            current.append((key, length))
        if current:
            batches.append(self._finish(current))
        return batches

    @staticmethod
    def _finish(batch: List[Tuple[Hashable, int]]) -> Batch:
        # Longest first inside a batch (ESPnet's default sort_in_batch=descending).
        return tuple(k for k, _ in sorted(batch, key=lambda kv: (-kv[1], str(kv[0]))))

    # ------------------------------------------------------------------ epochs
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batch order :meth:`__iter__` yields."""
        self.epoch = int(epoch)

    def generate(self, seed: int) -> List[Batch]:
        """This rank's batches in the order given by ``seed`` (ESPnet's iterator-factory hook).

        Epoch ``e`` of :meth:`__iter__` equals ``generate(self.seed + e)``.
        """
        order = list(range(len(self.batches)))
        if self.shuffle:
            order = np.random.RandomState(seed).permutation(len(self.batches)).tolist()
        replicas = self.num_replicas
        if replicas > 1:
            if self.drop_last:
                order = order[: len(order) - len(order) % replicas]
            else:
                pad = (-len(order)) % replicas
                order = order + [order[i % len(order)] for i in range(pad)]
            order = order[self.rank :: replicas]
        return [self.batches[i] for i in order]

    def __iter__(self):
        return iter(self.generate(self.seed + self.epoch))

    def __len__(self) -> int:
        n = len(self.batches)
        if self.num_replicas > 1:
            n = n // self.num_replicas if self.drop_last else -(-n // self.num_replicas)
        return n

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(N-batch={len(self.batches)}, utts={len(self.lengths)}, "
            f"max_frames_per_batch={self.max_frames_per_batch}, max_batch_size={self.max_batch_size}, "
            f"shuffle={self.shuffle}, seed={self.seed}, rank={self.rank}/{self.num_replicas})"
        )


def utterance_lengths(
    data: DataDir,
    unit: str = "samples",
    frame_length: int = 400,
    frame_shift: int = 160,
) -> Dict[str, int]:
    """Lengths of a data directory's utterances at 16 kHz, for batching.

    Durations come from ``utt2dur`` when present, else from ``segments``, else
    from the audio file headers (no audio is decoded).

    Args:
        data: The data directory.
        unit: ``"samples"`` (16 kHz) or ``"frames"`` (feature frames, Kaldi's
            snip-edges count with ``frame_length``/``frame_shift`` samples).
        frame_length: Window length in samples (for ``"frames"``).
        frame_shift: Frame shift in samples (for ``"frames"``).

    Returns:
        utt id → length (≥ 1; utterances shorter than one window count 1 frame).

    Raises:
        DataError: When an audio file is missing or unreadable.
    """
    if unit not in ("samples", "frames"):
        raise ValueError(f"unit must be 'samples' or 'frames', not {unit!r}")
    out: Dict[str, int] = {}
    for utt in data.utt_ids:
        if data.utt2dur is not None and utt in data.utt2dur:
            dur = data.utt2dur[utt]
        else:
            path, start, end = data.audio_entry(utt)
            if start is not None and end is not None and end >= 0:
                dur = end - start
            else:
                try:
                    info = audio_info(path)
                except DataError as exc:
                    raise DataError(data.path / "wav.scp", None, f"{exc.message} ({path})") from None
                dur = info.duration - (start or 0.0)
        samples = max(1, int(round(dur * TARGET_SAMPLE_RATE)))
        if unit == "samples":
            out[utt] = samples
        else:
            out[utt] = max(1, 1 + (samples - frame_length) // frame_shift) if samples >= frame_length else 1
    return out
