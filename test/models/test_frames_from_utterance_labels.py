"""Frame emotions from utterance labels only: mixing + the ranked lattice loss find the emotional part.

A tiny corpus whose emotion is a property of every frame (neutral utterances
are low tones, happy ones high tones) carries utterance labels only. It is
mixed (:mod:`ent.data.mixing`), a tiny ENT is trained on the mixed data dir
through the toolkit's dataset, and a held-out neutral + happy + neutral
utterance, joined from unseen tones, is decoded: the frames inside its happy
part must come out happy and those of its neutral parts neutral.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import soundfile as sf
import torch

from ent.bin import train_tokenizer
from ent.data.dataset import EmotionASRDataset, collate
from ent.data.mixing import MixOptions, join_parts, mix_data_dir
from ent.decoding.greedy import greedy_search
from ent.features.fbank import Fbank
from ent.models.transducer import EmotionTransducer
from ent.nets.encoder import ConformerEncoder
from ent.nets.predictor import RNNPredictor
from ent.text.tokenizer import Tokenizer

SR = 16000
EMOTIONS = ("neutral", "happy", "angry", "sad")
WORDS = ("ab", "ba", "abba", "baab", "aab", "bba")


def tone(freq: float, seconds: float, seed: int) -> np.ndarray:
    """A tone with a little vibrato and noise, faded in and out (float32)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * freq * t + 0.3 * np.sin(2 * np.pi * rng.uniform(3, 6) * t)
    wave = 0.3 * np.sin(phase) * np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.03)
    return (wave + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def write_corpus(root: Path) -> Path:
    """Two speakers, each 4 neutral (low) and 4 happy (high) utterances; utterance labels only."""
    d = root / "train"
    (root / "wav").mkdir(parents=True)
    d.mkdir()
    tables: Dict[str, List[str]] = {"wav.scp": [], "text": [], "utt2spk": [], "utt2emo": []}
    for s, spk in enumerate(("spka", "spkb")):
        for i in range(8):
            emo = "neutral" if i % 2 == 0 else "happy"
            freq = (220 + 30 * s + 10 * i) if emo == "neutral" else (1100 + 60 * s + 20 * i)
            utt = f"{spk}-{i:02d}"
            path = root / "wav" / f"{utt}.wav"
            sf.write(str(path), tone(freq, 0.5 + 0.05 * i, seed=10 * s + i), SR, subtype="PCM_16")
            tables["wav.scp"].append(f"{utt} {path}")
            tables["text"].append(f"{utt} {WORDS[i % len(WORDS)]}")
            tables["utt2spk"].append(f"{utt} {spk}")
            tables["utt2emo"].append(f"{utt} {emo}")
    for name, lines in tables.items():
        (d / name).write_text("".join(f"{line}\n" for line in sorted(lines)), encoding="utf-8")
    return d


def train_and_decode_held_out(tmp_path: Path, lattice_mode: str) -> Dict[str, float]:
    """Share of the held-out utterance's frames labelled right, per part kind."""
    src = write_corpus(tmp_path / "corpus")
    mixed = tmp_path / "corpus" / "train_mix"
    report = mix_data_dir(src, mixed, options=MixOptions(mix_share=1.0, seed=3))
    assert report.mixed == 16
    train_tokenizer.main(["--text", str(src / "text"), "--token-type", "char", "--out-dir", str(tmp_path / "tok")])
    tokenizer = Tokenizer.from_dir(tmp_path / "tok")
    dataset = EmotionASRDataset(mixed, tokenizer, EMOTIONS)
    batch = collate([dataset[i] for i in range(len(dataset))])
    assert int((batch["emo_intervals_lengths"] > 0).sum()) == 16  # the mixes; the originals have none

    torch.manual_seed(0)
    encoder = ConformerEncoder(
        20, num_blocks=1, hidden_size=32, linear_size=64, heads=2, conv_mod_kernel_size=3,
        input_layer="stack", dropout_rate=0.0, att_dropout_rate=0.0, pos_wise_dropout_rate=0.0,
    )
    vocab = len(tokenizer.token_list)
    model = EmotionTransducer(
        vocab, EMOTIONS, Fbank(n_mels=20), None, None, encoder, RNNPredictor(vocab, embed_dim=16, hidden_dim=32),
        None, joint_conf={"dim": 32}, loss_conf={"lattice_mode": lattice_mode, "lattice_topk": 1.0, "lattice_weight": 1.0},
    )
    inputs = {k: batch[k] for k in ("speech", "speech_lengths", "text", "text_lengths", "emotion", "emo_intervals")}
    opt = torch.optim.Adam(model.parameters(), lr=0.005)
    model.train()
    for _ in range(150):
        loss, _, _ = model(**inputs)
        opt.zero_grad()
        loss.backward()
        opt.step()

    # Held out: unseen tones of speaker a, neutral + happy + neutral.
    parts = [tone(250, 0.6, 101), tone(1180, 0.7, 102), tone(235, 0.6, 103)]
    joined, bounds, _, _ = join_parts(parts)
    model.eval()
    with torch.no_grad():
        speech = torch.from_numpy(joined)[None]
        enc = model.encode(speech, torch.tensor([speech.shape[1]]))
        frames = greedy_search(model, enc)[0].frame_emotions
    shift = model.frame_shift
    right: Dict[str, List[bool]] = {"neutral": [], "happy": []}
    for (a, b), kind in zip(bounds, ("neutral", "happy", "neutral")):
        lo, hi = a / SR + 0.1, b / SR - 0.1  # leave the boundaries out
        for t, emo in enumerate(frames):
            if lo <= (t + 0.5) * shift < hi:
                right[kind].append(EMOTIONS[emo] == kind)
    return {kind: float(np.mean(hits)) for kind, hits in right.items()}


@pytest.mark.slow
def test_ranked_lattice_loss_and_mixing_find_the_emotional_part(tmp_path: Path) -> None:
    right = train_and_decode_held_out(tmp_path, "topk")
    assert right["happy"] >= 0.8 and right["neutral"] >= 0.8, right

