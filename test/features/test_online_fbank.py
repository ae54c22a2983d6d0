"""Tests of the online fbank: same frames as the offline frontend, however the audio is cut."""

from typing import List

import numpy as np
import pytest
import torch

from ent.features.fbank import Fbank
from ent.features.online_fbank import OnlineFbank


def _wave(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000.0
    return (0.2 * np.sin(2 * np.pi * 300 * t * (1 + t)) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def _cuts(n: int, seed: int) -> List[int]:
    """Random piece sizes summing to n, with empty and one-sample pieces among them."""
    rng = np.random.default_rng(seed)
    sizes: List[int] = [0, 1]
    while sum(sizes) < n:
        sizes.append(int(rng.choice([0, 1, 7, 159, 160, 161, 399, 400, 401, 1234])))
    sizes[-1] -= sum(sizes) - n
    return sizes


@pytest.mark.parametrize("seed,pitch", [(0, False), (1, False), (2, False), (3, True)])
def test_online_equals_offline_for_any_cut(seed: int, pitch: bool) -> None:
    fbank = Fbank(pitch=pitch).eval()
    wave = _wave(16000 + 1234, seed)
    offline = fbank.extract(torch.from_numpy(wave))
    online = OnlineFbank(fbank)
    frames, pos = [], 0
    for size in _cuts(len(wave), seed):
        piece = wave[pos : pos + size]
        # numpy and torch pieces are both accepted
        frames.append(online.accept(piece if size % 2 else torch.from_numpy(piece)))
        pos += size
    streamed = torch.cat(frames)
    assert streamed.shape == offline.shape == (fbank.num_frames(len(wave)), 82 if pitch else 80)
    torch.testing.assert_close(streamed, offline, rtol=1e-5, atol=1e-4)
    assert online.num_frames == offline.shape[0] and online.num_samples == len(wave)


def test_frames_come_out_as_soon_as_complete_and_little_is_kept() -> None:
    fbank = Fbank().eval()
    online = OnlineFbank(fbank)
    wave = _wave(8000)
    total = 0
    for n in range(0, len(wave), 97):
        piece = wave[n : n + 97]
        total += online.accept(piece).shape[0]
        received = min(n + 97, len(wave))
        assert total == fbank.num_frames(received)
        # kept: the samples from the start of the first frame not computed yet
        assert online.pending_samples == received - total * fbank.window_shift
        assert online.pending_samples < fbank.window_size


def test_other_framing_and_short_audio() -> None:
    fbank = Fbank(n_mels=40, frame_length_ms=20.0, frame_shift_ms=12.5).eval()
    online = OnlineFbank(fbank)
    wave = _wave(5000, seed=3)
    assert online.accept(wave[:319]).shape == (0, 40)  # shorter than one 320-sample window
    rest = online.accept(wave[319:])
    torch.testing.assert_close(rest, fbank.extract(torch.from_numpy(wave)), rtol=1e-5, atol=1e-4)


def test_bad_input_raises() -> None:
    online = OnlineFbank(Fbank().eval())
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        online.accept(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="floats in"):
        online.accept(np.zeros(100, dtype=np.int16))
    assert online.num_samples == 0
