"""Tests of the mini_emo corpus generator (ent.synth.mini_emo) and of the
emotion prosody distributions it uses (ent.synth.prosody)."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import statistics
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import soundfile as sf

from ent.data.emotions import DEFAULT_EMOTIONS, NEUTRAL
from ent.synth import espeak
from ent.synth.espeak import MAX_AMPLITUDE, SynthesisParams, get_synthesizer
from ent.synth.grammar import normalize_text
from ent.synth.mini_emo import (
    ORACLE_INTERVALS,
    SAMPLE_RATE,
    SETS,
    TEST_VOICES,
    TRAIN_VOICES,
    CorpusOptions,
    NoiseSpec,
    Segment,
    UtteranceSpec,
    main,
    make_noise,
    plan_set,
    render_segment,
    render_utterance,
    sentence_pools,
)
from ent.synth.prosody import LIMITS, PROSODY, sample_prosody, variant_weight

needs_espeak = pytest.mark.skipif(
    not espeak.ctypes_backend_available(), reason="espeakng-loader is not installed"
)

OPTIONS = CorpusOptions(seed=3, num_train=12, num_dev=8, num_test=8, num_test_sed=4, noise_prob=0.5)
CLI_ARGS = [
    "--out-dir", "data", "--seed", "3", "--num-train", "12", "--num-dev", "8", "--num-test", "8",
    "--num-test-sed", "4", "--noise-prob", "0.5",
]
TABLES = ("wav.scp", "text", "utt2spk", "spk2utt", "utt2emo", "utt2dur")


def _generate(root: Path, nj: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(root):  # recipe-style run: paths relative to root
        main(CLI_ARGS + ["--nj", str(nj)])
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("mini_emo_a"), nj=1)


def _table(path: Path) -> Dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, value = line.split(" ", 1)
        out[key] = value
    return out


def _keys(path: Path) -> List[str]:
    return [line.split(" ", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------------
# prosody
# ---------------------------------------------------------------------------


def test_prosody_distributions_order_and_limits() -> None:
    assert tuple(PROSODY) == DEFAULT_EMOTIONS
    rng = random.Random(0)
    draws = {e: [sample_prosody(e, rng) for _ in range(400)] for e in DEFAULT_EMOTIONS}
    mean = {e: {k: statistics.mean(getattr(d, k) for d in ds) for k in LIMITS} for e, ds in draws.items()}
    assert mean["sad"]["rate"] < mean["neutral"]["rate"] < mean["happy"]["rate"]
    assert mean["neutral"]["rate"] < mean["angry"]["rate"]
    assert mean["sad"]["pitch"] < mean["neutral"]["pitch"] < mean["angry"]["pitch"] < mean["happy"]["pitch"]
    assert mean["sad"]["pitch_range"] < mean["neutral"]["pitch_range"] < mean["happy"]["pitch_range"]
    assert mean["sad"]["amplitude"] < mean["neutral"]["amplitude"] < mean["angry"]["amplitude"]
    assert mean["sad"]["word_gap"] > mean["neutral"]["word_gap"]
    for ds in draws.values():
        for d in ds:
            for key, (low, high) in LIMITS.items():
                assert low <= getattr(d, key) <= high
            assert d.amplitude <= MAX_AMPLITUDE
    assert {d.intensity for d in draws["neutral"]} == {1.0}
    # Jitter: emotional intensities vary, so classes overlap.
    assert statistics.pstdev(d.intensity for d in draws["happy"]) > 0.1


def test_prosody_is_deterministic_and_checks_emotion() -> None:
    a = [sample_prosody("angry", random.Random(5), 3, -2) for _ in range(2)]
    assert a[0] == a[1]
    params = a[0].to_params("en-us+m3", seed=9)
    d = a[0]
    assert params == SynthesisParams("en-us+m3", d.rate, d.pitch, d.pitch_range, d.amplitude, d.word_gap, 9)
    with pytest.raises(KeyError, match="bored"):
        sample_prosody("bored", random.Random(0))
    assert variant_weight("sad", "en+f2") > variant_weight("sad", "en+m1") == 1.0
    assert variant_weight("neutral", "en-us") == 1.0


# ---------------------------------------------------------------------------
# noise and rendering
# ---------------------------------------------------------------------------


def _band_power(x: np.ndarray, lo: int, hi: int) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.shape[0], 1.0 / SAMPLE_RATE)
    return float(spec[(freqs >= lo) & (freqs < hi)].mean())


def test_make_noise_colours() -> None:
    ratios = {}
    for color in ("white", "pink", "brown"):
        noise = make_noise(32000, color, np.random.default_rng(0))
        assert noise.shape == (32000,)
        assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0)
        ratios[color] = _band_power(noise, 100, 200) / _band_power(noise, 3200, 6400)
    # Power ratio between bands 32x apart: 1 (white), ~32 (pink), ~1000 (brown).
    assert 0.5 < ratios["white"] < 2.0
    assert 10 < ratios["pink"] < 100
    assert ratios["brown"] > 300
    np.testing.assert_array_equal(
        make_noise(100, "pink", np.random.default_rng(1)), make_noise(100, "pink", np.random.default_rng(1))
    )
    with pytest.raises(ValueError, match="colour"):
        make_noise(10, "purple", np.random.default_rng(0))


@needs_espeak
def test_render_utterance_noise_snr_and_bounds() -> None:
    synth = get_synthesizer("ctypes")
    segs = tuple(
        Segment(text, text + ".", emo, SynthesisParams(voice="en-us+m1", amplitude=50, seed=1))
        for text, emo in (("hello there my friend", NEUTRAL), ("where is the red box", "angry"))
    )
    clean_spec = UtteranceSpec("u", "test_sed", "usm1", segs, 0.1, (0.25,), 0.12, None, "/nonexistent.wav")
    clean = render_utterance(clean_spec, synth)
    lengths = [render_segment(s, synth).shape[0] for s in segs]
    lead, gap = round(0.1 * SAMPLE_RATE), round(0.25 * SAMPLE_RATE)
    assert clean.segment_bounds == (
        (lead, lead + lengths[0], NEUTRAL),
        (lead + lengths[0] + gap, lead + lengths[0] + gap + lengths[1], "angry"),
    )
    assert clean.audio.shape[0] == lead + lengths[0] + gap + lengths[1] + round(0.12 * SAMPLE_RATE)
    assert clean.audio.dtype == np.float32
    # Pauses hold the faint noise floor (never digital silence) at its level.
    floor_rms = 10.0 ** (clean_spec.floor_db / 20.0)
    for pause in (clean.audio[:lead], clean.audio[lead + lengths[0] : lead + lengths[0] + gap]):
        rms = float(np.sqrt(np.mean(pause.astype(np.float64) ** 2)))
        assert 0.8 * floor_rms < rms < 1.25 * floor_rms
    noisy = render_utterance(replace(clean_spec, noise=NoiseSpec("pink", 15.0, 4)), synth)
    noise = noisy.audio.astype(np.float64) - clean.audio
    speech = np.concatenate([clean.audio[s:e] for s, e, _ in clean.segment_bounds]).astype(np.float64)
    snr = 10 * np.log10(np.mean(speech**2) / np.mean(noise**2))
    assert snr == pytest.approx(15.0, abs=0.05)


# ---------------------------------------------------------------------------
# the generated corpus
# ---------------------------------------------------------------------------


@needs_espeak
def test_same_seed_gives_identical_bytes_for_any_nj(corpus: Path, tmp_path: Path) -> None:
    other = _generate(tmp_path / "b", nj=2)
    files_a = sorted(p.relative_to(corpus) for p in corpus.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(other) for p in other.rglob("*") if p.is_file())
    assert files_a == files_b
    assert any(str(p).endswith(".wav") for p in files_a)
    for rel in files_a:
        assert (corpus / rel).read_bytes() == (other / rel).read_bytes(), rel


@needs_espeak
def test_tables_sorted_consistent_and_relative(corpus: Path) -> None:
    for name in SETS:
        d = corpus / "data" / name
        assert (d / ".done").exists()
        keys = None
        for table in TABLES:
            k = _keys(d / table)
            assert k == sorted(k, key=lambda s: s.encode()), f"{name}/{table} not sorted"
            if table != "spk2utt":
                assert keys is None or k == keys, f"{name}/{table} ids differ"
                keys = k
        assert len(keys) == OPTIONS.size(name)
        utt2spk = _table(d / "utt2spk")
        spk2utt = {s: u.split() for s, u in _table(d / "spk2utt").items()}
        assert sorted(u for us in spk2utt.values() for u in us) == keys
        assert all(utt2spk[u] == s for s, us in spk2utt.items() for u in us)
        assert all(u.startswith(utt2spk[u] + "-") for u in keys)
        assert set(_table(d / "utt2emo").values()) <= set(DEFAULT_EMOTIONS)
        for utt, text in _table(d / "text").items():
            assert text == normalize_text(text) and text == text.lower()
        for utt, path in _table(d / "wav.scp").items():
            assert path == f"wav/{name}/{utt}.wav"  # relative to the run directory


@needs_espeak
def test_audio_format_and_durations(corpus: Path) -> None:
    for name in SETS:
        d = corpus / "data" / name
        durs = _table(d / "utt2dur")
        for utt, path in _table(d / "wav.scp").items():
            info = sf.info(str(corpus / path))
            fmt = (info.samplerate, info.channels, info.subtype, info.format)
            assert fmt == (SAMPLE_RATE, 1, "PCM_16", "WAV")
            assert float(durs[utt]) == pytest.approx(info.frames / SAMPLE_RATE, abs=5e-4)
            assert 0.8 < info.frames / SAMPLE_RATE < (12.0 if name == "test_sed" else 6.0)
            audio, _ = sf.read(str(corpus / path))
            assert np.sqrt(np.mean(audio**2)) > 0.005 and np.max(np.abs(audio)) < 0.99


@needs_espeak
def test_held_out_voices_sentences_and_balance(corpus: Path) -> None:
    data = corpus / "data"
    train_spk = {v.spk for v in TRAIN_VOICES}
    test_spk = {v.spk for v in TEST_VOICES}
    assert not train_spk & test_spk
    assert set(_table(data / "train" / "utt2spk").values()) <= train_spk
    assert set(_table(data / "dev" / "utt2spk").values()) <= train_spk
    assert set(_table(data / "test" / "utt2spk").values()) <= test_spk
    assert set(_table(data / "test_sed" / "utt2spk").values()) <= test_spk
    seen = {normalize_text(t) for s in ("train", "dev") for t in _table(data / s / "text").values()}
    test_texts = {normalize_text(t) for t in _table(data / "test" / "text").values()}
    assert not seen & test_texts
    pools = sentence_pools(OPTIONS)
    assert not seen & {normalize_text(t) for t in pools["test_sed"]}
    counts = Counter(_table(data / "test" / "utt2emo").values())
    assert counts == {e: OPTIONS.num_test // 4 for e in DEFAULT_EMOTIONS}
    # The default-size plan: exactly 100 per emotion, 25 per voice x emotion.
    big = CorpusOptions()
    plan = plan_set("test", big, ["w x y z"] * big.num_test, corpus)
    assert Counter(s.emotion for s in plan) == {e: 100 for e in DEFAULT_EMOTIONS}
    assert set(Counter((s.spk, s.emotion) for s in plan).values()) == {25}


@needs_espeak
def test_emo_segments_match_audio_and_zed_json(corpus: Path) -> None:
    d = corpus / "data" / "test_sed"
    durs = {u: float(v) for u, v in _table(d / "utt2dur").items()}
    emos = _table(d / "utt2emo")
    texts = _table(d / "text")
    scp = _table(d / "wav.scp")
    lines = [line.split() for line in (d / "emo_segments").read_text().splitlines()]
    assert [line[0] for line in lines] == sorted(durs)  # one interval per utterance
    zed = json.loads((d / "zed.json").read_text())
    assert sorted(zed) == sorted(durs)
    specs = plan_set("test_sed", OPTIONS, sentence_pools(OPTIONS)["test_sed"], corpus / "wav")
    plan = {s.utt_id: s for s in specs}
    synth = get_synthesizer("ctypes")
    for utt, start_s, end_s, emotion in lines:
        start, end = float(start_s), float(end_s)
        assert len(start_s.split(".")[1]) == 3 and len(end_s.split(".")[1]) == 3
        assert 0.0 <= start < end <= durs[utt]
        assert emotion == emos[utt] != NEUTRAL
        assert zed[utt] == {
            "wav": scp[utt],
            "duration": durs[utt],
            "emotion": [{"emo": emotion, "start": start, "end": end}],
            "transcription": texts[utt],
        }
        # Where the emotional segment lies, from the known segment lengths.
        spec = plan[utt]
        assert 2 <= len(spec.segments) <= 3 and texts[utt] == spec.text
        lengths = [render_segment(seg, synth).shape[0] for seg in spec.segments]
        pos = round(spec.lead_silence * SAMPLE_RATE)
        for j, seg in enumerate(spec.segments):
            if j:
                pos += round(spec.gaps[j - 1] * SAMPLE_RATE)
            if seg.emotion != NEUTRAL:
                emo_audio = render_segment(seg, synth)
                assert start == pytest.approx(pos / SAMPLE_RATE, abs=5e-4)
                assert end == pytest.approx((pos + lengths[j]) / SAMPLE_RATE, abs=5e-4)
                # ... and the samples there are the emotional segment's.
                audio, _ = sf.read(str(corpus / scp[utt]))
                window = audio[pos : pos + lengths[j]]
                if spec.noise is None:
                    floor_peak = 6.0 * 10.0 ** (spec.floor_db / 20.0)  # 6 sigma of the noise floor
                    np.testing.assert_allclose(window, emo_audio, atol=floor_peak + 2.0 / 32768)
                else:
                    assert np.corrcoef(window, emo_audio)[0, 1] > 0.9
            pos += lengths[j]
        # The whole file is exactly what render_utterance gives (noise included).
        audio, _ = sf.read(str(corpus / scp[utt]))
        np.testing.assert_allclose(audio, render_utterance(spec, synth).audio, atol=1.0 / 32768)


@needs_espeak
def test_train_and_dev_keep_every_utterance_interval_as_the_oracle(corpus: Path) -> None:
    assert not (corpus / "data" / "test" / "emo_segments").exists()
    for name in ("train", "dev"):
        d = corpus / "data" / name
        assert not (d / "emo_segments").exists()  # utterance labels only, like a real corpus
        durs = {u: float(v) for u, v in _table(d / "utt2dur").items()}
        emos = _table(d / "utt2emo")
        plan = {s.utt_id: s for s in plan_set(name, OPTIONS, sentence_pools(OPTIONS)[name], corpus / "wav")}
        lines = [line.split() for line in (d / ORACLE_INTERVALS).read_text().splitlines()]
        assert [line[0] for line in lines] == sorted(durs)  # every utterance, neutral ones too
        assert {line[3] for line in lines} == {e for e in emos.values()}
        for utt, start_s, end_s, emotion in lines:
            start, end = float(start_s), float(end_s)
            assert emotion == emos[utt]
            assert start == pytest.approx(plan[utt].lead_silence, abs=5e-4)  # the speech starts there
            assert 0.0 < start < end < durs[utt]  # silence before and after


@needs_espeak
def test_sets_of_an_older_table_layout_are_regenerated(corpus: Path, caplog: pytest.LogCaptureFixture) -> None:
    done = corpus / "data" / "dev" / ".done"
    signature = json.loads(done.read_text())
    done.write_text(json.dumps({**signature, "tables": 2}))
    dev = corpus / "data" / "dev"
    (dev / ORACLE_INTERVALS).rename(dev / "emo_segments")  # version 2 wrote the oracle there
    with contextlib.chdir(corpus), caplog.at_level(logging.INFO):
        main(CLI_ARGS)
    assert "dev: written by an older version" in caplog.text
    assert json.loads(done.read_text()) == signature and (dev / ORACLE_INTERVALS).exists()
    assert not (dev / "emo_segments").exists()


@needs_espeak
def test_done_marker_skip_mismatch_and_force(corpus: Path, caplog: pytest.LogCaptureFixture) -> None:
    wav = corpus / "wav" / "dev" / sorted(p.name for p in (corpus / "wav" / "dev").iterdir())[0]
    stamp = wav.stat().st_mtime_ns
    with contextlib.chdir(corpus):
        main(CLI_ARGS)
        assert wav.stat().st_mtime_ns == stamp  # skipped, nothing rewritten
        with pytest.raises(ValueError, match="other options.*--force"):
            main(CLI_ARGS[:-1] + ["0.25"])
        stale = corpus / "wav" / "dev" / "usm1-dev-99999.wav"
        other = corpus / "wav" / "dev" / "notes.wav"
        stale.write_bytes(b"old")
        other.write_bytes(b"mine")
        main(CLI_ARGS + ["--force"])
    assert wav.stat().st_mtime_ns != stamp
    assert not stale.exists() and other.read_bytes() == b"mine"
    other.unlink()


def test_bad_options_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="noise-prob"):
        main(["--out-dir", str(tmp_path), "--noise-prob", "1.5"])
    with pytest.raises(ValueError, match="num-test-sed"):
        main(["--out-dir", str(tmp_path), "--num-test-sed", "-1"])
    with pytest.raises(ValueError, match="snr-range"):
        main(["--out-dir", str(tmp_path), "--snr-range", "30", "10"])
    with pytest.raises(ValueError, match="nj"):
        main(["--out-dir", str(tmp_path), "--nj", "0"])


def test_multi_sentence_train_utterances_leave_the_other_sets_unchanged() -> None:
    multi = replace(OPTIONS, multi_sentence_every=3)
    plain_pools, multi_pools = sentence_pools(OPTIONS), sentence_pools(multi)
    for name in ("test", "test_sed"):
        assert multi_pools[name] == plain_pools[name]
    all_sentences = [s for pool in multi_pools.values() for s in pool]
    assert len(set(map(normalize_text, all_sentences))) == len(all_sentences)  # still all distinct
    for name in ("train", "dev"):
        plain = plan_set(name, OPTIONS, plain_pools[name], Path("wav"))
        specs = plan_set(name, multi, multi_pools[name], Path("wav"))
        assert [s.emotion for s in specs] == [s.emotion for s in plain]  # labels stay balanced
        for i, (spec, ref) in enumerate(zip(specs, plain)):
            if i % 3 != 2:
                assert spec == ref  # single-sentence utterances are unchanged
                continue
            assert 2 <= len(spec.segments) <= 3 and len(spec.gaps) == len(spec.segments) - 1
            assert spec.segments[0].text == ref.segments[0].text  # its own sentence, then 1-2 more
            emotions = [seg.emotion for seg in spec.segments]
            if spec.emotion == NEUTRAL:
                assert set(emotions) == {NEUTRAL}
            else:
                assert emotions.count(spec.emotion) == 1 and emotions.count(NEUTRAL) == len(emotions) - 1
            assert len({seg.params.voice for seg in spec.segments}) == 1
    with pytest.raises(ValueError, match="multi-sentence-every"):
        replace(OPTIONS, multi_sentence_every=-1).check()
