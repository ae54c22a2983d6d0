"""A tiny trained-looking ENT experiment directory (config.yaml + checkpoint) and test audio for the SER baselines.

Import with ``sys.path.insert(0, str(<test/models/ser>))`` then
``from tiny_ent_experiment import make_ent_experiment, waves``.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
import torch
import yaml

from ent.features.fbank import Fbank
from ent.models.transducer import EmotionTransducer
from ent.nets.encoder import ConformerEncoder
from ent.nets.predictor import RNNPredictor

EMOTIONS = ["neutral", "happy", "angry", "sad"]
VOCAB = 10
ENCODER_CONF = {
    "num_blocks": 3, "hidden_size": 32, "linear_size": 64, "heads": 2, "conv_mod_kernel_size": 5,
    "input_layer": "stack", "subsampling_factor": 4,
}
FRONTEND_CONF = {"n_mels": 40, "pitch": False}


def make_ent_experiment(root: Path, seed: int = 0, speaker_cmvn: bool = False) -> Path:
    """Write ``root/exp/ent_tiny/{config.yaml, valid.loss.ave.pth}`` and global CMVN stats; return the exp dir.

    The stats path in the config is relative to ``root`` (the "recipe dir"),
    as a recipe writes it.
    """
    torch.manual_seed(seed)
    exp = root / "exp" / "ent_tiny"
    exp.mkdir(parents=True, exist_ok=True)
    stats_dir = root / "exp" / "stats"
    stats_dir.mkdir(parents=True, exist_ok=True)
    frontend = Fbank(**FRONTEND_CONF)
    feats = [frontend.extract(torch.from_numpy(w)) for w in waves(6, seed=seed + 100)]
    allf = torch.cat(feats).double().numpy()
    np.savez(stats_dir / "feats_stats.npz", count=np.array(len(allf)), sum=allf.sum(0),
             sum_square=(allf ** 2).sum(0))
    encoder = ConformerEncoder(frontend.output_size(), **ENCODER_CONF)
    model = EmotionTransducer(VOCAB, EMOTIONS, frontend, None, None, encoder, RNNPredictor(VOCAB, 8, 16),
                              joint_conf={"dim": 16}, loss_conf={"ctc_weight": 0.3})
    state = model.state_dict()
    torch.save(state, exp / "valid.loss.ave.pth")
    config = {
        "frontend": "fbank", "frontend_conf": FRONTEND_CONF, "encoder": "conformer", "encoder_conf": ENCODER_CONF,
        "normalize_conf": {"stats_file": "exp/stats/feats_stats.npz"}, "speaker_cmvn": speaker_cmvn,
        "model_conf": {"variant": "ent"}, "joint_conf": {"dim": 16}, "loss_conf": {"ctc_weight": 0.3},
    }
    with open(exp / "config.yaml", "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh)
    return exp


def waves(n: int, seed: int = 0, min_s: float = 0.6, max_s: float = 1.4) -> List[np.ndarray]:
    """``n`` waveforms of random lengths: chirps with noise, each different."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        num = int(rng.uniform(min_s, max_s) * 16000)
        t = np.arange(num) / 16000
        f0, f1 = rng.uniform(100, 600), rng.uniform(600, 3000)
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * t[-1]))
        amp = 0.3 * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 6) * t))
        out.append((amp * np.sin(phase) + 0.01 * rng.standard_normal(num)).astype(np.float32))
    return out


def pad(ws: List[np.ndarray]) -> "tuple[torch.Tensor, torch.Tensor]":
    """(B, N) zero-padded batch and (B,) lengths."""
    lens = torch.tensor([len(w) for w in ws])
    out = torch.zeros(len(ws), int(lens.max()))
    for i, w in enumerate(ws):
        out[i, : len(w)] = torch.from_numpy(w)
    return out, lens
