"""ENTTrainer's file handling: ordered atomic checkpoints, resume fallback, tolerant averaging, weights-only loads.

The end-to-end fault injection (training killed with SIGKILL and resumed) is
test_kill_resume.py.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from espnet2.train.reporter import Reporter

import ent.tasks.trainer as trainer_module
from ent.tasks.trainer import CheckpointWriter, average_available_models, load_resume_state
from ent.utils.checkpoint_io import load_checkpoint
from ent.utils.errors import DataError


def _states(epoch: int, value: float) -> Dict:
    """A checkpoint with ESPnet's layout whose model is one tensor filled with ``value``."""
    stats = {e: {"valid": {"loss": 10.0 - e}} for e in range(1, epoch + 1)}
    return {"model": {"w": torch.full((4,), value)}, "reporter": {"stats": stats, "epoch": epoch},
            "optimizers": [], "schedulers": [], "scaler": None}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_writer_saves_the_epoch_file_first_and_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    order: List[str] = []
    real = trainer_module.save_checkpoint

    def recording(obj, path, before_replace=None):
        order.append(Path(path).name)
        real(obj, path, before_replace)

    monkeypatch.setattr(trainer_module, "save_checkpoint", recording)
    torch.save(_states(7, 7.0), tmp_path / "checkpoint.pth")  # from another run: not kept (not resumed from)
    writer = CheckpointWriter(tmp_path, trust_existing=False)
    first = _states(1, 1.0)
    writer.save(first, tmp_path / "checkpoint.pth")  # ESPnet's order: checkpoint.pth, then {N}epoch.pth
    writer.save(first["model"], tmp_path / "1epoch.pth")
    assert order == ["1epoch.pth", "checkpoint.pth"]  # the epoch file first; ESPnet's second save is the same
    assert not (tmp_path / "checkpoint.prev.pth").exists()
    second = _states(2, 2.0)
    writer.save(second, tmp_path / "checkpoint.pth")
    writer.save(second["model"], tmp_path / "2epoch.pth")
    writer.save({"w": torch.zeros(4)}, tmp_path / "valid.loss.ave_2best.pth")
    assert order[2:] == ["2epoch.pth", "checkpoint.pth", "valid.loss.ave_2best.pth"]
    assert load_checkpoint(tmp_path / "checkpoint.pth")["reporter"]["epoch"] == 2
    assert load_checkpoint(tmp_path / "checkpoint.prev.pth")["reporter"]["epoch"] == 1
    assert torch.equal(load_checkpoint(tmp_path / "1epoch.pth")["w"], torch.full((4,), 1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "1epoch.pth", "2epoch.pth", "checkpoint.prev.pth", "checkpoint.pth", "valid.loss.ave_2best.pth"]


def test_unreadable_checkpoint_resumes_from_the_previous_one(tmp_path: Path, caplog) -> None:
    torch.save(_states(1, 1.0), tmp_path / "checkpoint.prev.pth")
    torch.save(_states(2, 2.0), tmp_path / "checkpoint.pth")
    _truncate(tmp_path / "checkpoint.pth")
    with caplog.at_level(logging.WARNING):
        states, used = load_resume_state(tmp_path / "checkpoint.pth")
    assert used == tmp_path / "checkpoint.prev.pth" and states["reporter"]["epoch"] == 1
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"{tmp_path / 'checkpoint.pth'}: unreadable") and "\n" not in warning
    assert "resuming from checkpoint.prev.pth (end of epoch 1)" in warning
    # The unreadable file is kept aside; checkpoint.pth is the good state again.
    assert (tmp_path / "checkpoint.pth.bad").is_file()
    assert load_checkpoint(tmp_path / "checkpoint.pth")["reporter"]["epoch"] == 1


def test_nothing_to_resume_from_is_a_one_line_error(tmp_path: Path) -> None:
    torch.save(_states(2, 2.0), tmp_path / "checkpoint.pth")
    _truncate(tmp_path / "checkpoint.pth")
    with pytest.raises(DataError) as info:
        load_resume_state(tmp_path / "checkpoint.pth")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'checkpoint.pth'}: cannot resume: unreadable") and "\n" not in message
    assert "no checkpoint.prev.pth" in message
    torch.save({"model": {}}, tmp_path / "checkpoint.prev.pth")  # loads, but is no trainer checkpoint
    with pytest.raises(DataError, match=r"cannot resume: unreadable .*; checkpoint.prev.pth: not a trainer"):
        load_resume_state(tmp_path / "checkpoint.pth")


def _reporter(losses: Dict[int, float]) -> Reporter:
    reporter = Reporter()
    reporter.load_state_dict({"stats": {e: {"valid": {"loss": v}} for e, v in losses.items()},
                              "epoch": max(losses)})
    return reporter


def test_averaging_uses_the_best_epoch_files_that_are_there(tmp_path: Path, caplog) -> None:
    losses = {1: 4.0, 2: 3.0, 3: 2.0, 4: 1.0, 5: 5.0}  # best first: 4, 3, 2, 1, 5
    for epoch in losses:
        torch.save({"w": torch.full((3,), float(epoch)), "n": torch.tensor(1)}, tmp_path / f"{epoch}epoch.pth")
    (tmp_path / "4epoch.pth").unlink()
    _truncate(tmp_path / "3epoch.pth")
    with caplog.at_level(logging.WARNING):
        average_available_models(tmp_path, _reporter(losses), [("valid", "loss", "min")], nbest=[2])
    averaged = load_checkpoint(tmp_path / "valid.loss.ave.pth")
    assert torch.equal(averaged["w"], torch.full((3,), 1.5))  # epochs 2 and 1 stand in for 4 and 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("4epoch.pth: not found; left out" in w for w in warnings)
    assert any("3epoch.pth: unreadable" in w for w in warnings)
    assert os.readlink(tmp_path / "valid.loss.ave.pth") == "valid.loss.ave_2best.pth"
    # Fewer files than n: the average is over what is there.
    for epoch in (1, 5):
        (tmp_path / f"{epoch}epoch.pth").unlink()
    average_available_models(tmp_path, _reporter(losses), [("valid", "loss", "min")], nbest=[2])
    assert torch.equal(load_checkpoint(tmp_path / "valid.loss.ave.pth")["w"], torch.full((3,), 2.0))
    (tmp_path / "2epoch.pth").unlink()
    with pytest.raises(DataError, match="nothing to average"):
        average_available_models(tmp_path, _reporter(losses), [("valid", "loss", "min")], nbest=[2])


def _runs_code(marker: Path):
    class RunsCode:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    return RunsCode()


def test_crafted_checkpoint_is_refused_by_resume_averaging_and_init_param(
        tiny_recipe: dict, tmp_path: Path, caplog) -> None:
    from ent.bin import train

    marker = tmp_path / "code_ran"
    crafted = dict(_states(1, 1.0), payload=_runs_code(marker))
    exp = tmp_path / "exp"
    exp.mkdir()
    torch.save(crafted, exp / "checkpoint.pth")
    with pytest.raises(DataError, match=r"checkpoint.pth: cannot resume: refused: it holds the Python object"):
        load_resume_state(exp / "checkpoint.pth")
    torch.save(crafted["model"] | {"payload": crafted["payload"]}, exp / "1epoch.pth")
    with pytest.raises(DataError, match="nothing to average"):
        average_available_models(exp, _reporter({1: 1.0}), [("valid", "loss", "min")], nbest=[1])
    init = tmp_path / "pretrained.pth"
    shutil.copy(exp / "1epoch.pth", init)
    caplog.clear()
    with pytest.raises(SystemExit) as exit_info:
        train.main([
            "--config", str(tiny_recipe["config"]), "--train_data_dir", str(tiny_recipe["data"]),
            "--valid_data_dir", str(tiny_recipe["data"]), "--token_dir", str(tiny_recipe["tokens"]),
            "--normalize_conf", f"stats_file={tiny_recipe['stats']}", "--output_dir", str(tmp_path / "exp2"),
            "--max_epoch", "1", "--init_param", str(init),
        ])
    assert exit_info.value.code == 1
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert error.startswith(f"{init}: refused: it holds the Python object") and "\n" not in error
    assert not marker.exists()


def test_crafted_or_truncated_model_file_is_refused_when_decoding_and_packing(tiny_recipe: dict, tmp_path: Path):
    from ent.bin.pack_model import pack_model
    from ent.decoding.recognizer import EmotionRecognizer

    marker = tmp_path / "code_ran"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copy(tiny_recipe["model_dir"] / "config.yaml", model_dir / "config.yaml")
    state = load_checkpoint(tiny_recipe["model_dir"] / "1epoch.pth")
    torch.save(dict(state, payload=_runs_code(marker)), model_dir / "crafted.pth")
    with pytest.raises(DataError, match=r"crafted.pth: refused: it holds the Python object"):
        EmotionRecognizer.from_model_dir(model_dir, "crafted.pth")
    with pytest.raises(DataError, match=r"crafted.pth: refused"):
        pack_model(model_dir, "crafted.pth", tmp_path / "packed")
    shutil.copy(tiny_recipe["model_dir"] / "1epoch.pth", model_dir / "cut.pth")
    _truncate(model_dir / "cut.pth")
    with pytest.raises(DataError, match=r"cut.pth: unreadable \(truncated"):
        EmotionRecognizer.from_model_dir(model_dir, "cut.pth")
    assert not marker.exists() and not (tmp_path / "packed").exists()


def test_killed_between_the_two_renames_resumes_from_the_previous_checkpoint(tmp_path: Path, caplog) -> None:
    from ent.tasks.trainer import restore_missing_checkpoint

    # What a kill leaves after checkpoint.pth became checkpoint.prev.pth and before the new one took its place.
    torch.save(_states(1, 1.0), tmp_path / "checkpoint.prev.pth")
    (tmp_path / ".checkpoint.pth.abc123.tmp").write_bytes(b"complete or not")
    with caplog.at_level(logging.WARNING):
        restore_missing_checkpoint(tmp_path)
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'checkpoint.pth'}: missing; resuming from checkpoint.prev.pth"]
    assert load_checkpoint(tmp_path / "checkpoint.pth")["reporter"]["epoch"] == 1
    assert os.stat(tmp_path / "checkpoint.pth").st_ino != os.stat(tmp_path / "checkpoint.prev.pth").st_ino
    trainer_module.remove_temporaries(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.prev.pth", "checkpoint.pth"]
