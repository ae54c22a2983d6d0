"""ENTTask's iterators: one process keeps the batch order of ESPnet's SequenceIterFactory."""

import sys
from pathlib import Path

from espnet2.iterators.sequence_iter_factory import SequenceIterFactory
from espnet2.train.distributed_utils import DistributedOption

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datadir_factory import make_data_dir  # noqa: E402

from ent.bin import train_tokenizer  # noqa: E402
from ent.data.sampler import LengthBucketBatchSampler, utterance_lengths  # noqa: E402
from ent.data.datadir import DataDir  # noqa: E402
from ent.tasks.ent_task import ENTTask  # noqa: E402


def test_one_process_epochs_are_the_reference_order(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path, n=14, name="train")
    tokens = tmp_path / "tok"
    train_tokenizer.main(["--text", str(data / "text"), "--token-type", "char", "--out-dir", str(tokens)])
    args = ENTTask.get_parser().parse_args([
        "--train_data_dir", str(data), "--valid_data_dir", str(data), "--token_dir", str(tokens),
        "--max_frames_per_batch", "400", "--seed", "3", "--num_workers", "0",
    ])
    factory = ENTTask.build_iter_factory(args, DistributedOption(distributed=False), "train")
    # the reference: the buckets in the seed's order, reshuffled by SequenceIterFactory every epoch
    lengths = utterance_lengths(DataDir.load(data), unit="frames")
    buckets = list(LengthBucketBatchSampler(lengths, 400, seed=3))
    reference = SequenceIterFactory(dataset=None, batches=buckets, seed=3, shuffle=True)
    orders = []
    for epoch in (1, 2, 3):
        got = [tuple(ids) for ids, _ in factory.build_iter(epoch)]
        assert got == list(reference.build_iter(epoch).batch_sampler), epoch
        orders.append(got)
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1])
    valid = ENTTask.build_iter_factory(args, DistributedOption(distributed=False), "valid")
    assert [tuple(ids) for ids, _ in valid.build_iter(1)] == [tuple(b) for b in LengthBucketBatchSampler(
        lengths, 400, shuffle=False)]
