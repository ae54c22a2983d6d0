"""Weights-only loading and atomic saving of checkpoint files (ent.utils.checkpoint_io)."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ent.utils.checkpoint_io import SAVE_PAUSE_ENV, load_checkpoint, save_checkpoint
from ent.utils.errors import DataError


class _RunsCode:
    """An object whose unpickling creates a marker file (what a crafted checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def _crafted(tmp_path: Path) -> "tuple[Path, Path]":
    marker = tmp_path / "code_ran"
    path = tmp_path / "model.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2), "payload": _RunsCode(marker)}, path)
    assert not marker.exists()
    return path, marker


def test_crafted_pickle_is_refused_and_its_code_does_not_run(tmp_path: Path) -> None:
    path, marker = _crafted(tmp_path)
    with pytest.raises(DataError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused: it holds the Python object ") and "\n" not in message
    assert "os.makedirs" in message  # names what it would have called
    assert not marker.exists()


def test_force_no_weights_only_env_var_does_not_turn_the_check_off(tmp_path: Path, monkeypatch) -> None:
    path, marker = _crafted(tmp_path)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(DataError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    # The threat is real: a torch.load that leaves weights_only unset obeys the variable and runs the code.
    with pytest.warns(UserWarning, match="TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"):
        torch.load(path)
    assert marker.exists()


@pytest.mark.parametrize("cut", [0, 100, -30])
def test_truncated_or_empty_file_is_a_one_line_error(tmp_path: Path, cut: int) -> None:
    whole = tmp_path / "whole.pth"
    torch.save({"w": torch.randn(64, 64)}, whole)
    data = whole.read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    with pytest.raises(DataError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: unreadable") and "\n" not in message


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.pth: not found"):
        load_checkpoint(tmp_path / "nope.pth")


def test_trainer_checkpoint_types_load_weights_only(tmp_path: Path) -> None:
    # What ESPnet's reporter keeps per epoch: floats, NumPy scalars, ints, timedeltas.
    stats = {1: {"train": {"loss": 1.5, "grad_norm": np.float64(2.5), "n": np.int64(3), "lr": np.float32(0.5),
                           "time": datetime.timedelta(seconds=7, microseconds=5), "total_count": 4}}}
    states = {"model": {"w": torch.arange(3.0)}, "reporter": {"stats": stats, "epoch": 1},
              "optimizers": [torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))]).state_dict()],
              "schedulers": [None], "scaler": None}
    save_checkpoint(states, tmp_path / "checkpoint.pth")
    loaded = load_checkpoint(tmp_path / "checkpoint.pth")
    assert loaded["reporter"] == states["reporter"]
    assert type(loaded["reporter"]["stats"][1]["train"]["grad_norm"]) is np.float64
    assert torch.equal(loaded["model"]["w"], states["model"]["w"])


def test_save_is_atomic(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "1epoch.pth"
    save_checkpoint({"w": torch.ones(3)}, path)
    mode = path.stat().st_mode
    seen = []

    def look() -> None:  # the new version is complete in a temporary file; the old one is still in place
        seen.append((sorted(p.name for p in tmp_path.iterdir()), load_checkpoint(path)["w"].sum().item()))

    save_checkpoint({"w": torch.zeros(3)}, path, before_replace=look)
    ((names, old_sum),) = seen
    assert old_sum == 3.0 and len(names) == 2 and names[0].startswith(".1epoch.pth.") and names[0].endswith(".tmp")
    assert load_checkpoint(path)["w"].sum().item() == 0.0
    assert path.stat().st_mode == mode and os.listdir(tmp_path) == ["1epoch.pth"]
    # A failure while writing leaves the previous version and no temporary file.
    with pytest.raises(Exception):
        save_checkpoint({"w": torch.full((3,), 5.0), "bad": lambda: None}, path)
    assert load_checkpoint(path)["w"].sum().item() == 0.0 and os.listdir(tmp_path) == ["1epoch.pth"]
    # The test-only pause sits between the complete temporary file and the rename.
    monkeypatch.setenv(SAVE_PAUSE_ENV, "0.01")
    save_checkpoint({"w": torch.full((3,), 2.0)}, path)
    assert load_checkpoint(path)["w"].sum().item() == 6.0
