"""A tiny random streaming ENT/FENT model, its tokenizer and test audio, for decoding tests.

Import with ``sys.path.insert(0, str(<test/decoding>))`` then
``from tiny_recognizer import build_model, CharTokenizer, varied_wave``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, List

import numpy as np
import torch

from ent.decoding.greedy import StepScorer
from ent.features.cmvn import build_global_cmvn
from ent.features.fbank import Fbank
from ent.models.transducer import EmotionTransducer
from ent.nets.encoder import ConformerEncoder
from ent.nets.predictor import RNNPredictor

EMOTIONS = ["neutral", "happy", "angry", "sad"]


class CharTokenizer:
    """Twelve letters; every third one starts a word."""

    def __init__(self) -> None:
        letters = [("▁" if i % 3 == 0 else "") + chr(97 + i) for i in range(12)]
        self.token_list = ["<blank>", "<unk>"] + letters + ["<sos/eos>"]

    @property
    def vocab_size(self) -> int:
        return len(self.token_list)

    def tokens(self, ids: Iterable[int]) -> List[str]:
        return [self.token_list[int(i)] for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join("".join(self.tokens(ids)).replace("▁", " ").split())

    def is_word_start(self, token_id: int) -> bool:
        return self.token_list[int(token_id)].startswith("▁")


def varied_wave(seconds: float, seed: int = 0) -> np.ndarray:
    """Tones, noise bursts and near-silence of random lengths (so that frames differ)."""
    rng = np.random.default_rng(seed)
    parts, n = [], 0
    while n < seconds * 16000:
        k = int(rng.integers(1600, 4800))
        t = np.arange(k) / 16000.0
        kind = int(rng.integers(0, 3))
        if kind == 0:
            seg = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t)
        elif kind == 1:
            seg = rng.uniform(0.01, 0.5) * rng.standard_normal(k)
        else:
            seg = 0.001 * rng.standard_normal(k)
        parts.append(seg)
        n += k
    return np.concatenate(parts)[: int(seconds * 16000)].astype(np.float32)


WAVE = varied_wave(3.0)


def build_model(variant: str, stats: Path, seed: int, num_left_chunks: int = 2,
                head_prosody: bool = False) -> EmotionTransducer:
    """A random streaming model whose blank wins at about half of the frames (so paths vary)."""
    torch.manual_seed(seed)
    vocab = CharTokenizer().vocab_size
    frontend = Fbank(pitch=head_prosody)
    encoder = ConformerEncoder(
        frontend.output_size(), num_blocks=2, hidden_size=32, linear_size=64, heads=2, conv_mod_kernel_size=5,
        subsampling_factor=6, conv_size=8, dynamic_chunk_training=True, num_left_chunks=num_left_chunks,
    )
    model = EmotionTransducer(
        vocab, EMOTIONS, frontend, build_global_cmvn(stats), None, encoder, RNNPredictor(vocab, 16, 32),
        RNNPredictor(vocab, 16, 32) if variant == "fent" else None, variant=variant, joint_conf={"dim": 32},
        head_conf={"prosody": head_prosody},
    ).eval()
    assert abs(model.frame_shift - 0.06) < 1e-12  # 10 ms fbank frames, subsampling 6
    with torch.no_grad():
        model.emotion_joint.lin_out.weight.mul_(5.0)
        out = model.encode(torch.from_numpy(WAVE)[None], torch.tensor([len(WAVE)]))
        scorer = StepScorer(model, out)
        frames = out.enc.size(1)
        zeros = torch.zeros(frames, dtype=torch.long)
        logits = scorer.token_logits(zeros, torch.arange(frames), scorer.select(scorer.start(1), zeros))
        margin = (logits[:, 1:].max(dim=-1).values - logits[:, 0]).median()
        joint = model.joint if variant == "ent" else model.blank_joint
        joint.lin_out.bias[0] += float(margin)
    return model
