"""Tests of global CMVN statistics."""

import numpy as np
import pytest
import torch

from ent.bin.compute_cmvn_stats import main
from ent.data.audio import write_audio
from ent.data.datadir import DataDir
from ent.features.cmvn import (
    apply_cmvn,
    build_global_cmvn,
    compute_cmvn_stats,
    load_cmvn_stats,
    select_utterances,
    speaker_cmvn,
)
from ent.features.fbank import Fbank
from ent.features.prosody import NUM_PROSODY, VAR_FLOOR, normalize_prosody, prosody_functionals


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


def test_cli_recomputes_when_the_inputs_change_and_only_then(tmp_path, caplog):
    """The statistics are keyed by the data dir's content and the options, not by the file's existence."""
    import shutil

    d = _make_data_dir(tmp_path, n=4)
    out = tmp_path / "exp" / "feats_stats.npz"

    def run(*extra):
        caplog.clear()
        with caplog.at_level("INFO"):
            main(["--data-dir", str(data_dir), "--out", str(out), *extra])
        with np.load(out) as stats:
            return int(stats["count"]), "skipping" in caplog.text

    data_dir = d
    count, skipped = run()
    assert not skipped and (tmp_path / "exp" / "feats_stats.npz.stamp").is_file()
    assert run() == (count, True)
    import os
    os.utime(d / "wav.scp", ns=(1, 1))  # touched or copied: the same content is not recomputed
    assert run() == (count, True)
    fewer, skipped = run("--max-utts", "2")  # cmvn_max_utts
    assert not skipped and fewer < count and "recomputing (options changed)" in caplog.text
    assert run("--max-utts", "2") == (fewer, True)
    assert run() == (count, False)
    assert run("--pitch")[1] is False  # a feature option
    assert run()[1] is False
    # the same path, other content (e.g. data prepared again with one utterance less)
    lines = (d / "wav.scp").read_text().splitlines()
    (d / "wav.scp").write_text("\n".join(lines[:3]) + "\n")
    for name in ("text", "utt2spk", "utt2emo"):
        path = d / name
        if path.exists():
            path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:3]))
    smaller, skipped = run()
    assert not skipped and smaller < count and f"changed: {d / 'wav.scp'}" in caplog.text
    # another training set (e.g. the speed-perturbed one) under the same statistics path
    data_dir = shutil.copytree(d, tmp_path / "data_sp")
    assert run() == (smaller, False)
    # statistics from before the stamps: recomputed once
    (tmp_path / "exp" / "feats_stats.npz.stamp").unlink()
    assert run() == (smaller, False) and "no stamp" in caplog.text


# ------------------------------------------------------------ per-speaker CMVN
def _two_speaker_dir(tmp_path):
    d = _make_data_dir(tmp_path, n=5)
    (d / "utt2spk").write_text("utt0 a\nutt1 b\nutt2 a\nutt3 b\nutt4 a\n", encoding="utf-8")
    return d


def assert_stats_close(got, want, **tol) -> None:
    """Two SpeakerStats agree field by field (prosody statistics on both or on neither)."""
    np.testing.assert_allclose(got.cmvn, want.cmvn, **tol)
    assert (got.prosody is None) == (want.prosody is None)
    if want.prosody is not None:
        np.testing.assert_allclose(got.prosody, want.prosody, **tol)


def _frames_of(d, utts):
    data = DataDir.load(d)
    fbank = Fbank().eval()
    return torch.cat([fbank.extract(torch.from_numpy(data.load_audio(u))) for u in utts]).double().numpy()


def test_speaker_cmvn_is_each_speakers_mean_and_std(tmp_path):
    d = _two_speaker_dir(tmp_path)
    stats = speaker_cmvn(d, Fbank(), nj=1)
    assert sorted(stats) == [f"utt{i}" for i in range(5)]
    for spk_utts in (["utt0", "utt2", "utt4"], ["utt1", "utt3"]):
        frames = _frames_of(d, spk_utts)
        for utt in spk_utts:
            assert stats[utt].cmvn.shape == (2, 80) and stats[utt].cmvn.dtype == np.float32 and stats[utt].prosody is None
            np.testing.assert_allclose(stats[utt].cmvn[0], frames.mean(0), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(stats[utt].cmvn[1], frames.std(0), rtol=1e-4, atol=1e-5)
    assert not np.allclose(stats["utt0"].cmvn, stats["utt1"].cmvn)
    parallel = speaker_cmvn(d, Fbank(), nj=2, cache=False)
    for utt in stats:
        assert_stats_close(parallel[utt], stats[utt], rtol=1e-6)


def test_speaker_cmvn_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    import ent.features.cmvn as cmvn

    d = _two_speaker_dir(tmp_path)
    first = speaker_cmvn(d, Fbank())
    assert (d / "spk_cmvn.npz").is_file()
    calls = []
    real = cmvn.compute_speaker_cmvn_stats
    monkeypatch.setattr(cmvn, "compute_speaker_cmvn_stats", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = cmvn.speaker_cmvn(d, Fbank())
    assert calls == [] and all(np.array_equal(again[u].cmvn, first[u].cmvn) for u in first)
    cmvn.speaker_cmvn(d, Fbank(n_mels=40))  # another frontend: recomputed
    assert calls == [1]
    (d / "utt2spk").write_text("utt0 a\nutt1 a\nutt2 a\nutt3 b\nutt4 a\n", encoding="utf-8")
    moved = cmvn.speaker_cmvn(d, Fbank())  # speakers changed: recomputed
    assert calls == [1, 1] and not np.allclose(moved["utt1"].cmvn, first["utt1"].cmvn)


def test_speaker_cmvn_with_prosody_gives_each_speakers_functional_statistics(tmp_path, monkeypatch):
    import ent.features.cmvn as cmvn

    d = _two_speaker_dir(tmp_path)
    fbank = Fbank(pitch=True)
    plain = speaker_cmvn(d, fbank)
    calls = []
    real = cmvn.compute_speaker_cmvn_stats
    monkeypatch.setattr(cmvn, "compute_speaker_cmvn_stats", lambda *a, **k: calls.append(1) or real(*a, **k))
    stats = cmvn.speaker_cmvn(d, fbank, prosody=True)  # the cached plain statistics do not do
    assert calls == [1]
    data = DataDir.load(d)
    for spk_utts in (["utt0", "utt2", "utt4"], ["utt1", "utt3"]):
        funcs = np.stack([
            prosody_functionals(f[None], torch.tensor([len(f)]), 80)[0].double().numpy()
            for f in (fbank.eval().extract(torch.from_numpy(data.load_audio(u))) for u in spk_utts)
        ])
        for utt in spk_utts:
            assert stats[utt].cmvn.shape == (2, 82) and stats[utt].prosody.shape == (2, NUM_PROSODY)
            assert stats[utt].prosody.dtype == np.float32
            np.testing.assert_array_equal(stats[utt].cmvn, plain[utt].cmvn)
            np.testing.assert_allclose(stats[utt].prosody[0], funcs.mean(0), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(stats[utt].prosody[1], np.sqrt(np.maximum(funcs.var(0), VAR_FLOOR)),
                                       rtol=1e-4, atol=1e-6)
    cached = cmvn.speaker_cmvn(d, fbank, prosody=True)
    without = cmvn.speaker_cmvn(d, fbank)  # the cache with prosody serves this too
    parallel = cmvn.speaker_cmvn(d, fbank, prosody=True, nj=2, cache=False)
    assert calls == [1, 1]
    assert all(np.array_equal(without[u].cmvn, plain[u].cmvn) and without[u].prosody is None for u in plain)
    for utt in stats:
        assert_stats_close(cached[utt], stats[utt], rtol=0.0, atol=0.0)
        assert_stats_close(parallel[utt], stats[utt], rtol=1e-6)
    with pytest.raises(ValueError, match="pitch"):
        cmvn.speaker_cmvn(d, Fbank(), prosody=True, cache=False)
    # the table a prosody expert is fitted on is normalized as the model normalizes with these statistics
    table = cmvn.normalized_prosody_table(d, fbank)
    for utt in stats:
        f = fbank.eval().extract(torch.from_numpy(data.load_audio(utt)))
        funcs = prosody_functionals(f[None], torch.tensor([len(f)]), 80)[0].double()
        z = normalize_prosody(funcs, torch.from_numpy(stats[utt].prosody[0]).double(),
                              torch.from_numpy(stats[utt].prosody[1]).double())
        np.testing.assert_allclose(table[utt], z.numpy(), rtol=1e-4, atol=1e-4)


def test_mixes_do_not_count_towards_their_speakers_statistics(tmp_path):
    """The utterances of mix_parts (joined copies of others) get their speaker's statistics
    of its own utterances: train_mix normalizes like the test sets, which have no mixes."""
    import ent.features.cmvn as cmvn

    d = _two_speaker_dir(tmp_path)
    fbank = Fbank(pitch=True)
    alone = speaker_cmvn(d, fbank, prosody=True, cache=False, utt_ids=["utt0", "utt1", "utt3", "utt4"])
    table_alone = cmvn.normalized_prosody_table(d, fbank, cache=False, utt_ids=["utt2"])
    (d / "mix_parts").write_text("utt2 utt0 utt4\n", encoding="utf-8")  # utt2 is now a mix of speaker a
    stats = speaker_cmvn(d, fbank, prosody=True)
    for utt in ("utt0", "utt2", "utt4"):  # speaker a: the statistics of utt0 and utt4 only
        assert_stats_close(stats[utt], alone["utt0"], rtol=1e-6)
    assert_stats_close(stats["utt1"], alone["utt1"], rtol=1e-6)
    # the mix keeps its own functionals in the table, normalized with those statistics
    table = cmvn.normalized_prosody_table(d, fbank, utt_ids=["utt2"])
    assert not np.allclose(table["utt2"], table_alone["utt2"])
    data = DataDir.load(d)
    f = fbank.eval().extract(torch.from_numpy(data.load_audio("utt2")))
    funcs = prosody_functionals(f[None], torch.tensor([len(f)]), 80)[0].double()
    z = normalize_prosody(funcs, torch.from_numpy(stats["utt2"].prosody[0]).double(),
                          torch.from_numpy(stats["utt2"].prosody[1]).double())
    np.testing.assert_allclose(table["utt2"], z.numpy(), rtol=1e-4, atol=1e-4)
    # a speaker with nothing but mixes keeps them
    only = speaker_cmvn(d, fbank, cache=False, utt_ids=["utt2"])
    assert_stats_close(only["utt2"], speaker_cmvn(d, fbank, cache=False, utt_ids=["utt2", "utt1"])["utt2"])
    assert not np.allclose(only["utt2"].cmvn, stats["utt2"].cmvn)


def test_prosody_table_and_speaker_statistics_read_the_audio_once(tmp_path, monkeypatch):
    import ent.features.cmvn as cmvn

    d = _two_speaker_dir(tmp_path)
    fbank = Fbank(pitch=True)
    calls = []
    real = cmvn.compute_speaker_cmvn_stats
    monkeypatch.setattr(cmvn, "compute_speaker_cmvn_stats", lambda *a, **k: calls.append(1) or real(*a, **k))
    # a subset (as when the expert is fitted on the utterances of known emotion) is normalized with the
    # statistics of all the speaker's utterances, which the model reads in training
    subset = cmvn.normalized_prosody_table(d, fbank, utt_ids=["utt0", "utt3"])
    stats = cmvn.speaker_cmvn(d, fbank, prosody=True)
    assert calls == [1] and sorted(subset) == ["utt0", "utt3"]
    full = cmvn.normalized_prosody_table(d, fbank)
    assert calls == [1]
    for utt in subset:
        np.testing.assert_array_equal(subset[utt], full[utt])
    data = DataDir.load(d)
    f = fbank.eval().extract(torch.from_numpy(data.load_audio("utt0")))
    funcs = prosody_functionals(f[None], torch.tensor([len(f)]), 80)[0].double()
    z = normalize_prosody(funcs, torch.from_numpy(stats["utt0"].prosody[0]).double(),
                          torch.from_numpy(stats["utt0"].prosody[1]).double())
    np.testing.assert_allclose(subset["utt0"], z.numpy(), rtol=1e-5, atol=1e-5)
    # global normalization: zero mean over the directory
    pooled = cmvn.normalized_prosody_table(d, fbank, per_speaker=False)
    assert calls == [1]
    np.testing.assert_allclose(np.stack(list(pooled.values())).mean(0), 0.0, atol=1e-4)
    with pytest.raises(ValueError, match="not in its text"):
        cmvn.normalized_prosody_table(d, fbank, utt_ids=["utt9"])


def test_speaker_cmvn_without_utt2spk_entry_is_per_utterance(tmp_path):
    d = _two_speaker_dir(tmp_path)
    data = DataDir.load(d)
    data.utt2spk.clear()
    stats = speaker_cmvn(data, Fbank(), cache=False)
    frames = _frames_of(d, ["utt3"])
    np.testing.assert_allclose(stats["utt3"].cmvn[0], frames.mean(0), rtol=1e-5, atol=1e-5)


def test_apply_cmvn_ignores_padding():
    torch.manual_seed(0)
    feats = torch.randn(2, 7, 3) * 2 + 1
    lens = torch.tensor([7, 4])
    stats = torch.stack([torch.randn(2, 3), torch.rand(2, 3) + 0.5], dim=1)  # (B, 2, D)
    out = apply_cmvn(feats, lens, stats)
    torch.testing.assert_close(out[0], (feats[0] - stats[0, 0]) / stats[0, 1])
    torch.testing.assert_close(out[1, :4], (feats[1, :4] - stats[1, 0]) / stats[1, 1])
    assert torch.all(out[1, 4:] == 0)
