"""Tests of same-speaker emotion mixing (:mod:`ent.data.mixing`)."""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
import soundfile as sf
from datadir_factory import make_data_dir

import ent.data.mixing as mixing
from ent.data.datadir import DataDir
from ent.data.mixing import (
    MixOptions,
    active_rms,
    format_samples,
    join_parts,
    mix_data_dir,
    plan_mixes,
)
from ent.data.validate import validate_data_dir
from ent.utils.errors import DataError

SR = 16000

#: (utt, speaker, emotion, samples, amplitude) of the default test directory:
#: s1 can form every pattern, s2 (one neutral) only ne/en, s3 (no neutral) none.
UTTS: Tuple[Tuple[str, str, str, int, float], ...] = (
    ("s1_a1", "s1", "angry", 4500, 0.3),
    ("s1_h1", "s1", "happy", 6000, 0.2),
    ("s1_n1", "s1", "neutral", 4000, 0.05),
    ("s1_n2", "s1", "neutral", 5000, 0.08),
    ("s2_n3", "s2", "neutral", 5200, 0.1),
    ("s2_s1", "s2", "sad", 3000, 0.02),
    ("s3_h2", "s3", "happy", 4000, 0.1),
)


def _signal(n: int, amplitude: float, seed: int) -> np.ndarray:
    """Uniform noise in [-amplitude, amplitude], quantized to 16 bits (exact as read back)."""
    x = np.random.default_rng(seed).uniform(-amplitude, amplitude, n)
    return np.round(x * 32768).astype(np.int16)


def make_dir(root: Path, utts: Sequence[Tuple[str, str, str, int, float]] = UTTS, name: str = "src",
             relative: bool = False, emo_segments: Sequence[str] = ()) -> Tuple[Path, Dict[str, np.ndarray]]:
    """A data dir of distinct noise signals; returns it and utt -> float samples as stored."""
    d = root / name
    audio = root / "audio" / name
    d.mkdir(parents=True)
    audio.mkdir(parents=True)
    waves: Dict[str, np.ndarray] = {}
    lines: Dict[str, List[str]] = {"wav.scp": [], "text": [], "utt2spk": [], "utt2emo": [], "utt2dur": []}
    for i, (utt, spk, emo, n, amp) in enumerate(sorted(utts)):
        ints = _signal(n, amp, i)
        sf.write(str(audio / f"{utt}.wav"), ints, SR, subtype="PCM_16")
        waves[utt] = ints.astype(np.float64) / 32768
        path = os.path.relpath(audio / f"{utt}.wav") if relative else str(audio / f"{utt}.wav")
        lines["wav.scp"].append(f"{utt} {path}")
        lines["text"].append(f"{utt} WORDS OF {utt.upper()}")
        lines["utt2spk"].append(f"{utt} {spk}")
        lines["utt2emo"].append(f"{utt} {emo}")
        lines["utt2dur"].append(f"{utt} {n / SR:.4f}")
    for file, content in lines.items():
        (d / file).write_text("".join(line + "\n" for line in content), encoding="utf-8")
    if emo_segments:
        (d / "emo_segments").write_text("".join(line + "\n" for line in emo_segments), encoding="utf-8")
    return d, waves


def table(path: Path) -> Dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(" ")
        out[key] = value
    return out


def emo_lines(path: Path) -> Dict[str, List[Tuple[float, float, str]]]:
    out: Dict[str, List[Tuple[float, float, str]]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            utt, start, end, emo = line.split()
            out.setdefault(utt, []).append((float(start), float(end), emo))
    return out


def read_int16(path: str) -> np.ndarray:
    data, sr = sf.read(path, dtype="int16")
    assert sr == SR
    return data.astype(np.int64)


def snapshot(d: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


# --------------------------------------------------------------------- audio and intervals
@pytest.mark.parametrize("gap_s", [0.0, 0.01])
def test_intervals_match_the_joined_audio_to_the_sample(tmp_path: Path, gap_s: float) -> None:
    src, waves = make_dir(tmp_path)
    out = tmp_path / "mix"
    report = mix_data_dir(src, out, options=MixOptions(mix_share=2.0, gap_s=gap_s))
    assert report.written and report.mixed == 14 and report.clipped == 0
    gap = int(round(gap_s * SR))
    parts = {k: v.split() for k, v in table(out / "mix_parts").items()}
    wav = table(out / "wav.scp")
    utt2emo, utt2dur, utt2spk = table(out / "utt2emo"), table(out / "utt2dur"), table(out / "utt2spk")
    text = table(out / "text")
    intervals = emo_lines(out / "emo_segments")
    original_emo = {u[0]: u[2] for u in UTTS}
    assert set(intervals) == set(parts)
    for mix, names in parts.items():
        audio = read_int16(wav[mix])
        lengths = [len(waves[p]) for p in names]
        assert len(audio) == sum(lengths) + gap * (len(names) - 1)
        assert round(float(utt2dur[mix]) * SR) == len(audio)
        ivs = intervals[mix]
        assert [e for _, _, e in ivs] == [original_emo[p] for p in names]
        emotional = [original_emo[p] for p in names if original_emo[p] != "neutral"]
        assert utt2emo[mix] == emotional[0] and len(emotional) == 1
        assert text[mix] == " ".join(f"WORDS OF {p.upper()}" for p in names)
        assert mix.startswith(utt2spk[mix] + "-mix-")
        pos = 0
        ref = rms(waves[names[0]])
        levels = []
        for i, (p, (start, end, _)) in enumerate(zip(names, ivs)):
            if i > 0:
                assert not audio[pos:pos + gap].any()  # digital silence between the parts
                pos += gap
            a, b = round(start * SR), round(end * SR)
            assert (a, b) == (pos, pos + len(waves[p]))
            # the part's samples, scaled to the first part's RMS (noise: every frame is active)
            assert active_rms(waves[p]) == pytest.approx(rms(waves[p]), rel=1e-9)
            expected = waves[p] * (ref / rms(waves[p]) if i else 1.0) * 32768
            np.testing.assert_allclose(audio[a:b], expected, atol=1.0)
            levels.append(rms(audio[a:b]))
            pos = b
        assert levels == pytest.approx([levels[0]] * len(levels), rel=2e-3)


def test_trim_db_labels_only_the_emotional_speech(tmp_path: Path) -> None:
    """With trim_db the emotional part's silence before and after its speech is neutral."""
    src, waves = make_dir(tmp_path, utts=(("s1_a1", "s1", "angry", 6400, 0.3), ("s1_n1", "s1", "neutral", 4000, 0.1)))
    # 0.1 s of silence, 0.2 s of speech, 0.1 s of silence (frames of 25 ms = 400 samples)
    quiet = np.zeros(6400, dtype=np.int16)
    quiet[1600:4800] = np.round(waves["s1_a1"][1600:4800] * 32768).astype(np.int16)
    sf.write(str(tmp_path / "audio" / "src" / "s1_a1.wav"), quiet, SR, subtype="PCM_16")
    whole = mix_data_dir(src, tmp_path / "whole", options=MixOptions(mix_share=2.0, patterns=("ne", "en")))
    trimmed = mix_data_dir(src, tmp_path / "trim", options=MixOptions(mix_share=2.0, patterns=("ne", "en"),
                                                                       trim_db=30.0))
    assert whole.mixed == trimmed.mixed == 4
    parts = {k: v.split() for k, v in table(tmp_path / "trim" / "mix_parts").items()}
    plain, trim = emo_lines(tmp_path / "whole" / "emo_segments"), emo_lines(tmp_path / "trim" / "emo_segments")
    for mix, names in parts.items():
        # the audio is the same; the lines still tile the whole utterance, in order
        assert read_int16(table(tmp_path / "trim" / "wav.scp")[mix]).tolist() == \
            read_int16(table(tmp_path / "whole" / "wav.scp")[mix]).tolist()
        assert trim[mix][0][0] == 0.0 and trim[mix][-1][1] == plain[mix][-1][1]
        assert all(a[1] == b[0] for a, b in zip(trim[mix], trim[mix][1:]))
        offset = 0 if names[0] == "s1_a1" else 4000
        emotional = [iv for iv in trim[mix] if iv[2] == "angry"]
        assert [(round(a * SR), round(b * SR)) for a, b, _ in emotional] == [(offset + 1600, offset + 4800)]
        assert [iv for iv in plain[mix] if iv[2] == "angry"][0][:2] == (offset / SR, (offset + 6400) / SR)
    with pytest.raises(ValueError, match="trim range"):
        MixOptions(trim_db=0.0).check()


def test_no_loudness_match_keeps_every_part_level(tmp_path: Path) -> None:
    src, waves = make_dir(tmp_path)
    out = tmp_path / "keep"
    mix_data_dir(src, out, options=MixOptions(mix_share=1.0, match_loudness=False))
    parts = {k: v.split() for k, v in table(out / "mix_parts").items()}
    intervals = emo_lines(out / "emo_segments")
    wav = table(out / "wav.scp")
    for mix, names in parts.items():
        audio = read_int16(wav[mix])
        for p, (start, end, _) in zip(names, intervals[mix]):
            a, b = round(start * SR), round(end * SR)
            np.testing.assert_allclose(audio[a:b], waves[p] * 32768, atol=1.0)  # gain 1


def test_active_rms_ignores_silence_and_pauses() -> None:
    x = np.random.default_rng(0).uniform(-0.2, 0.2, 8000)
    padded = np.concatenate([np.zeros(4000), x, np.zeros(4000), x, np.zeros(801)])
    assert active_rms(padded) == pytest.approx(rms(x), rel=1e-3)
    assert active_rms(np.zeros(1000)) == 0.0 and active_rms(np.zeros(0)) == 0.0
    # frames more than 40 dB below the loudest are not active
    quiet = np.concatenate([x, x * 0.001])
    assert active_rms(quiet) == pytest.approx(rms(x), rel=1e-3)


def test_join_parts_clip_guard() -> None:
    rng = np.random.default_rng(1)
    loud = rng.uniform(-0.9, 0.9, 4000)
    spiky = rng.uniform(-0.01, 0.01, 4000)
    spiky[2000] = 0.5  # a quiet part with one peak: its gain would push the peak far past 1
    joined, bounds, gains, clipped = join_parts([loud, spiky], gap_samples=10)
    assert clipped and bounds == [(0, 4000), (4010, 8010)]
    assert np.abs(joined).max() == pytest.approx(0.99, abs=1e-6)
    np.testing.assert_allclose(joined[:4000], loud * gains[0], atol=1e-6)
    np.testing.assert_allclose(joined[4010:], spiky * gains[1], atol=1e-6)
    assert gains[1] / gains[0] == pytest.approx(active_rms(loud) / active_rms(spiky))
    _, _, gains, clipped = join_parts([spiky, loud])
    assert not clipped and gains[0] == 1.0


def test_clip_guard_is_counted(tmp_path: Path) -> None:
    src, _ = make_dir(tmp_path, [("a_e", "a", "happy", 4000, 0.9), ("a_n", "a", "neutral", 4000, 0.01)])
    # make the neutral part spiky: scaled to the loud first part, its peak would clip
    ints = _signal(4000, 0.01, 5)
    ints[100] = 16000
    sf.write(str(tmp_path / "audio" / "src" / "a_n.wav"), ints, SR, subtype="PCM_16")
    report = mix_data_dir(src, tmp_path / "mix", options=MixOptions(mix_share=1.0, patterns=("en",)))
    assert report.mixed == 2 and report.clipped == 2
    for path in table(tmp_path / "mix" / "wav.scp").values():
        if "-mix-" in path:
            assert np.abs(read_int16(path)).max() == pytest.approx(0.99 * 32768, abs=1.5)


def test_format_samples_is_exact() -> None:
    for n in list(range(0, 20000, 7)) + [16000 * 3600 + 1, 123456789]:
        s = format_samples(n)
        assert round(float(s) * SR) == n
        assert len(s.partition(".")[2]) <= 7
    assert format_samples(16000) == "1" and format_samples(8000) == "0.5" and format_samples(1) == "0.0000625"


# --------------------------------------------------------------------- originals, speakers, labels
def test_same_speaker_only_and_originals_unchanged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src, _ = make_dir(tmp_path, emo_segments=["s1_h1 0.05 0.2 happy"])
    out = tmp_path / "mix"
    with caplog.at_level(logging.INFO):
        report = mix_data_dir(src, out, options=MixOptions(mix_share=1.0))
    assert "can form no mix (no neutral or no emotional utterance): s3" in caplog.text
    # 7 originals -> 7 mixes, shared 4:2 (usable utterances of s1 and s2), largest remainder to s1
    assert report.mixed == 7 and report.originals == 7
    utt2spk = table(out / "utt2spk")
    parts = {k: v.split() for k, v in table(out / "mix_parts").items()}
    assert Counter(utt2spk[m] for m in parts) == {"s1": 5, "s2": 2}
    for mix, names in parts.items():
        assert {utt2spk[p] for p in names} == {utt2spk[mix]}
        assert len(set(names)) == len(names)
        pattern = mix.split("-")[2]
        assert len(names) == len(pattern) and pattern in ("ne", "en", "nen")
    assert not any(m.startswith("s2-mix-nen") for m in parts)  # s2 has one neutral utterance
    for name in ("wav.scp", "text", "utt2spk", "utt2emo", "utt2dur"):
        got = table(out / name)
        for key, value in table(src / name).items():
            assert got[key] == value, name
    assert table(out / "utt2emo")["s1_h1"] == "happy"
    assert not set(emo_lines(out / "emo_segments")) & {u[0] for u in UTTS}  # input intervals dropped
    assert sorted(table(out / "spk2utt")) == ["s1", "s2", "s3"]
    assert any("s1_h1" in names for names in parts.values())  # its intervals were dropped: usable


def test_keep_intervals(tmp_path: Path) -> None:
    src, _ = make_dir(tmp_path, emo_segments=["s1_h1 0.05 0.2 happy"])
    out = tmp_path / "mix"
    mix_data_dir(src, out, options=MixOptions(mix_share=1.0, keep_intervals=True))
    assert emo_lines(out / "emo_segments")["s1_h1"] == [(0.05, 0.2, "happy")]
    assert "s1_h1 0.05 0.2 happy" in (out / "emo_segments").read_text().splitlines()
    parts = table(out / "mix_parts")
    assert parts and not any("s1_h1" in v.split() for v in parts.values())
    assert validate_data_dir(out) == []


def test_speaker_restriction(tmp_path: Path) -> None:
    src, _ = make_dir(tmp_path)
    out = tmp_path / "mix"
    report = mix_data_dir(src, out, options=MixOptions(mix_share=1.0, speakers=("s2",)))
    parts = table(out / "mix_parts")
    # the share counts the originals of the mixed speakers only (s2: 2)
    assert report.mixed == 2 and all(m.startswith("s2-mix-") for m in parts)
    assert {u[0] for u in UTTS} <= set(table(out / "text"))  # everyone's originals are copied
    with pytest.raises(ValueError, match="speaker 'nobody' of the speaker restriction"):
        mix_data_dir(src, tmp_path / "mix2", options=MixOptions(speakers=("nobody",)))


def test_mix_share_and_max_duration(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src, _ = make_dir(tmp_path)
    assert mix_data_dir(src, tmp_path / "m0", options=MixOptions(mix_share=0.0)).mixed == 0
    assert not (tmp_path / "m0" / "emo_segments").exists()
    assert len(table(tmp_path / "m0" / "text")) == 7
    assert mix_data_dir(src, tmp_path / "m1", options=MixOptions(mix_share=0.5)).mixed == 4  # round(3.5) up
    # 0.6 s: s1's longest two (6000 + 5000 samples) cannot be joined, nor anything with 3 parts
    with caplog.at_level(logging.INFO):
        report = mix_data_dir(src, tmp_path / "m2", options=MixOptions(mix_share=3.0, max_duration=0.6))
    assert report.mixed + report.skipped == 21
    durations = [float(v) for k, v in table(tmp_path / "m2" / "utt2dur").items() if "-mix-" in k]
    assert len(durations) == report.mixed > 0 and max(durations) <= 0.6
    assert not any("-nen-" in k for k in table(tmp_path / "m2" / "mix_parts"))
    # 0.4 s: no pair fits
    with caplog.at_level(logging.INFO):
        report = mix_data_dir(src, tmp_path / "m3", options=MixOptions(max_duration=0.4))
    assert report.mixed == 0 and "fit in no mix of at most 0.4 s" in caplog.text


def test_plan_uses_each_utterance_equally_and_redraws() -> None:
    utts = [f"a{i}" for i in range(8)]
    utt2spk = {u: "a" for u in utts}
    utt2emo = {u: "neutral" if i < 4 else "happy" for i, u in enumerate(utts)}
    lengths = {u: SR for u in utts}
    plan = plan_mixes(utt2spk, utt2emo, lengths, MixOptions(mix_share=2.0, patterns=("ne",)))
    assert len(plan.mixes) == 16
    use = Counter(p for m in plan.mixes for p in m.parts)
    assert set(use.values()) == {4}
    assert len({m.parts for m in plan.mixes}) > 4  # not the same 4 pairs over and over
    # weights: nen only where allowed
    plan = plan_mixes(utt2spk, utt2emo, lengths, MixOptions(patterns=("ne", "nen"), pattern_weights=(0, 1)))
    assert {m.pattern for m in plan.mixes} == {"nen"}
    # max duration: the 3 s neutral fits nowhere; two 2 s parts do not fit together (redrawn or skipped)
    lengths = {u: SR * (3 if u == "a0" else 2 if u in ("a1", "a5") else 1) for u in utts}
    plan = plan_mixes(utt2spk, utt2emo, lengths, MixOptions(mix_share=4.0, patterns=("ne",), max_duration=3.5))
    assert plan.too_long == 1 and len(plan.mixes) + plan.skipped == 32
    assert all(sum(lengths[p] for p in m.parts) <= 3.5 * SR for m in plan.mixes)
    assert not any("a0" in m.parts for m in plan.mixes)
    # deterministic, and the seed matters
    a = plan_mixes(utt2spk, utt2emo, lengths, MixOptions(seed=3))
    assert a == plan_mixes(utt2spk, utt2emo, lengths, MixOptions(seed=3))
    assert a.mixes != plan_mixes(utt2spk, utt2emo, lengths, MixOptions(seed=4)).mixes


@pytest.mark.parametrize("bad", [
    dict(mix_share=-1), dict(patterns=("nn",)), dict(patterns=("ne", "ne")), dict(pattern_weights=(1, 2)),
    dict(pattern_weights=(0, 0, 0)), dict(max_duration=0), dict(gap_s=-0.1), dict(neutral="calm"), dict(seed=-1),
])
def test_bad_options(tmp_path: Path, bad: dict) -> None:
    src, _ = make_dir(tmp_path)
    with pytest.raises(ValueError):
        mix_data_dir(src, tmp_path / "mix", options=MixOptions(**bad))
    assert not (tmp_path / "mix").exists()


# --------------------------------------------------------------------- validity, paths, determinism
@pytest.mark.parametrize("with_segments", [False, True])
def test_output_passes_the_validator(tmp_path: Path, with_segments: bool) -> None:
    src = make_data_dir(tmp_path, 12, with_segments=with_segments)
    out = tmp_path / "mix"
    report = mix_data_dir(src, out, options=MixOptions(gap_s=0.05))
    assert report.mixed == 6
    assert [str(p) for p in validate_data_dir(out)] == []
    assert (out / "segments").is_file() == with_segments
    data = DataDir.load(out)
    for mix in table(out / "mix_parts"):
        assert len(data.load_audio(mix)) == round(data.utt2dur[mix] * SR)
    # the originals are read from their original audio
    np.testing.assert_array_equal(data.load_audio("utt001"), DataDir.load(src).load_audio("utt001"))


def test_relative_paths_stay_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    src, _ = make_dir(Path("."), relative=True)
    mix_data_dir(Path("src"), Path("out/mix"), options=MixOptions(mix_share=1.0))
    wav = table(Path("out/mix/wav.scp"))
    assert all(not os.path.isabs(p) for p in wav.values())
    mix = next(iter(table(Path("out/mix/mix_parts"))))
    assert wav[mix] == f"out/mix/wav/{mix}.wav"
    assert validate_data_dir("out/mix") == []
    # an absolute input gives absolute paths, also for an external audio dir
    src_abs, _ = make_dir(tmp_path, name="src_abs")
    mix_data_dir(src_abs, Path("mix_abs"), Path("wavs"), MixOptions(mix_share=1.0))
    wav = table(tmp_path / "mix_abs" / "wav.scp")
    mix = next(iter(table(tmp_path / "mix_abs" / "mix_parts")))
    assert wav[mix] == str(tmp_path / "wavs" / f"{mix}.wav")
    assert validate_data_dir(tmp_path / "mix_abs") == []


def test_deterministic_whatever_nj(tmp_path: Path) -> None:
    src, _ = make_dir(tmp_path)
    out = tmp_path / "mix"
    options = MixOptions(mix_share=2.0, seed=7)
    mix_data_dir(src, out, options=options, nj=1)
    first = snapshot(out)
    assert mix_data_dir(src, out, options=options, nj=2, force=True).written
    assert snapshot(out) == first
    assert any(k.startswith("wav/") for k in first)
    mix_data_dir(src, out, options=MixOptions(mix_share=2.0, seed=8))
    assert snapshot(out)["mix_parts"] != first["mix_parts"]


# --------------------------------------------------------------------- reruns and interruptions
def test_rerun_skips_and_changes_rebuild(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src, _ = make_dir(tmp_path)
    out = tmp_path / "mix"
    assert mix_data_dir(src, out).written
    stamp = (out / ".done").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        assert not mix_data_dir(src, out, nj=2).written  # nj does not change the output
    assert "finished with the same input and options; skipping" in caplog.text
    assert (out / ".done").stat().st_mtime_ns == stamp
    assert mix_data_dir(src, out, force=True).written
    assert mix_data_dir(src, out, options=MixOptions(seed=1)).written  # options changed
    assert not mix_data_dir(src, out, options=MixOptions(seed=1)).written
    (src / "text").write_text((src / "text").read_text().replace("WORDS OF S1_A1", "OTHER WORDS"))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert mix_data_dir(src, out, options=MixOptions(seed=1)).written  # input changed
    assert "out of date (inputs changed)" in caplog.text
    next(p for p in (out / "wav").iterdir()).unlink()  # lost audio is remade
    assert mix_data_dir(src, out, options=MixOptions(seed=1)).written
    assert not mix_data_dir(src, out, options=MixOptions(seed=1)).written


def test_refuses_to_overwrite_what_is_not_its_own(tmp_path: Path) -> None:
    src, _ = make_dir(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "text").write_text("x y\n")
    with pytest.raises(ValueError, match="not written by mix_data_dir"):
        mix_data_dir(src, other)
    assert (other / "text").read_text() == "x y\n"
    assert mix_data_dir(src, other, force=True).written
    with pytest.raises(ValueError, match="would overwrite the input"):
        mix_data_dir(src, src)
    with pytest.raises(ValueError, match="would overwrite the input"):
        mix_data_dir(src, tmp_path)


def test_kill_midway_leaves_nothing_that_looks_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, _ = make_dir(tmp_path)
    out = tmp_path / "mix"
    real = mixing.write_audio
    calls = [0]

    def dying_write(path, wave):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        real(path, wave)

    monkeypatch.setattr(mixing, "write_audio", dying_write)
    with pytest.raises(KeyboardInterrupt):
        mix_data_dir(src, out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "src"]  # no temporary directory left
    monkeypatch.setattr(mixing, "write_audio", real)
    assert mix_data_dir(src, out).written
    # a rebuild killed midway, audio outside the output: the old directory is no longer "finished"
    monkeypatch.setattr(mixing, "write_audio", dying_write)
    calls[0] = 0
    with pytest.raises(KeyboardInterrupt):
        mix_data_dir(src, out, tmp_path / "wav_ext", MixOptions(seed=5))
    assert not (out / ".done").exists()
    monkeypatch.setattr(mixing, "write_audio", real)
    assert mix_data_dir(src, out).written
    assert validate_data_dir(out) == []


# --------------------------------------------------------------------- bad input
def _drop_line(path: Path, key: str) -> None:
    path.write_text("".join(l + "\n" for l in path.read_text().splitlines() if not l.startswith(key + " ")))


def _set_value(path: Path, key: str, value: str) -> None:
    path.write_text("".join((f"{key} {value}" if l.startswith(key + " ") else l) + "\n"
                            for l in path.read_text().splitlines()))


@pytest.mark.parametrize("fault, where, message", [
    ("no_emo", "text:3", "utterance 's1_n1' has no line in utt2emo"),
    ("extra_emo", "utt2emo:8", "utterance 'zz' is not in text"),
    ("unknown_emo", "utt2emo:2", "unknown emotion 'bored' of 's1_h1' (allowed: neutral, happy, angry, sad)"),
    ("missing_audio", "wav.scp:4", "audio file not found"),
    ("unreadable_audio", "wav.scp:4", "unreadable audio"),
    ("rate", "wav.scp:4", "sample rate 8000 Hz, not 16000 Hz"),
    ("malformed", "utt2dur:5", "duration"),
])
def test_bad_input_is_one_line(tmp_path: Path, fault: str, where: str, message: str) -> None:
    src, _ = make_dir(tmp_path)
    wav = tmp_path / "audio" / "src" / "s1_n2.wav"
    if fault == "no_emo":
        _drop_line(src / "utt2emo", "s1_n1")
    elif fault == "extra_emo":
        (src / "utt2emo").write_text((src / "utt2emo").read_text() + "zz happy\n")
    elif fault == "unknown_emo":
        _set_value(src / "utt2emo", "s1_h1", "bored")
    elif fault == "missing_audio":
        wav.unlink()
    elif fault == "unreadable_audio":
        wav.write_bytes(b"not a wav file at all")
    elif fault == "rate":
        sf.write(str(wav), np.zeros(800, dtype=np.int16), 8000, subtype="PCM_16")
    elif fault == "malformed":
        _set_value(src / "utt2dur", "s2_n3", "long")
    with pytest.raises(DataError) as exc:
        mix_data_dir(src, tmp_path / "mix")
    text = str(exc.value)
    assert "\n" not in text
    assert text.startswith(f"{src / where}: ") and message in text
    assert not (tmp_path / "mix").exists()
