"""Tests of the eSpeak NG binding (ent.synth.espeak)."""

from __future__ import annotations

import multiprocessing
from dataclasses import replace

import numpy as np
import pytest

from ent.synth import espeak
from ent.synth.espeak import (
    MAX_AMPLITUDE,
    EspeakError,
    EspeakSynthesizer,
    SynthesisParams,
    build_ssml,
    get_synthesizer,
)

pytestmark = pytest.mark.skipif(
    not espeak.ctypes_backend_available(), reason="espeakng-loader is not installed"
)

SENTENCE = "the old teacher quickly found seven green apples near the river"


@pytest.fixture(scope="module")
def synth() -> EspeakSynthesizer:
    return EspeakSynthesizer("ctypes")


def _f0_track(audio: np.ndarray, rate: int) -> np.ndarray:
    """Autocorrelation F0 (Hz) of loud 40 ms frames; a simple reference tracker."""
    frame, hop = int(0.04 * rate), int(0.01 * rate)
    lo, hi = rate // 400, rate // 60
    rms_all = np.sqrt(np.mean(audio**2))
    out = []
    for start in range(0, len(audio) - frame, hop):
        x = audio[start : start + frame].astype(np.float64)
        if np.sqrt(np.mean(x**2)) < 0.5 * rms_all:
            continue
        x = x - x.mean()
        ac = np.correlate(x, x, "full")[frame - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            out.append(rate / lag)
    return np.array(out)


def test_synthesis_is_audible_and_plausibly_long(synth: EspeakSynthesizer) -> None:
    audio, rate = synth.synthesize(SENTENCE, SynthesisParams(voice="en-us", rate=175))
    assert rate == 22050
    assert audio.dtype == np.float32 and audio.ndim == 1
    seconds = audio.shape[0] / rate
    # 11 words at 175 words per minute is about 3.8 s of speech.
    assert 2.0 < seconds < 6.0
    assert np.sqrt(np.mean(audio**2)) > 0.01
    assert np.max(np.abs(audio)) < 1.0


def test_faster_rate_gives_shorter_audio(synth: EspeakSynthesizer) -> None:
    lengths = [
        synth.synthesize(SENTENCE, SynthesisParams(voice="en-us+m3", rate=rate))[0].shape[0]
        for rate in (120, 175, 260)
    ]
    assert lengths[0] > lengths[1] > lengths[2]
    assert lengths[0] / lengths[2] > 1.6


def test_word_gap_lengthens_audio(synth: EspeakSynthesizer) -> None:
    short = synth.synthesize(SENTENCE, SynthesisParams(word_gap=0))[0].shape[0]
    long = synth.synthesize(SENTENCE, SynthesisParams(word_gap=5))[0].shape[0]
    # 10 word boundaries x 50 ms = 0.5 s more.
    assert long - short > 0.3 * 22050


def test_higher_pitch_raises_f0(synth: EspeakSynthesizer) -> None:
    low = np.median(_f0_track(*synth.synthesize(SENTENCE, SynthesisParams(voice="en-us+m3", pitch=20))))
    high = np.median(_f0_track(*synth.synthesize(SENTENCE, SynthesisParams(voice="en-us+m3", pitch=80))))
    assert high > 1.2 * low


def test_ssml_pitch_range_widens_f0_spread(synth: EspeakSynthesizer) -> None:
    spreads = []
    for pitch_range in (0, 100):
        params = SynthesisParams(voice="en-us+m3", pitch_range=pitch_range)
        f0 = _f0_track(*synth.synthesize(SENTENCE, params))
        spreads.append(np.std(np.log2(f0)) * 12.0)  # semitones
    assert spreads[1] > 2.0 * spreads[0]


def test_amplitude_scales_level_and_cap_prevents_clipping(synth: EspeakSynthesizer) -> None:
    params = SynthesisParams(voice="en-gb-x-gbclan+m3", pitch=30, pitch_range=100)
    quiet = synth.synthesize(SENTENCE, replace(params, amplitude=20))[0]
    capped = synth.synthesize(SENTENCE, replace(params, amplitude=MAX_AMPLITUDE))[0]
    loud = synth.synthesize(SENTENCE, replace(params, amplitude=200))[0]
    rms = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))  # noqa: E731
    assert rms(capped) > 2.0 * rms(quiet)
    # Amplitude 200 is capped: identical to MAX_AMPLITUDE, and far from full scale
    # (this voice/pitch/range peaks at 0.99 with amplitude 80).
    np.testing.assert_array_equal(loud, capped)
    assert np.max(np.abs(loud)) < 0.9
    assert SynthesisParams(amplitude=150).validated().amplitude == MAX_AMPLITUDE


def test_same_request_gives_identical_audio(synth: EspeakSynthesizer) -> None:
    # eSpeak keeps state between calls; fresh_state must hide it.
    params = SynthesisParams(voice="en-us+f2", seed=7)
    first = synth.synthesize(SENTENCE, params)[0]
    synth.synthesize("something else entirely", SynthesisParams(voice="en+m1", rate=300))
    second = synth.synthesize(SENTENCE, params)[0]
    np.testing.assert_array_equal(first, second)


def test_variants_differ(synth: EspeakSynthesizer) -> None:
    male = synth.synthesize(SENTENCE, SynthesisParams(voice="en-us+m1"))[0]
    female = synth.synthesize(SENTENCE, SynthesisParams(voice="en-us+f1"))[0]
    assert np.median(_f0_track(female, 22050)) > 1.5 * np.median(_f0_track(male, 22050))


def test_ssml_fragment_is_interpreted(synth: EspeakSynthesizer) -> None:
    plain = synth.synthesize("hello there", SynthesisParams())[0]
    paused = synth.synthesize('hello <break time="800ms"/> there', SynthesisParams(), is_ssml=True)[0]
    assert paused.shape[0] - plain.shape[0] > 0.5 * 22050
    # Plain text is escaped, not interpreted.
    assert "&lt;" in build_ssml("a < b", 50)
    with pytest.raises(ValueError, match="speak"):
        synth.synthesize("<speak>hi</speak>", SynthesisParams(), is_ssml=True)


@pytest.mark.parametrize(
    "params",
    [
        SynthesisParams(rate=20),
        SynthesisParams(pitch=120),
        SynthesisParams(pitch_range=-1),
        SynthesisParams(word_gap=-2),
        SynthesisParams(voice="en us"),
        SynthesisParams(voice='en"><x'),
    ],
)
def test_bad_parameters_raise(synth: EspeakSynthesizer, params: SynthesisParams) -> None:
    with pytest.raises(ValueError):
        synth.synthesize("hello", params)


def test_unknown_voice_and_empty_text_raise(synth: EspeakSynthesizer) -> None:
    with pytest.raises(EspeakError, match="unknown eSpeak voice"):
        synth.synthesize("hello", SynthesisParams(voice="xx-nonexistent"))
    with pytest.raises(ValueError, match="empty"):
        synth.synthesize("  ", SynthesisParams())
    with pytest.raises(ValueError, match="unknown eSpeak back end"):
        EspeakSynthesizer("festival")


def _synth_in_worker(seed: int) -> bytes:
    audio, _ = get_synthesizer("ctypes").synthesize(SENTENCE, SynthesisParams(voice="en-us+f5", seed=seed))
    return audio.tobytes()


def test_forked_workers_match_parent(synth: EspeakSynthesizer) -> None:
    # Forked children inherit the parent's library image; each must load its
    # own. (Spawned workers are exercised by test_mini_emo's nj=2 run.)
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork start method")
    expected = synth.synthesize(SENTENCE, SynthesisParams(voice="en-us+f5", seed=3))[0].tobytes()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        outputs = pool.map(_synth_in_worker, [3, 3, 3, 3])
    assert all(out == expected for out in outputs)


@pytest.mark.skipif(not espeak.program_backend_available(), reason="espeak-ng program not on PATH")
def test_program_backend_agrees_with_ctypes(synth: EspeakSynthesizer) -> None:
    program = EspeakSynthesizer("program")
    params = SynthesisParams(voice="en-us+m3", rate=200, pitch=60, pitch_range=80, amplitude=50)
    a, rate = program.synthesize(SENTENCE, params)
    b, _ = synth.synthesize(SENTENCE, params)
    assert rate == 22050 and a.dtype == np.float32
    # Versions of the program and the library may differ slightly.
    assert abs(a.shape[0] - b.shape[0]) < 0.1 * b.shape[0]
    assert abs(np.std(a) / np.std(b) - 1.0) < 0.2
    with pytest.raises(EspeakError):
        program.synthesize("hello", SynthesisParams(voice="xx-nonexistent"))
