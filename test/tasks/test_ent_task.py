"""Training through ESPnet's Trainer: checkpoints, resumption, averaging."""

from pathlib import Path

import torch

from ent.bin import train


def run_training(recipe: dict, out: Path, max_epoch: int) -> None:
    train.main([
        "--config", str(recipe["config"]), "--train_data_dir", str(recipe["data"]),
        "--valid_data_dir", str(recipe["data"]), "--token_dir", str(recipe["tokens"]),
        "--normalize_conf", f"stats_file={recipe['stats']}",
        "--output_dir", str(out), "--max_epoch", str(max_epoch), "--resume", "true",
    ])


def test_train_resume_and_average(tiny_recipe: dict, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    run_training(tiny_recipe, exp, max_epoch=1)
    first = torch.load(exp / "1epoch.pth", map_location="cpu")
    assert (exp / "checkpoint.pth").is_file() and not (exp / "2epoch.pth").exists()
    # A second call resumes from the checkpoint: epoch 1 is not trained again.
    run_training(tiny_recipe, exp, max_epoch=2)
    assert (exp / "2epoch.pth").is_file()
    again = torch.load(exp / "1epoch.pth", map_location="cpu")
    assert all(torch.equal(first[k], again[k]) for k in first)
    averaged = torch.load(exp / "valid.loss.ave.pth", map_location="cpu")
    assert set(averaged) == set(first)
    config = (exp / "config.yaml").read_text()
    assert "token_dir" in config and "variant: fent" in config
