"""Utterance prosody functionals: a numpy reference, padding invariance, normalization."""

import math

import numpy as np
import pytest
import torch

from ent.features.prosody import (
    MIN_VOICED,
    NUM_PROSODY,
    PAUSE_DB,
    PROSODY_FUNCTIONALS,
    VOICED_NCCF,
    Z_CLIP,
    normalize_prosody,
    prosody_functionals,
)

N_MELS = 6


def reference(feats: np.ndarray) -> np.ndarray:
    """The functionals of one utterance (T, N_MELS + 2), written out with numpy."""
    energy = feats[:, :N_MELS].mean(axis=1)
    log_f0, nccf = feats[:, N_MELS], feats[:, N_MELS + 1]
    voiced = nccf > VOICED_NCCF
    pitch = log_f0[voiced] if voiced.sum() >= MIN_VOICED else log_f0
    p10, p50, p90 = np.percentile(pitch, [10, 50, 90])
    loud = np.percentile(energy, 90)
    pause = np.mean(energy < loud - PAUSE_DB * math.log(10) / 10)
    onsets = np.sum(voiced[1:] & ~voiced[:-1])
    values = {
        "f0_mean": pitch.mean(), "f0_std": pitch.std(), "f0_p10": p10, "f0_p50": p50, "f0_p90": p90,
        "f0_range": p90 - p10, "energy_mean": energy.mean(), "energy_std": energy.std(),
        "voiced_fraction": voiced.mean(), "nccf_mean": nccf.mean(), "nccf_std": nccf.std(),
        "pause_fraction": pause, "voicing_onset_rate": 100 * onsets / len(feats),
    }
    assert set(values) == set(PROSODY_FUNCTIONALS)
    return np.array([values[name] for name in PROSODY_FUNCTIONALS])


def utterance(length: int, seed: int, voiced_share: float = 0.6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(length, N_MELS + 2, generator=g)
    feats[:, :N_MELS] += 5 * (torch.rand(length, 1, generator=g) > 0.3)  # loud and quiet frames
    feats[:, N_MELS] = 5.0 + 0.2 * torch.randn(length, generator=g)  # log F0 around 150 Hz
    feats[:, N_MELS + 1] = torch.where(
        torch.rand(length, generator=g) < voiced_share, 0.7 + 0.3 * torch.rand(length, generator=g),
        0.5 * torch.rand(length, generator=g),
    )
    return feats


def test_functionals_equal_the_numpy_reference_and_ignore_padding() -> None:
    lengths = [50, 17, 33, 2]
    utts = [utterance(n, seed, share) for n, seed, share in zip(lengths, range(4), (0.6, 0.6, 0.02, 0.6))]
    batch = torch.full((len(utts), max(lengths), N_MELS + 2), 1e6)  # padding that would show
    for b, u in enumerate(utts):
        batch[b, : len(u)] = u
    out = prosody_functionals(batch, torch.tensor(lengths), N_MELS)
    assert out.shape == (4, NUM_PROSODY) and out.dtype == torch.float32
    for b, u in enumerate(utts):
        np.testing.assert_allclose(out[b].numpy(), reference(u.double().numpy()), rtol=1e-5, atol=1e-5)
        alone = prosody_functionals(u[None], torch.tensor([len(u)]), N_MELS)
        torch.testing.assert_close(out[b], alone[0])
    # utterance 2 has (almost) no voiced frame: its pitch functionals read all frames
    assert float(out[2, PROSODY_FUNCTIONALS.index("voiced_fraction")]) * lengths[2] < MIN_VOICED


def test_functionals_move_with_what_they_describe() -> None:
    base = utterance(80, 7)
    higher = base.clone()
    higher[:, N_MELS] += math.log(2)  # an octave up
    wider = base.clone()
    wider[:, N_MELS] = 5.0 + 2 * (base[:, N_MELS] - 5.0)
    louder = base.clone()
    louder[:, :N_MELS] += 1.0
    lens = torch.tensor([80] * 4)
    f = prosody_functionals(torch.stack([base, higher, wider, louder]), lens, N_MELS)
    col = {name: i for i, name in enumerate(PROSODY_FUNCTIONALS)}
    assert f[1, col["f0_mean"]] == pytest.approx(float(f[0, col["f0_mean"]]) + math.log(2), abs=1e-5)
    assert f[1, col["f0_std"]] == pytest.approx(float(f[0, col["f0_std"]]), abs=1e-5)
    assert f[2, col["f0_range"]] == pytest.approx(2 * float(f[0, col["f0_range"]]), rel=1e-5)
    assert f[3, col["energy_mean"]] == pytest.approx(float(f[0, col["energy_mean"]]) + 1.0, abs=1e-5)
    assert f[3, col["pause_fraction"]] == f[0, col["pause_fraction"]]  # relative to the loud frames


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="n_mels \\+ 2"):
        prosody_functionals(torch.zeros(1, 5, N_MELS), torch.tensor([5]), N_MELS)
    with pytest.raises(ValueError, match="feats_lens"):
        prosody_functionals(torch.zeros(1, 5, N_MELS + 2), torch.tensor([0]), N_MELS)
    assert prosody_functionals(torch.zeros(0, 5, N_MELS + 2), torch.zeros(0, dtype=torch.long), N_MELS).shape == (0, NUM_PROSODY)


def test_normalization_floors_the_spread_and_clips() -> None:
    funcs = torch.tensor([[1.0, 2.0, 3.0], [1.0, 100.0, -3.0]])
    mean = torch.tensor([1.0, 2.0, 0.0])
    std = torch.tensor([0.0, 1.0, 1.0])  # a speaker with one utterance has no spread
    z = normalize_prosody(funcs, mean, std)
    assert z.tolist() == [[0.0, 0.0, 3.0], [0.0, Z_CLIP, -3.0]]
