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


def test_vtlp_warps_in_training_only_with_kaldi_vtln():
    fbank = Fbank(pitch=True, vtlp_range=[0.9, 1.1])
    plain = Fbank(pitch=True).eval()
    wave, lens = _batch([8000, 6000])
    fbank.eval()
    torch.testing.assert_close(fbank(wave, lens)[0], plain(wave, lens)[0], rtol=0, atol=0)
    fbank.train()
    torch.manual_seed(3)
    warps = [round((0.9 + 0.2 * float(torch.rand(()))) / 0.001) * 0.001 for _ in range(2)]
    torch.manual_seed(3)
    feats, feats_lens = fbank(wave, lens)
    ref_plain, _ = plain(wave, lens)
    for i, n in enumerate(lens.tolist()):
        assert 0.9 <= warps[i] <= 1.1 and warps[i] != 1.0
        ref = kaldi.fbank(wave[i : i + 1, :n] * 32768, num_mel_bins=80, frame_length=25.0,
                          frame_shift=10.0, dither=0.0, sample_frequency=16000.0, vtln_warp=warps[i])
        torch.testing.assert_close(feats[i, : feats_lens[i], :80], ref)
        assert not torch.allclose(feats[i, : feats_lens[i], :80], ref_plain[i, : feats_lens[i], :80])
        # The pitch features read the waveform: never warped.
        torch.testing.assert_close(feats[i, : feats_lens[i], 80:], ref_plain[i, : feats_lens[i], 80:])


def test_vtlp_moves_a_tone_across_mel_bins():
    t = torch.arange(16000) / 16000.0
    tone = 0.3 * torch.sin(2 * torch.pi * 1000.0 * t)
    fbank = Fbank()
    peak = {a: int(fbank.extract(tone, warp=a).mean(0).argmax()) for a in (0.9, 1.0, 1.1)}
    assert peak[0.9] < peak[1.0] < peak[1.1]


@pytest.mark.parametrize("bad", [[1.1], [1.1, 0.9], [0.3, 1.0], [1.0, 2.5]])
def test_vtlp_range_is_validated(bad):
    with pytest.raises(ValueError, match="vtlp_range"):
        Fbank(vtlp_range=bad)
