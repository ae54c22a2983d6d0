"""Tests of global CMVN statistics."""

import numpy as np
import pytest
import torch

from ent.bin.compute_cmvn_stats import main
from ent.data.audio import write_audio
from ent.data.datadir import DataDir
from ent.features.cmvn import build_global_cmvn, compute_cmvn_stats, load_cmvn_stats, select_utterances
from ent.features.fbank import Fbank


def _make_data_dir(root, n=5):
    """A small data dir of noise recordings of different lengths and colours."""
    rng = np.random.default_rng(0)
    d = root / "data"
    d.mkdir()
    wav, text, spk, emo = [], [], [], []
    for i in range(n):
        utt = f"utt{i}"
        x = rng.standard_normal(4000 + 1500 * i) * 0.05
        x = np.convolve(x, np.ones(i + 1) / (i + 1), mode="same")
        write_audio(root / f"{utt}.wav", x.astype(np.float32))
        wav.append(f"{utt} {root / (utt + '.wav')}")
        text.append(f"{utt} hello")
        spk.append(f"{utt} spk")
        emo.append(f"{utt} neutral")
    for name, lines in [("wav.scp", wav), ("text", text), ("utt2spk", spk), ("utt2emo", emo)]:
        (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


def _all_frames(d):
    data = DataDir.load(d)
    fbank = Fbank().eval()
    return torch.cat([fbank.extract(torch.from_numpy(data.load_audio(u))) for u in data.utt_ids]).double().numpy()


def test_stats_match_numpy(tmp_path):
    d = _make_data_dir(tmp_path)
    out = tmp_path / "stats" / "feats_stats.npz"
    stats = compute_cmvn_stats(d, Fbank(), out)
    frames = _all_frames(d)
    with np.load(out) as saved:
        assert set(saved.files) == {"count", "sum", "sum_square"}
        assert int(saved["count"]) == frames.shape[0]
        np.testing.assert_allclose(saved["sum"], frames.sum(0), rtol=1e-9)
        np.testing.assert_allclose(saved["sum_square"], (frames ** 2).sum(0), rtol=1e-9)
    mean, std = load_cmvn_stats(out)
    np.testing.assert_allclose(mean, frames.mean(0), rtol=1e-9)
    np.testing.assert_allclose(std, frames.std(0), rtol=1e-6)
    assert int(stats["count"]) == frames.shape[0]


def test_global_cmvn_normalizes_training_data(tmp_path):
    d = _make_data_dir(tmp_path)
    out = tmp_path / "feats_stats.npz"
    compute_cmvn_stats(d, Fbank(), out)
    data = DataDir.load(d)
    waves = [torch.from_numpy(data.load_audio(u)) for u in data.utt_ids]
    lens = torch.tensor([w.shape[0] for w in waves])
    batch = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    feats, feats_lens = Fbank().eval()(batch, lens)
    norm, _ = build_global_cmvn(out)(feats.clone(), feats_lens)
    valid = torch.cat([norm[i, : feats_lens[i]] for i in range(len(waves))]).double()
    torch.testing.assert_close(valid.mean(0), torch.zeros(80, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(valid.std(0, unbiased=False), torch.ones(80, dtype=torch.float64),
                               atol=1e-4, rtol=0)
    for i in range(len(waves)):
        assert torch.all(norm[i, feats_lens[i]:] == 0)


def test_parallel_equals_serial_and_max_utts(tmp_path):
    d = _make_data_dir(tmp_path, n=4)
    serial = compute_cmvn_stats(d, Fbank(), None)
    parallel = compute_cmvn_stats(d, Fbank(), None, nj=2)
    assert int(serial["count"]) == int(parallel["count"])
    np.testing.assert_allclose(serial["sum"], parallel["sum"], rtol=1e-12)
    sub = compute_cmvn_stats(d, Fbank(), None, max_utts=2)
    assert 0 < int(sub["count"]) < int(serial["count"])


def test_select_utterances_spreads_evenly():
    utts = [f"u{i:02d}" for i in range(10)]
    assert select_utterances(utts, None) == utts
    assert select_utterances(utts, 3) == ["u00", "u04", "u09"]  # linspace 0, 4.5, 9 (half to even)
    assert select_utterances(list(reversed(utts)), 2) == ["u00", "u09"]
    with pytest.raises(ValueError):
        select_utterances(utts, 0)


def test_fbank_mode_untouched(tmp_path):
    d = _make_data_dir(tmp_path, n=2)
    fbank = Fbank(dither=1.0).train()
    a = compute_cmvn_stats(d, fbank, None)
    b = compute_cmvn_stats(d, fbank, None)
    assert fbank.training
    np.testing.assert_array_equal(a["sum"], b["sum"])  # no dither while collecting


def test_cli_skips_when_done(tmp_path, caplog):
    d = _make_data_dir(tmp_path, n=2)
    out = tmp_path / "exp" / "feats_stats.npz"
    main(["--data-dir", str(d), "--out", str(out)])
    mtime = out.stat().st_mtime_ns
    with caplog.at_level("INFO"):
        main(["--data-dir", str(d), "--out", str(out)])
    assert "skipping" in caplog.text
    assert out.stat().st_mtime_ns == mtime
    (d / "wav.scp").write_text("utt0 /nonexistent.wav\nutt1 /nonexistent.wav\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["--data-dir", str(d), "--out", str(out), "--force"])
    assert "wav.scp:1" in caplog.text
