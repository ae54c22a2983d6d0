"""Test configuration shared by the whole suite."""

import os

import pytest

# Deterministic, single-threaded numerics: results do not depend on the
# machine's core count, and parallel helpers do not oversubscribe the CPU.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        yield
        return
    torch.set_num_threads(1)
    yield


TINY_TRAIN_CONFIG = """\
encoder_conf: {num_blocks: 1, hidden_size: 32, linear_size: 64, heads: 2, conv_mod_kernel_size: 3}
predictor_conf: {embed_dim: 16, hidden_dim: 32}
model_conf: {variant: fent}
joint_conf: {dim: 32}
loss_conf: {lattice_weight: 0.5, predictor_lm_weight: 0.1}
specaug_conf: {}
max_frames_per_batch: 2000
optim: adam
optim_conf: {lr: 0.002}
num_att_plot: 0
keep_nbest_models: 2
best_model_criterion: [[valid, loss, min]]
use_tensorboard: false
"""


@pytest.fixture(scope="session")
def tiny_recipe(tmp_path_factory: pytest.TempPathFactory) -> "dict":
    """A tiny data dir, char token list, CMVN stats and a 1-epoch FENT model.

    Returns a dict of paths: root, data, tokens, stats, config, model_dir.
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from datadir_factory import make_data_dir

    from ent.bin import compute_cmvn_stats, train, train_tokenizer

    root = tmp_path_factory.mktemp("tiny_recipe")
    data = make_data_dir(root, n=6, name="train")
    tokens, stats, config = root / "tok", root / "stats.npz", root / "tiny.yaml"
    train_tokenizer.main(["--text", str(data / "text"), "--token-type", "char", "--out-dir", str(tokens)])
    compute_cmvn_stats.main(["--data-dir", str(data), "--out", str(stats)])
    config.write_text(TINY_TRAIN_CONFIG)
    model_dir = root / "exp"
    train.main([
        "--config", str(config), "--train_data_dir", str(data), "--valid_data_dir", str(data),
        "--token_dir", str(tokens), "--normalize_conf", f"stats_file={stats}",
        "--output_dir", str(model_dir), "--max_epoch", "1",
    ])
    return {"root": root, "data": data, "tokens": tokens, "stats": stats, "config": config,
            "model_dir": model_dir}
