"""Training through ESPnet's Trainer: checkpoints, resumption, averaging."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datadir_factory import make_data_dir  # noqa: E402

from ent.bin import compute_cmvn_stats, train, train_tokenizer  # noqa: E402

TINY = """\
encoder_conf: {num_blocks: 1, hidden_size: 32, linear_size: 64, heads: 2, conv_mod_kernel_size: 3}
predictor_conf: {embed_dim: 16, hidden_dim: 32}
model_conf: {variant: fent, joint_dim: 32, lattice_weight: 0.5, lm_weight: 0.1}
specaug_conf: {}
max_frames_per_batch: 2000
optim: adam
optim_conf: {lr: 0.002}
num_att_plot: 0
keep_nbest_models: 2
best_model_criterion: [[valid, loss, min]]
use_tensorboard: false
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("task")
    data = make_data_dir(root / "train", n=6)
    train_tokenizer.main(["--text", str(data / "text"), "--token-type", "char", "--out-dir", str(root / "tok")])
    compute_cmvn_stats.main(["--data-dir", str(data), "--out", str(root / "stats.npz")])
    (root / "tiny.yaml").write_text(TINY)
    return root


def run_training(root: Path, max_epoch: int) -> None:
    data = str(next((root / "train").glob("*/wav.scp")).parent)
    train.main([
        "--config", str(root / "tiny.yaml"), "--train_data_dir", data, "--valid_data_dir", data,
        "--token_dir", str(root / "tok"), "--normalize_conf", f"stats_file={root / 'stats.npz'}",
        "--output_dir", str(root / "exp"), "--max_epoch", str(max_epoch), "--resume", "true",
    ])


def test_train_resume_and_average(prepared: Path) -> None:
    exp = prepared / "exp"
    run_training(prepared, max_epoch=1)
    first = torch.load(exp / "1epoch.pth", map_location="cpu")
    assert (exp / "checkpoint.pth").is_file() and not (exp / "2epoch.pth").exists()
    # A second call resumes from the checkpoint: epoch 1 is not trained again.
    run_training(prepared, max_epoch=2)
    assert (exp / "2epoch.pth").is_file()
    again = torch.load(exp / "1epoch.pth", map_location="cpu")
    assert all(torch.equal(first[k], again[k]) for k in first)
    averaged = torch.load(exp / "valid.loss.ave.pth", map_location="cpu")
    assert set(averaged) == set(first)
    config = (exp / "config.yaml").read_text()
    assert "token_dir" in config and "variant: fent" in config
