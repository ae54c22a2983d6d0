"""ent.sh stage 7 as distributed data-parallel training: the launch commands, and a real torchrun run on the CPU."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "egs" / "TEMPLATE" / "ent1"
sys.path.insert(0, str(ROOT / "test"))

from conftest import TINY_TRAIN_CONFIG  # noqa: E402
from datadir_factory import make_data_dir  # noqa: E402


def _recipe(tmp_path: Path) -> Path:
    rdir = tmp_path / "egs" / "toy" / "ent1"
    (rdir / "conf").mkdir(parents=True)
    (rdir / "ent.sh").symlink_to(TEMPLATE / "ent.sh")
    (rdir / "utils").symlink_to(TEMPLATE / "utils")
    return rdir


def _ent_sh(rdir: Path, python: str, *args: str, env: dict = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Stage 7 of ent.sh in ``rdir``; on a timeout its whole process group (torchrun and its ranks) is killed."""
    cmd = ["./ent.sh", "--python", python, "--token_type", "char", "--stage", "7", "--stop_stage", "7",
           "--train_configs", "conf/tiny.yaml", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **(env or {}))
    proc = subprocess.Popen(cmd, cwd=rdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        try:  # what is left of a timeout or a failure (ent.sh's group: torchrun and its ranks)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """A python that records its command line (one call per line) instead of training."""
    script = tmp_path / "fake_python"
    script.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$*" >> "$FAKE_PYTHON_LOG"\n')
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("args, launcher, train_opts", [
    ([], "-m ent.bin.train", "--ngpu 0"),
    (["--ngpu", "1"], "-m ent.bin.train", "--ngpu 1"),
    # one machine, N GPUs: ESPnet starts N DDP processes (not DataParallel)
    (["--ngpu", "2"], "-m ent.bin.train", "--ngpu 2 --multiprocessing_distributed true"),
    (["--dist_launcher", "torchrun", "--nproc_per_node", "2"],
     "-m torch.distributed.run --standalone --nproc_per_node 2 --rdzv_id tiny_fbank_char -m ent.bin.train",
     "--ngpu 0 --dist_backend gloo --multiprocessing_distributed false"),
    (["--ngpu", "4", "--dist_launcher", "torchrun"],
     "-m torch.distributed.run --standalone --nproc_per_node 4 --rdzv_id tiny_fbank_char -m ent.bin.train",
     "--ngpu 1 --dist_backend nccl --multiprocessing_distributed false"),
    (["--ngpu", "8", "--num_nodes", "2", "--dist_launcher", "torchrun", "--rdzv_endpoint", "node1:29400"],
     "-m torch.distributed.run --nnodes 2 --rdzv_backend c10d --rdzv_endpoint node1:29400 "
     "--nproc_per_node 8 --rdzv_id tiny_fbank_char -m ent.bin.train",
     "--ngpu 1 --dist_backend nccl --multiprocessing_distributed false"),
])
def test_ddp_launch_commands_of_stage_7(tmp_path: Path, fake_python: Path, args, launcher, train_opts) -> None:
    rdir = _recipe(tmp_path)
    log = tmp_path / "calls"
    out = _ent_sh(rdir, str(fake_python), *args, env={"FAKE_PYTHON_LOG": str(log)})
    assert out.returncode == 0, out.stdout + out.stderr
    (call,) = log.read_text().splitlines()
    assert call.startswith(f"{launcher} --config conf/tiny.yaml {train_opts} --train_data_dir data/train "), call


@pytest.mark.parametrize("args, message", [
    (["--num_nodes", "2"], "--num_nodes, --nproc_per_node and --rdzv_endpoint need --dist_launcher torchrun"),
    (["--nproc_per_node", "2"], "--num_nodes, --nproc_per_node and --rdzv_endpoint need --dist_launcher torchrun"),
    (["--dist_launcher", "torchrun", "--num_nodes", "2"], "--num_nodes 2 needs --rdzv_endpoint HOST:PORT"),
    (["--dist_launcher", "torchrun", "--ngpu", "2", "--nproc_per_node", "3"],
     "--nproc_per_node must be --ngpu (2)"),
    (["--dist_launcher", "slurm"], "--dist_launcher must be empty or torchrun, not 'slurm'"),
])
def test_ddp_bad_launch_options_are_one_line_errors(tmp_path: Path, fake_python: Path, args, message) -> None:
    rdir = _recipe(tmp_path)
    out = _ent_sh(rdir, str(fake_python), *args, env={"FAKE_PYTHON_LOG": str(tmp_path / "calls")})
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert not (tmp_path / "calls").exists()


def _epoch_losses(log: str) -> dict:
    """``{epoch: (train loss, valid loss)}`` from ESPnet's "Nepoch results" lines."""
    out = {}
    for m in re.finditer(r"(\d+)epoch results: \[train\] (.*?)\[valid\] (.*?)(?:, time=|$)", log, re.M):
        train = float(re.search(r"(?:^|, )loss=([-\d.e+]+)", m.group(2)).group(1))
        valid = float(re.search(r"(?:^|, )loss=([-\d.e+]+)", m.group(3)).group(1))
        out[int(m.group(1))] = (train, valid)
    return out


@pytest.mark.slow  # 5 min on 2 busy cores: process start-up and kernel compilation in every rank
@pytest.mark.timeout(2400)
def test_ddp_torchrun_two_cpu_ranks_train_a_model_that_decodes(tmp_path: Path) -> None:
    """ent.sh --dist_launcher torchrun --nproc_per_node 2: two gloo DDP ranks train 2 epochs.

    The model has a prosody expert and speaker CMVN (rank 0 computes both and
    the other rank receives them); ENT_BATCH_LOG records each rank's batches.
    """
    from ent.bin import compute_cmvn_stats, train_tokenizer

    rdir = _recipe(tmp_path)
    data = rdir / "data"
    make_data_dir(data, n=16, name="train")
    make_data_dir(data, n=5, name="dev")  # odd: nothing to pad
    train_tokenizer.main(["--text", str(data / "train" / "text"), "--token-type", "char",
                          "--out-dir", str(data / "token_list" / "char")])
    compute_cmvn_stats.main(["--data-dir", str(data / "train"), "--pitch",
                             "--out", str(rdir / "exp" / "stats_fbank80_pitch" / "feats_stats.npz")])
    (rdir / "conf" / "tiny.yaml").write_text(
        TINY_TRAIN_CONFIG.replace("max_frames_per_batch: 2000", "max_frames_per_batch: 400")
        .replace("lr: 0.002", "lr: 0.005")
        + "head_conf: {prosody: true}\nfrontend_conf: {pitch: true}\nspeaker_cmvn: true\nnum_workers: 0\n"
    )
    batch_log = tmp_path / "batches"
    out = _ent_sh(rdir, sys.executable, "--feats_type", "fbank_pitch", "--dist_launcher", "torchrun",
                  "--nproc_per_node", "2", "--train_args", "--max_epoch 2", env={"ENT_BATCH_LOG": str(batch_log)},
                  timeout=1800)
    mdir = rdir / "exp" / "tiny_fbank_pitch_char_max_epoch2"
    train_log = (mdir / "train.log").read_text() if (mdir / "train.log").exists() else ""
    assert out.returncode == 0, out.stdout + out.stderr + train_log[-5000:]
    assert re.search(r"^\[[^\]\s]*:0/2\] ", train_log, re.M)  # ESPnet's log prefix of rank 0 of 2

    # each rank's batches: disjoint within an epoch, together every training utterance once,
    # the same number per rank, another share in the next epoch
    train_utts = sorted(l.split()[0] for l in (data / "train" / "text").read_text().splitlines())
    dev_utts = sorted(l.split()[0] for l in (data / "dev" / "text").read_text().splitlines())
    seen = {}
    for rank in (0, 1):
        for mode in ("train", "valid"):
            for line in (batch_log / f"{mode}.rank{rank}.jsonl").read_text().splitlines():
                rec = json.loads(line)
                assert rec["rank"] == rank
                seen.setdefault((mode, rec["epoch"], rank), []).append(tuple(rec["utts"]))
    for mode, utts in (("train", train_utts), ("valid", dev_utts)):
        for epoch in (1, 2):
            shards = [seen[mode, epoch, r] for r in (0, 1)]
            assert len(shards[0]) == len(shards[1]) > 0, (mode, epoch)
            flat = [u for sh in shards for b in sh for u in b]
            assert sorted(flat) == utts, (mode, epoch)  # disjoint and covering: nothing repeated or lost
    for rank in (0, 1):
        epoch1 = {u for b in seen["train", 1, rank] for u in b}
        epoch2 = {u for b in seen["train", 2, rank] for u in b}
        assert epoch1 != epoch2, rank
        assert seen["valid", 1, rank] == seen["valid", 2, rank]
    assert len(seen["train", 1, 0]) >= 3  # several steps per epoch

    losses = _epoch_losses(train_log)
    assert sorted(losses) == [1, 2], train_log[-3000:]
    assert losses[2][0] < losses[1][0], losses  # the training loss falls
    assert (mdir / "valid.loss.ave.pth").is_file() and (mdir / "config.yaml").is_file()
    config = (mdir / "config.yaml").read_text()
    assert "dist_backend: gloo" in config and "distributed: true" in config
    assert "prosody: true" in config and "prosody expert fitted" in train_log  # the expert took part

    dec = tmp_path / "decode"
    proc = subprocess.run(
        [sys.executable, "-m", "ent.bin.inference", "--model-dir", str(mdir), "--data-dir", str(data / "dev"),
         "--out-dir", str(dec), "--search", "greedy"],
        cwd=rdir, env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"), capture_output=True,
        text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(l) for l in (dec / "result.jsonl").read_text().splitlines()]
    assert sorted(r["utt"] for r in records) == dev_utts
    assert all(r["emotion"] in ("neutral", "happy", "angry", "sad") for r in records)
