"""Tests of speed perturbation."""

import numpy as np
import pytest

from ent.bin.speed_perturb_data_dir import main
from ent.data.audio import load_audio, write_audio
from ent.data.datadir import DataDir
from ent.data.speed_perturb import factor_prefix, speed_change, speed_perturb_data_dir
from ent.data.validate import validate_data_dir

SR = 16000


def _make_data_dir(root, with_segments=False):
    """Two utterances (1.0 s and 0.5 s of a 440 Hz tone), one with emotion intervals."""
    d = root / "src"
    d.mkdir()
    t = np.arange(int(1.5 * SR)) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    if with_segments:
        write_audio(root / "rec.wav", tone)
        (d / "wav.scp").write_text(f"rec {root / 'rec.wav'}\n", encoding="utf-8")
        (d / "segments").write_text("a rec 0 1.0\nb rec 1.0 1.5\n", encoding="utf-8")
    else:
        write_audio(root / "a.wav", tone[:SR])
        write_audio(root / "b.wav", tone[SR:])
        (d / "wav.scp").write_text(f"a {root / 'a.wav'}\nb {root / 'b.wav'}\n", encoding="utf-8")
    (d / "text").write_text("a hello there\nb good bye\n", encoding="utf-8")
    (d / "utt2spk").write_text("a s1\nb s2\n", encoding="utf-8")
    (d / "utt2emo").write_text("a happy\nb neutral\n", encoding="utf-8")
    (d / "utt2dur").write_text("a 1.0\nb 0.5\n", encoding="utf-8")
    (d / "emo_segments").write_text("a 0.2 0.5 happy\na 0.6 0.99 angry\n", encoding="utf-8")
    return d


@pytest.mark.parametrize("with_segments", [False, True])
def test_perturbed_dir(tmp_path, with_segments):
    src = _make_data_dir(tmp_path, with_segments)
    dst = tmp_path / "train_sp"
    assert speed_perturb_data_dir(src, dst, tmp_path / "wav_sp")
    assert [str(p) for p in validate_data_dir(dst)] == []
    assert (dst.stat().st_mode & 0o777) == (src.stat().st_mode & 0o777)
    out = DataDir.load(dst)
    expected = sorted(f"{p}{u}" for p in ("sp0.9-", "sp1.0-", "sp1.1-") for u in ("a", "b"))
    assert out.utt_ids == expected
    assert (dst / "text").read_text(encoding="utf-8").splitlines()[0].startswith("sp0.9-a ")
    assert [line.split()[0] for line in (dst / "wav.scp").read_text(encoding="utf-8").splitlines()] == expected
    for f in (0.9, 1.0, 1.1):
        p = factor_prefix(f)
        for utt, dur in (("a", 1.0), ("b", 0.5)):
            key = p + utt
            assert out.text[key] == {"a": "hello there", "b": "good bye"}[utt]
            assert out.utt2emo[key] == {"a": "happy", "b": "neutral"}[utt]
            assert out.utt2spk[key] == p + {"a": "s1", "b": "s2"}[utt]
            assert out.utt2dur[key] == pytest.approx(dur / f, abs=2e-4)
            assert len(out.load_audio(key)) / SR == pytest.approx(out.utt2dur[key], abs=1e-4)
        ivs = out.emotion_intervals(p + "a")
        assert [(iv.start, iv.end, iv.emotion) for iv in ivs] == [
            (pytest.approx(0.2 / f, abs=1e-4), pytest.approx(0.5 / f, abs=1e-4), "happy"),
            (pytest.approx(0.6 / f, abs=1e-4), pytest.approx(min(0.99 / f, out.utt2dur[p + "a"]), abs=1e-4),
             "angry"),
        ]
        assert out.emotion_intervals(p + "b") == []
    assert not (dst / "segments").exists()
    # factor 1.0 keeps the audio (up to 16-bit quantization)
    np.testing.assert_allclose(out.load_audio("sp1.0-b"), DataDir.load(src).load_audio("b"), atol=1e-4)


def test_speed_change_shifts_pitch():
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    fast = speed_change(tone, 1.1)
    assert len(fast) == pytest.approx(SR / 1.1, abs=1)
    spectrum = np.abs(np.fft.rfft(fast))
    peak_hz = np.argmax(spectrum) * SR / len(fast)
    assert peak_hz == pytest.approx(1100, abs=5)
    with pytest.raises(ValueError):
        speed_change(tone, 0.0)
    with pytest.raises(ValueError, match="whole number"):
        speed_change(tone, 1 / 3)


def test_skip_and_force(tmp_path, caplog):
    src = _make_data_dir(tmp_path)
    dst = tmp_path / "sp"
    speed_perturb_data_dir(src, dst, tmp_path / "wav", factors=(0.9,))
    assert DataDir.load(dst).utt_ids == ["sp0.9-a", "sp0.9-b"]
    assert not speed_perturb_data_dir(src, dst, tmp_path / "wav", factors=(0.9, 1.1))
    assert DataDir.load(dst).utt_ids == ["sp0.9-a", "sp0.9-b"]
    main(["--src", str(src), "--dst", str(dst), "--audio-dir", str(tmp_path / "wav"),
          "--factors", "1.1", "--force"])
    assert DataDir.load(dst).utt_ids == ["sp1.1-a", "sp1.1-b"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sp.")]  # no temporary dir left


def test_failure_leaves_no_output(tmp_path, caplog):
    src = _make_data_dir(tmp_path)
    (tmp_path / "b.wav").unlink()
    dst = tmp_path / "sp"
    with pytest.raises(SystemExit):
        main(["--src", str(src), "--dst", str(dst), "--audio-dir", str(tmp_path / "wav")])
    assert "wav.scp:2" in caplog.text
    assert not dst.exists()


def test_parallel_equals_serial(tmp_path):
    src = _make_data_dir(tmp_path)
    speed_perturb_data_dir(src, tmp_path / "s1", tmp_path / "w1", factors=(0.9, 1.1))
    speed_perturb_data_dir(src, tmp_path / "s2", tmp_path / "w2", factors=(0.9, 1.1), nj=2)
    for name in ("text", "utt2dur", "utt2spk", "emo_segments"):
        assert (tmp_path / "s1" / name).read_text() == (tmp_path / "s2" / name).read_text()
    np.testing.assert_array_equal(load_audio(tmp_path / "w1" / "sp0.9-a.wav"),
                                  load_audio(tmp_path / "w2" / "sp0.9-a.wav"))
