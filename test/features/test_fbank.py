"""Tests of the Kaldi fbank frontend."""

import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from ent.features.fbank import Fbank


def _batch(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    wave = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        wave[i, :n] = 0.1 * torch.randn(n, generator=g)
    return wave, torch.tensor(lengths)


def test_equals_kaldi_fbank_per_utterance():
    fbank = Fbank().eval()
    wave, lens = _batch([16000, 12345, 4000])
    feats, feats_lens = fbank(wave, lens)
    assert feats.shape == (3, 98, 80)
    for i, n in enumerate(lens.tolist()):
        ref = kaldi.fbank(wave[i : i + 1, :n] * 32768, num_mel_bins=80, frame_length=25.0,
                          frame_shift=10.0, dither=0.0, sample_frequency=16000.0)
        assert feats_lens[i] == ref.shape[0]
        torch.testing.assert_close(feats[i, : ref.shape[0]], ref)
        assert torch.all(feats[i, ref.shape[0]:] == 0)


def test_padding_does_not_change_features():
    fbank = Fbank().eval()
    wave, lens = _batch([8000, 3000])
    alone, alone_lens = fbank(wave[1:, :3000], lens[1:])
    padded = torch.cat([wave, torch.randn(2, 5000)], dim=1)  # garbage padding
    padded[1, 3000:] = 123.0
    feats, feats_lens = fbank(padded, lens)
    assert feats_lens[1] == alone_lens[0]
    assert torch.equal(feats[1, : alone_lens[0]], alone[0])


@pytest.mark.parametrize("n", [0, 1, 399, 400, 401, 559, 560, 16000, 16001, 12345])
def test_num_frames_formula(n):
    fbank = Fbank()
    expected = 0 if n < 400 else 1 + (n - 400) // 160
    assert fbank.num_frames(n) == expected
    assert int(fbank.num_frames(torch.tensor([n]))[0]) == expected
    if n > 0:
        _, lens = fbank(torch.zeros(1, n) + 0.01, torch.tensor([n]))
        assert int(lens[0]) == expected


def test_dither_only_in_training():
    fbank = Fbank(dither=1.0)
    wave, lens = _batch([4000])
    fbank.eval()
    a, _ = fbank(wave, lens)
    b, _ = fbank(wave, lens)
    assert torch.equal(a, b)
    fbank.train()
    c, _ = fbank(wave, lens)
    assert not torch.equal(a, c)


def test_frontend_interface_and_bad_shapes():
    fbank = Fbank(n_mels=40)
    assert fbank.output_size() == 40
    with pytest.raises(ValueError):
        fbank(torch.zeros(2, 100), torch.tensor([100]))
    with pytest.raises(ValueError):
        fbank(torch.zeros(1, 100), torch.tensor([101]))
