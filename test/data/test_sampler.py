"""Tests of the length-bucketed batch sampler."""

import itertools

import numpy as np
import pytest
from espnet2.iterators.sequence_iter_factory import SequenceIterFactory
from espnet2.samplers.abs_sampler import AbsSampler

from ent.data.audio import write_audio
from ent.data.datadir import DataDir
from ent.data.sampler import LengthBucketBatchSampler, utterance_lengths


def _lengths(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return {f"utt{i:04d}": int(rng.integers(50, 1000)) for i in range(n)}


def _flat(batches):
    return [k for b in batches for k in b]


def test_every_utterance_once_per_epoch():
    lengths = _lengths()
    s = LengthBucketBatchSampler(lengths, max_frames_per_batch=4000)
    for epoch in range(3):
        s.set_epoch(epoch)
        keys = _flat(s)
        assert sorted(keys) == sorted(lengths)
        assert len(list(s)) == len(s)


def test_budget_respected_and_overlong_alone():
    lengths = _lengths()
    lengths["huge1"] = 5000
    lengths["huge2"] = 4001
    s = LengthBucketBatchSampler(lengths, max_frames_per_batch=4000, max_batch_size=7)
    for batch in s:
        longest = max(lengths[k] for k in batch)
        if longest > 4000:
            assert len(batch) == 1
        else:
            assert len(batch) * longest <= 4000
        assert len(batch) <= 7
        # longest first inside a batch
        assert [lengths[k] for k in batch] == sorted((lengths[k] for k in batch), reverse=True)


def test_batches_are_length_buckets():
    lengths = _lengths()
    s = LengthBucketBatchSampler(lengths, max_frames_per_batch=4000, shuffle=False)
    batches = list(s)
    # unshuffled: ascending length across batches, so the buckets do not overlap
    for a, b in zip(batches, batches[1:]):
        assert max(lengths[k] for k in a) <= min(lengths[k] for k in b)
    # greedy: adding the next utterance would break the budget
    for a, b in zip(batches, batches[1:]):
        nxt = max(b, key=lambda k: -lengths[k])  # the shortest of the next batch comes next
        assert (len(a) + 1) * lengths[nxt] > 4000


def test_deterministic_given_seed_and_epoch_and_different_across_epochs():
    lengths = _lengths()
    a = LengthBucketBatchSampler(lengths, 4000, seed=3)
    b = LengthBucketBatchSampler(dict(reversed(list(lengths.items()))), 4000, seed=3)
    a.set_epoch(5)
    b.set_epoch(5)
    assert list(a) == list(b)
    orders = []
    for epoch in range(3):
        a.set_epoch(epoch)
        orders.append(list(a))
    assert orders[0] != orders[1] != orders[2]
    assert sorted(orders[0]) == sorted(orders[1])  # same batches, another order
    c = LengthBucketBatchSampler(lengths, 4000, seed=4)
    assert list(c) != orders[0]
    assert a.generate(3 + 1) == orders[1]


@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_shards_disjoint_equal_and_covering(replicas):
    lengths = _lengths(97)
    full = LengthBucketBatchSampler(lengths, 3000, seed=1)
    full.set_epoch(2)
    all_batches = list(full)
    shards = []
    for rank in range(replicas):
        s = LengthBucketBatchSampler(lengths, 3000, seed=1, num_replicas=replicas, rank=rank)
        s.set_epoch(2)
        shards.append(list(s))
        assert len(shards[-1]) == len(s)
    assert len({len(sh) for sh in shards}) == 1
    combined = list(itertools.chain(*shards))
    assert set(combined) == set(all_batches)  # every batch is somewhere
    pad = (-len(all_batches)) % replicas
    assert len(combined) == len(all_batches) + pad  # only the padding repeats
    if pad == 0:
        assert len(set(combined)) == len(combined)
    # drop_last: disjoint, equal, all but fewer than `replicas` batches
    dropped = []
    for rank in range(replicas):
        s = LengthBucketBatchSampler(lengths, 3000, seed=1, num_replicas=replicas, rank=rank, drop_last=True)
        s.set_epoch(2)
        dropped.append(list(s))
    flat = list(itertools.chain(*dropped))
    assert len(set(flat)) == len(flat) == len(all_batches) - len(all_batches) % replicas
    assert len({len(sh) for sh in dropped}) == 1


def test_more_replicas_than_batches_repeats():
    s = [LengthBucketBatchSampler([10, 10, 10], 30, num_replicas=3, rank=r) for r in range(3)]
    assert [list(x) for x in s] == [[(0, 1, 2)]] * 3


def test_list_lengths_yield_indices_and_bad_input():
    s = LengthBucketBatchSampler([5, 1, 3, 2], max_frames_per_batch=6, shuffle=False)
    assert list(s) == [(3, 1), (2,), (0,)]
    with pytest.raises(ValueError):
        LengthBucketBatchSampler([5, 0], 10)
    with pytest.raises(ValueError):
        LengthBucketBatchSampler([5], 10, num_replicas=2, rank=2)
    with pytest.raises(ValueError):
        LengthBucketBatchSampler([], 10)


def test_espnet_iter_factory_accepts_it():
    lengths = _lengths(40)
    s = LengthBucketBatchSampler(lengths, 4000, seed=0)
    assert isinstance(s, AbsSampler)

    class KeyDataset:
        def __getitem__(self, key):
            return key

    factory = SequenceIterFactory(dataset=KeyDataset(), batches=s, seed=7, shuffle=True,
                                  collate_fn=lambda items: list(items))
    epoch1 = list(factory.build_iter(1))
    epoch2 = list(factory.build_iter(2))
    assert sorted(_flat(epoch1)) == sorted(lengths) == sorted(_flat(epoch2))
    assert epoch1 != epoch2
    assert list(factory.build_iter(1)) == epoch1


def test_utterance_lengths(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    write_audio(tmp_path / "a.wav", np.zeros(8000, dtype=np.float32))
    write_audio(tmp_path / "b.wav", np.zeros(16000, dtype=np.float32), sample_rate=8000)
    (d / "wav.scp").write_text(f"a {tmp_path / 'a.wav'}\nb {tmp_path / 'b.wav'}\n", encoding="utf-8")
    for name in ("text", "utt2spk", "utt2emo"):
        (d / name).write_text("a x\nb x\n", encoding="utf-8")
    data = DataDir.load(d)
    assert utterance_lengths(data) == {"a": 8000, "b": 32000}  # header: 2 s at 8 kHz
    assert utterance_lengths(data, unit="frames") == {"a": 48, "b": 198}
    (d / "utt2dur").write_text("a 0.25\nb 1.0\n", encoding="utf-8")
    assert utterance_lengths(DataDir.load(d)) == {"a": 4000, "b": 16000}
