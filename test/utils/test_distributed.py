"""Rank 0 computes, the others receive: two gloo processes on the CPU, started by torchrun.

torchrun runs this file as a script (``__main__`` below), one process per rank.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ent.utils.distributed import computed_on_rank0, sync_from_rank0, world_and_rank

ROOT = Path(__file__).resolve().parents[2]


def _statistic(calls: Path, rank: int) -> dict:
    """The expensive pass: records who ran it."""
    with calls.open("a") as f:
        f.write(f"{rank}\n")
    return {"mean": torch.arange(3.0), "speakers": ["spk1", "spk2"]}


def _fails() -> None:
    raise ValueError("no utterance with a known emotion")


def _worker(tmp: str) -> None:
    torch.distributed.init_process_group("gloo")  # env:// from torchrun
    world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
    try:
        out = Path(tmp)
        assert world_and_rank() == (world, rank)
        got = computed_on_rank0(_statistic, out / "calls", rank)
        torch.save(got, out / f"stat{rank}.pt")
        # a module whose rank-0 copy was changed (fitted and frozen) after building
        torch.manual_seed(rank)  # different initial weights per rank
        module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
        if rank == 0:
            with torch.no_grad():
                module[0].weight.fill_(0.5)
                module[1].running_mean.fill_(2.0)
            module[0].requires_grad_(False)
        sync_from_rank0(module)
        torch.save({"state": module.state_dict(), "grad": [p.requires_grad for p in module.parameters()]},
                   out / f"module{rank}.pt")
        try:
            computed_on_rank0(_fails)
        except Exception as exc:  # every rank hears of rank 0's failure instead of waiting
            (out / f"error{rank}").write_text(f"{type(exc).__name__}: {exc}")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow  # about 12 s: two processes importing torch
def test_ddp_rank0_computes_and_every_rank_receives(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         __file__, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "calls").read_text() == "0\n"  # computed once, by rank 0
    stats = [torch.load(tmp_path / f"stat{r}.pt") for r in range(2)]
    assert stats[1]["speakers"] == ["spk1", "spk2"] and torch.equal(stats[1]["mean"], torch.arange(3.0))
    modules = [torch.load(tmp_path / f"module{r}.pt") for r in range(2)]
    for key, value in modules[0]["state"].items():
        assert torch.equal(value, modules[1]["state"][key]), key
    assert float(modules[1]["state"]["0.weight"][0, 0]) == 0.5
    assert float(modules[1]["state"]["1.running_mean"][0]) == 2.0
    assert modules[0]["grad"] == modules[1]["grad"] == [False, False, True, True]
    assert (tmp_path / "error0").read_text() == "ValueError: no utterance with a known emotion"
    assert (tmp_path / "error1").read_text() == "RuntimeError: rank 0 failed: ValueError: no utterance with a known emotion"


def test_ddp_helpers_run_locally_without_a_process_group() -> None:
    assert world_and_rank() == (1, 0)
    assert computed_on_rank0(lambda x: x + 1, 1) == 2
    with pytest.raises(ValueError):
        computed_on_rank0(_fails)
    module = torch.nn.Linear(2, 2)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    sync_from_rank0(module)
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in before.items())


if __name__ == "__main__":
    _worker(sys.argv[1])
