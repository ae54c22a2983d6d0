"""Tests of the NCCF pitch features and of the fbank frontend's ``pitch: true``."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ent.bin import compute_cmvn_stats, train
from ent.features.fbank import Fbank
from ent.features.pitch import _fft_size, lag_range, nccf_pitch

SR = 16000


def _voiced(f0: np.ndarray, harmonics: int = 8, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone following the F0 contour ``f0`` (Hz per sample), amplitudes 1/k^1.5."""
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k**1.5 for k in range(1, harmonics + 1)) * 0.1
    x = x + noise * np.random.default_rng(seed).standard_normal(len(f0))
    return x.astype(np.float32)


def _frame_centres(fbank: Fbank, num_frames: int) -> np.ndarray:
    return np.arange(num_frames) * fbank.window_shift + fbank.window_size // 2


@pytest.mark.parametrize("base", [75.0, 110.0, 160.0, 240.0, 330.0])
def test_tracks_a_gliding_pitch(base: float) -> None:
    """F0 within 2 % of the truth in every frame, for a contour moving by +-20 % (4 octaves of bases)."""
    t = np.arange(2 * SR) / SR
    f0 = base * np.exp(0.18 * np.sin(2 * np.pi * 1.3 * t))
    fbank = Fbank(pitch=True).eval()
    feats = fbank.extract(torch.from_numpy(_voiced(f0, noise=0.01)))
    est = np.exp(feats[:, 80].numpy())
    true = f0[_frame_centres(fbank, feats.shape[0])]
    assert np.all(np.abs(est / true - 1) < 0.02), np.abs(est / true - 1).max()
    assert feats[:, 81].min() > 0.9  # clearly voiced


def test_voicing_is_low_for_silence_and_white_noise() -> None:
    rng = np.random.default_rng(0)
    silence = np.zeros(SR, dtype=np.float32)
    faint = (1e-4 * rng.standard_normal(SR)).astype(np.float32)  # -80 dBFS, below the ballast
    noise = (0.1 * rng.standard_normal(SR)).astype(np.float32)
    fbank = Fbank(pitch=True).eval()
    for wave, limit in [(silence, 1e-6), (faint, 0.05), (noise, 0.5)]:
        nccf = fbank.extract(torch.from_numpy(wave))[:, 81]
        assert nccf.abs().max() < limit
    voiced = fbank.extract(torch.from_numpy(_voiced(np.full(SR, 150.0))))[:, 81]
    assert voiced.min() > 0.95


def test_nccf_equals_direct_sums() -> None:
    """The FFT/cumsum computation against the defining sums, lag by lag."""
    rng = np.random.default_rng(1)
    win, fmin, fmax = 400, 60.0, 450.0
    frames = torch.from_numpy(rng.standard_normal((3, win)).astype(np.float32) * 0.3)
    out = nccf_pitch(frames, SR, fmin, fmax)
    lmin, lmax = lag_range(SR, fmin, fmax, win)
    for i, frame in enumerate(frames.double().numpy()):
        x = frame - frame.mean()
        nccf = {}
        for lag in range(lmin, lmax + 1):
            a, b = x[: win - lag], x[lag:]
            nccf[lag] = float(a @ b / np.sqrt((a @ a) * (b @ b) + (win * 10 ** (-5.5)) ** 2))
        lag = int(round(SR / np.exp(float(out[i, 0]))))
        assert lmin <= lag <= lmax
        assert out[i, 1].item() == pytest.approx(nccf[lag], abs=1e-5)
        # the chosen lag maximizes the NCCF less the octave cost
        score = {k: v - 0.02 * np.log2(k / lmin) for k, v in nccf.items()}
        assert score[lag] == pytest.approx(max(score.values()), abs=1e-5)


def test_fbank_with_pitch_appends_to_the_same_frames() -> None:
    wave = torch.from_numpy(_voiced(np.full(SR + 123, 180.0), noise=0.02))
    plain, with_pitch = Fbank().eval(), Fbank(pitch=True).eval()
    a, b = plain.extract(wave), with_pitch.extract(wave)
    assert with_pitch.output_size() == 82 and b.shape == (a.shape[0], 82)
    torch.testing.assert_close(b[:, :80], a, rtol=0, atol=0)
    # padding in a batch changes nothing
    short = wave[:5000]
    batch = torch.nn.utils.rnn.pad_sequence([wave, short], batch_first=True)
    feats, lens = with_pitch(batch, torch.tensor([wave.numel(), short.numel()]))
    torch.testing.assert_close(feats[1, : lens[1]], with_pitch.extract(short), rtol=0, atol=0)
    assert torch.all(feats[1, lens[1] :] == 0)
    assert with_pitch.extract(wave[:100]).shape == (0, 82)
    assert "pitch=True" in repr(with_pitch) and "pitch" not in repr(plain)  # part of the CMVN cache key


def test_bad_pitch_range() -> None:
    with pytest.raises(ValueError, match="pitch_fmin/pitch_fmax"):
        Fbank(pitch=True, pitch_fmin=30.0)  # a 33 ms period does not fit in a 25 ms frame
    with pytest.raises(ValueError, match="pitch_fmin/pitch_fmax"):
        Fbank(pitch=True, pitch_fmin=200.0, pitch_fmax=100.0)
    Fbank(pitch=False, pitch_fmin=30.0)  # not checked when unused


def test_fft_size() -> None:
    for n in [1, 7, 667, 1000, 1025]:
        m = _fft_size(n)
        assert m >= n and m % 8 == 0 and m < 1.25 * n + 8
        rest = m
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        assert rest == 1


def test_cmvn_stats_and_training_with_pitch(tiny_recipe: dict, tmp_path: Path) -> None:
    """compute_cmvn_stats --pitch gives 82-dim statistics; a pitch model needs them and trains on them."""
    stats = tmp_path / "stats_pitch.npz"
    compute_cmvn_stats.main(["--data-dir", str(tiny_recipe["data"]), "--out", str(stats), "--pitch"])
    with np.load(stats) as saved, np.load(tiny_recipe["stats"]) as plain:
        assert saved["sum"].shape == (82,)
        np.testing.assert_allclose(saved["sum"][:80], plain["sum"], rtol=1e-6)
    args = [
        "--config", str(tiny_recipe["config"]), "--train_data_dir", str(tiny_recipe["data"]),
        "--valid_data_dir", str(tiny_recipe["data"]), "--token_dir", str(tiny_recipe["tokens"]),
        "--frontend_conf", "pitch=true", "--max_epoch", "1",
    ]
    with pytest.raises(ValueError, match="80-dim features.*gives 82.*fbank_pitch"):
        train.main(args + ["--normalize_conf", f"stats_file={tiny_recipe['stats']}",
                           "--output_dir", str(tmp_path / "bad")])
    train.main(args + ["--normalize_conf", f"stats_file={stats}", "--output_dir", str(tmp_path / "exp")])
    config = (tmp_path / "exp" / "config.yaml").read_text()
    assert "pitch: true" in config and str(stats) in config  # decoding rebuilds the same frontend
    saved = torch.load(tmp_path / "exp" / "1epoch.pth", map_location="cpu")
    assert saved["normalize.mean"].shape == (82,)
