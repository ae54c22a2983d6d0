"""eGeMAPS functionals (openSMILE): output shape, per-speaker z-normalization, the cache."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datadir_factory import make_data_dir, tone  # noqa: E402

from ent.features.functionals import NUM_EGEMAPS, EGeMAPSExtractor, load_or_extract, speaker_znorm  # noqa: E402


def test_extractor_gives_the_88_egemaps_functionals() -> None:
    extractor = EGeMAPSExtractor()
    low, high = extractor(tone(1.0, freq=150.0)), extractor(tone(1.0, freq=300.0))
    assert low.shape == high.shape == (NUM_EGEMAPS,) and np.isfinite(low).all()
    assert len(extractor.names) == NUM_EGEMAPS
    f0 = extractor.names.index("F0semitoneFrom27.5Hz_sma3nz_amean")
    # one octave up is 12 semitones up
    assert high[f0] - low[f0] == pytest.approx(12.0, abs=0.5)


def test_speaker_znorm_matches_a_per_speaker_reference() -> None:
    rng = np.random.default_rng(0)
    table = {f"u{i}": rng.normal(loc=10.0 * (i % 2), scale=1.0 + i % 2, size=5) for i in range(8)}
    utt2spk = {f"u{i}": f"s{i % 2}" for i in range(7)}  # u7 has no speaker: its own
    norm = speaker_znorm(table, utt2spk)
    for spk in ("s0", "s1"):
        utts = [u for u, s in utt2spk.items() if s == spk]
        values = np.stack([table[u] for u in utts])
        expected = (values - values.mean(0)) / values.std(0)
        assert np.allclose(np.stack([norm[u] for u in utts]), expected)
    assert np.allclose(norm["u7"], 0.0)  # alone: every dimension equals its speaker's mean


def test_load_or_extract_normalizes_per_speaker_and_caches(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path, n=4, durations=[0.6, 0.7, 0.8, 0.9])
    cache = data / "egemaps.npz"
    utts, feats = load_or_extract(data, cache)
    assert utts == ["utt001", "utt002", "utt003", "utt004"] and feats.shape == (4, NUM_EGEMAPS)
    # spk1 = utt001, utt003; spk2 = utt002, utt004: each speaker's functionals have mean 0
    assert np.allclose(feats[[0, 2]].mean(0), 0.0) and np.allclose(feats[[1, 3]].mean(0), 0.0)
    assert cache.is_file()
    with np.load(cache) as npz:  # the cache keeps the raw functionals
        raw = npz["feats"]
    np.savez(cache, utts=np.array(utts), feats=raw * 0 + np.arange(4)[:, None])  # a doctored cache is used
    _, again = load_or_extract(data, cache)
    assert np.allclose(again[0], -1.0) and np.allclose(again[2], 1.0)
    (data / "wav.scp").touch()  # ... until the set changes
    import os
    os.utime(cache, (0, 0))
    _, fresh = load_or_extract(data, cache)
    assert np.allclose(fresh, feats)
