"""Fault injection: training killed with SIGKILL at random moments resumes and trains every epoch once.

Slow (several training runs). Select it with ``pytest -m slow -k kill``; a
failure prints the random seed, ``ENT_KILL_TEST_SEED=<seed>`` repeats it.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import random
import re
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # datadir_factory
sys.path.insert(0, str(HERE))  # train_in_child, imported by name in the fork server

from datadir_factory import make_data_dir  # noqa: E402

from ent.utils.checkpoint_io import SAVE_PAUSE_ENV, load_checkpoint  # noqa: E402

MAX_EPOCH = 5
PAUSE = 1.0  # s between a complete temporary file and its rename (test-only hook)
CONFIG = """\
encoder_conf: {num_blocks: 1, hidden_size: 16, linear_size: 32, heads: 2, conv_mod_kernel_size: 3}
predictor_conf: {embed_dim: 8, hidden_dim: 16}
model_conf: {variant: fent}
joint_conf: {dim: 16}
loss_conf: {lattice_weight: 0.5, predictor_lm_weight: 0.1}
specaug_conf: {}
max_frames_per_batch: 2000
optim: adam
optim_conf: {lr: 0.002}
num_att_plot: 0
keep_nbest_models: 2
best_model_criterion: [[valid, loss, min]]
use_tensorboard: false
use_matplotlib: false
num_workers: 0
"""

Trigger = Callable[[], bool]


class Runner:
    """Starts ``ent.bin.train`` runs in a preloaded fork server and kills them when a trigger fires."""

    def __init__(self, argv: List[str], exp: Path, log: Path, env: Dict[str, str]) -> None:
        self.argv, self.exp, self.log, self.env = argv, exp, log, env
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(["ent.bin.train", "ent.tasks.ent_task", "train_in_child"])
        self.kills = 0

    def run(self, trigger: Trigger, delay: float = 0.0, timeout: float = 600.0) -> bool:
        """Run training until it ends (True if it exited 0) or ``trigger`` fires (SIGKILL after ``delay`` s)."""
        import train_in_child

        proc = self.ctx.Process(target=train_in_child.train_logged, args=(self.argv, str(self.log), self.env))
        proc.start()
        deadline = time.monotonic() + timeout
        while proc.is_alive() and time.monotonic() < deadline:
            if trigger():
                time.sleep(delay)
                os.kill(proc.pid, signal.SIGKILL)
                proc.join()
                if proc.exitcode == -signal.SIGKILL:
                    self.kills += 1
                    with open(self.log, "a") as fh:
                        fh.write(f"=== killed; on disk: {sorted(p.name for p in self.exp.iterdir())}\n")
                    return False
                break
            time.sleep(0.01)
        proc.join(timeout=max(1.0, deadline - time.monotonic()))
        assert proc.exitcode == 0, f"training exited with {proc.exitcode}; see {self.log}"
        return True

    # --------------------------------------------------------------- triggers
    def after(self, seconds: float) -> Trigger:
        start = time.monotonic()
        return lambda: time.monotonic() - start >= seconds

    def on_temporary(self, name: str, occurrence: int = 1) -> Trigger:
        """Fires once the ``occurrence``-th temporary file of a target matching regex ``name`` appeared in this run."""
        pattern = re.compile(r"\." + name + r"\..+\.tmp")
        seen: set = set()

        def fired() -> bool:
            seen.update(p for p in os.listdir(self.exp) if pattern.fullmatch(p))
            return len(seen) >= occurrence

        return fired

    def after_commit(self, seconds: float) -> Trigger:
        """Fires ``seconds`` after this run first replaces checkpoint.pth (an epoch counted as done)."""
        path = self.exp / "checkpoint.prev.pth"  # the replaced checkpoint.pth becomes this file
        inode = path.stat().st_ino if path.exists() else None
        committed: List[float] = []

        def fired() -> bool:
            if not committed and path.exists() and path.stat().st_ino != inode:
                committed.append(time.monotonic())
            return bool(committed) and time.monotonic() - committed[0] >= seconds

        return fired


def _assert_nothing_truncated(exp: Path) -> int:
    """Every ``.pth`` on disk loads; the committed epoch's file is there. Returns the committed epoch (0: none)."""
    for path in exp.glob("*.pth"):
        if path.exists():  # not a dangling link
            load_checkpoint(path)
    if not (exp / "checkpoint.pth").exists():
        return 0
    epoch = load_checkpoint(exp / "checkpoint.pth")["reporter"]["epoch"]
    assert (exp / f"{epoch}epoch.pth").is_file(), f"checkpoint.pth is at epoch {epoch} but {epoch}epoch.pth is missing"
    return epoch


def _epoch_time(log: Path) -> float:
    """Seconds per epoch of a training log (first epoch start to last epoch end, start-up excluded)."""
    stamps = [datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for m in re.finditer(
        r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \(trainer:\d+\) INFO: \d+(?:/\d+epoch started|epoch results)",
        log.read_text())]
    return (stamps[-1] - stamps[0]).total_seconds() / MAX_EPOCH


@pytest.mark.slow
def test_training_killed_at_random_moments_resumes_every_epoch_once(tmp_path: Path) -> None:
    from ent.bin import compute_cmvn_stats, train_tokenizer
    from ent.data.datadir import DataDir
    from ent.decoding.recognizer import EmotionRecognizer

    seed = int(os.environ.get("ENT_KILL_TEST_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    data = make_data_dir(tmp_path, n=4, name="train", durations=[0.6, 0.7, 0.8, 0.9])
    tokens, stats, config = tmp_path / "tok", tmp_path / "stats.npz", tmp_path / "tiny.yaml"
    train_tokenizer.main(["--text", str(data / "text"), "--token-type", "char", "--out-dir", str(tokens)])
    compute_cmvn_stats.main(["--data-dir", str(data), "--out", str(stats)])
    config.write_text(CONFIG)

    def argv(exp: Path) -> List[str]:
        return ["--config", str(config), "--train_data_dir", str(data), "--valid_data_dir", str(data),
                "--token_dir", str(tokens), "--normalize_conf", f"stats_file={stats}", "--output_dir", str(exp),
                "--max_epoch", str(MAX_EPOCH), "--resume", "true"]

    # The same training without kills, for comparison.
    ref = tmp_path / "ref"
    assert Runner(argv(ref), ref, tmp_path / "ref.log", {}).run(lambda: False)
    epoch_time = _epoch_time(tmp_path / "ref.log")

    exp = tmp_path / "exp"
    exp.mkdir()
    log = tmp_path / "train.log"
    runner = Runner(argv(exp), exp, log, {SAVE_PAUSE_ENV: str(PAUSE)})
    mid_write = lambda: rng.uniform(0.0, 0.4 * PAUSE)  # noqa: E731 - a kill mid-write or before the rename
    where = f"(seed {seed}, log {log})"

    # 1: while checkpoint.pth of epoch 1 is being written: the epoch file is already complete.
    assert not runner.run(runner.on_temporary(r"checkpoint\.pth"), mid_write()), where
    assert (exp / "1epoch.pth").is_file(), where
    _assert_nothing_truncated(exp)
    # 2: at a random moment of the first epoch (start-up included).
    assert not runner.run(runner.after(rng.uniform(0.0, epoch_time))), where
    _assert_nothing_truncated(exp)
    # 3: while the epoch file of the second epoch of this run is being written.
    assert not runner.run(runner.on_temporary(r"\d+epoch\.pth", occurrence=2), mid_write()), where
    assert _assert_nothing_truncated(exp) >= 1, where
    # 4: while checkpoint.pth of the second epoch of this run is being written.
    assert not runner.run(runner.on_temporary(r"checkpoint\.pth", occurrence=2), mid_write()), where
    committed = _assert_nothing_truncated(exp)
    assert committed >= 2 and (exp / "checkpoint.prev.pth").is_file(), where
    # A checkpoint.pth cut short (as by a bad copy): resumption falls back to the previous one.
    data_bytes = (exp / "checkpoint.pth").read_bytes()
    (exp / "checkpoint.pth").write_bytes(data_bytes[: len(data_bytes) // 2])
    previous_epoch = load_checkpoint(exp / "checkpoint.prev.pth")["reporter"]["epoch"]
    # 5: at a random moment after this run's first epoch is done.
    assert not runner.run(runner.after_commit(rng.uniform(0.0, 0.8 * epoch_time))), where
    text = log.read_text()
    assert (f"checkpoint.pth: unreadable (truncated, corrupt or not a PyTorch file): PytorchStreamReader failed "
            f"reading zip archive: failed finding central directory; resuming from checkpoint.prev.pth "
            f"(end of epoch {previous_epoch}) instead") in text, where
    assert (exp / "checkpoint.pth.bad").is_file(), where
    _assert_nothing_truncated(exp)
    # 6: while the averaged model is being written, after the last epoch.
    assert not runner.run(runner.on_temporary(r"valid\.loss\.ave_\d+best\.pth"), mid_write()), where
    assert _assert_nothing_truncated(exp) == MAX_EPOCH, where
    # The last run finds all epochs done and averages.
    assert runner.run(lambda: False), where
    assert runner.kills >= 6, where

    # Every epoch was trained once: the reporter holds epochs 1..N with cumulative step counts,
    # the optimizer took one step per batch, and the losses are those of the run never killed.
    text = log.read_text()
    assert "Traceback" not in text, where
    states = load_checkpoint(exp / "checkpoint.pth")
    ref_states = load_checkpoint(ref / "checkpoint.pth")
    stats = states["reporter"]["stats"]
    assert sorted(stats) == list(range(1, MAX_EPOCH + 1)), where
    batches = stats[1]["train"]["total_count"]
    assert [stats[e]["train"]["total_count"] for e in stats] == [batches * e for e in stats], where
    steps = {int(s["step"]) for s in states["optimizers"][0]["state"].values()}
    assert steps == {batches * MAX_EPOCH}, where
    # Each epoch's losses are those of the run never killed, to float rounding (the two are not bit-identical:
    # Adam turns rounding-level gradient differences into weight differences of up to about one step, lr 0.002);
    # an epoch trained twice or skipped shifts the losses of the later epochs by about 2 %, far outside this.
    for phase in ("train", "valid"):
        torch.testing.assert_close([stats[e][phase]["loss"] for e in stats],
                                   [ref_states["reporter"]["stats"][e][phase]["loss"] for e in stats],
                                   rtol=1e-4, atol=0.0, msg=lambda m: f"{phase} losses: {m} {where}")
    assert not [p for p in os.listdir(exp) if p.endswith(".tmp")], where
    # valid.loss.ave.pth is the mean of the two best epochs' files, and it loads and decodes.
    best = sorted(stats, key=lambda e: stats[e]["valid"]["loss"])[:2]
    averaged, pair = load_checkpoint(exp / "valid.loss.ave.pth"), [load_checkpoint(exp / f"{e}epoch.pth") for e in best]
    for key, value in averaged.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (pair[0][key] + pair[1][key]) / 2)
    recognizer = EmotionRecognizer.from_model_dir(exp)
    utt = "utt001"
    dd = DataDir.load(data)
    (result,) = recognizer.decode([utt], [dd.load_audio(utt)])
    assert result.emotion in ("neutral", "happy", "angry", "sad")
