"""Dealing batches to distributed ranks: disjoint, covering, reshuffled per epoch, equal counts (no processes)."""

import itertools
import json
from collections import Counter

import numpy as np
import pytest

from ent.data.distributed_sampler import DistributedBatchSampler, split_to_multiple
from ent.data.sampler import LengthBucketBatchSampler
from ent.tasks.iter_factory import BATCH_LOG_ENV, ShardedIterFactory


def _buckets(n=97, budget=3000, seed=0):
    rng = np.random.default_rng(seed)
    lengths = {f"utt{i:04d}": int(rng.integers(50, 1000)) for i in range(n)}
    return lengths, LengthBucketBatchSampler(lengths, budget, shuffle=False).batches


def _ranks(batches, world, **kw):
    return [DistributedBatchSampler(batches, num_replicas=world, rank=r, **kw) for r in range(world)]


def test_ddp_split_to_multiple_halves_the_largest_batches_only_as_needed():
    batches = [("a",), ("b", "c", "d"), ("e", "f"), ("g", "h", "i")]
    assert split_to_multiple(batches, 2) == [tuple(b) for b in batches]  # already a multiple
    # 4 -> 6 batches: the first largest, then the next largest, each split in place (first half larger)
    assert split_to_multiple(batches, 3) == [("a",), ("b", "c"), ("d",), ("e", "f"), ("g", "h"), ("i",)]
    assert split_to_multiple(batches, 5) == [("a",), ("b", "c"), ("d",), ("e", "f"), ("g", "h", "i")]
    with pytest.raises(ValueError, match="3 single-utterance batches cannot be dealt evenly to 2 ranks"):
        split_to_multiple([("a",), ("b",), ("c",)], 2)


@pytest.mark.parametrize("world", [1, 2, 3, 4, 5])
def test_ddp_ranks_are_disjoint_covering_equal_and_within_budget(world):
    lengths, batches = _buckets()
    ranks = _ranks(batches, world, seed=7)
    for epoch in (1, 2, 3):
        shards = [s.epoch_batches(epoch) for s in ranks]
        assert len({len(sh) for sh in shards}) == 1 and len(shards[0]) == len(ranks[0])
        utts = [u for sh in shards for b in sh for u in b]
        assert Counter(utts) == Counter(list(lengths))  # every utterance exactly once per epoch
        for batch in itertools.chain(*shards):
            assert len(batch) * max(lengths[u] for u in batch) <= 3000
            assert [lengths[u] for u in batch] == sorted((lengths[u] for u in batch), reverse=True)
    # no more splits than needed to make the count a multiple of the world size
    assert len(ranks[0].batches) == len(batches) + (-len(batches)) % world


def test_ddp_shards_are_reshuffled_every_epoch_and_reproducible():
    _, batches = _buckets()
    ranks = _ranks(batches, 2, seed=7)
    per_epoch = [[set(s.epoch_batches(epoch)) for s in ranks] for epoch in (1, 2, 3)]
    for a, b in itertools.combinations(per_epoch, 2):
        assert a[0] != b[0] and a[1] != b[1]  # each rank sees other batches in another epoch
    # the same on a fresh instance (every rank computes the deal alone) and order-dependent on the seed
    again = _ranks(batches, 2, seed=7)
    assert [s.epoch_batches(2) for s in again] == [s.epoch_batches(2) for s in ranks]
    other = _ranks(batches, 2, seed=8)
    assert other[0].epoch_batches(2) != ranks[0].epoch_batches(2)
    # seed + epoch, as ESPnet's SequenceIterFactory: (seed 7, epoch 3) == (seed 8, epoch 2)
    assert other[0].epoch_batches(2) == ranks[0].epoch_batches(3)


def test_ddp_validation_deal_is_fixed_and_never_repeats():
    _, batches = _buckets(n=31)
    ranks = _ranks(batches, 4, shuffle=False)
    assert all(s.epoch_batches(1) == s.epoch_batches(2) for s in ranks)
    assert ranks[0].epoch_batches(1) == ranks[0].batches[0::4]
    # single-utterance batches that cannot be dealt evenly: an error, not a repeat ...
    singles = [(f"u{i}",) for i in range(5)]
    with pytest.raises(ValueError, match="5 utterances, each longer than half the batch budget"):
        DistributedBatchSampler(singles, num_replicas=2, rank=0, shuffle=False)
    # ... unless repeats are allowed (training): the first batches of the epoch fill the last round
    fill = _ranks(singles, 2, seed=1, repeat_to_fill=True)
    shards = [s.epoch_batches(1) for s in fill]
    assert [len(sh) for sh in shards] == [3, 3]
    counts = Counter(itertools.chain(*shards))
    assert set(counts) == set(singles) and sorted(counts.values()) == [1, 1, 1, 1, 2]
    with pytest.raises(ValueError):
        DistributedBatchSampler(singles, num_replicas=2, rank=2)
    with pytest.raises(ValueError):
        DistributedBatchSampler([], num_replicas=1, rank=0)


def test_ddp_fixed_steps_per_epoch_walk_through_the_passes():
    _, batches = _buckets(n=40)
    for world in (1, 3):
        for rank, s in enumerate(_ranks(batches, world, seed=3)):
            stream = [b for p in range(1, 40) for b in s.epoch_batches(p)]
            windows = [b for e in range(1, 8) for b in s.iteration_batches(e, 4)]
            assert windows == stream[: len(windows)]
            longer = [b for e in range(1, 3) for b in s.iteration_batches(e, 2 * len(s) + 1)]
            assert longer == stream[: len(longer)]


def test_ddp_iter_factory_loads_this_ranks_batches_and_logs_them(tmp_path, monkeypatch):
    lengths, batches = _buckets(n=20)

    class KeyDataset:
        def __getitem__(self, key):
            return key, {"length": np.array([lengths[key]])}

    def collate(items):
        return [k for k, _ in items], {"length": np.concatenate([d["length"] for _, d in items])}

    monkeypatch.setenv(BATCH_LOG_ENV, str(tmp_path / "log"))
    seen = {}
    for rank in range(2):
        sampler = DistributedBatchSampler(batches, num_replicas=2, rank=rank, seed=5)
        factory = ShardedIterFactory(KeyDataset(), sampler, seed=5, collate_fn=collate, mode="train")
        for epoch in (1, 2):
            it = factory.build_iter(epoch)
            assert len(it) == len(sampler)
            got = [tuple(ids) for ids, _ in it]
            assert got == sampler.epoch_batches(epoch)
            seen[rank, epoch] = got
        # with a fixed number of steps the factory takes the sampler's window
        factory.num_iters_per_epoch = 3
        assert [tuple(ids) for ids, _ in factory.build_iter(4)] == sampler.iteration_batches(4, 3)
    for rank in range(2):
        lines = [json.loads(l) for l in (tmp_path / "log" / f"train.rank{rank}.jsonl").read_text().splitlines()]
        logged = [(d["epoch"], tuple(d["utts"])) for d in lines if d["epoch"] in (1, 2)]
        assert logged == [(e, b) for e in (1, 2) for b in seen[rank, e]]
        assert all(d["rank"] == rank and d["mode"] == "train" for d in lines)
