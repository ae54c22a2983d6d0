"""DataDir.load: contents, segments, emotion intervals, audio, and file:line errors."""

from pathlib import Path

import numpy as np
import pytest

from datadir_factory import GAP, make_data_dir, replace_line, tone, wav_path
from ent.data.audio import load_audio
from ent.data.datadir import DataDir, EmoInterval, Segment
from ent.utils.errors import DataError


def test_load_good_dir(data_dir_factory):
    d = data_dir_factory()
    dd = DataDir.load(d)
    assert dd.path == d
    assert dd.utt_ids == ["utt001", "utt002", "utt003", "utt004"]
    assert dd.text["utt002"] == "THE CAT SAT ON THE MAT"
    assert dd.utt2spk == {"utt001": "spk1", "utt002": "spk2", "utt003": "spk1", "utt004": "spk2"}
    assert dd.utt2emo == {"utt001": "neutral", "utt002": "happy", "utt003": "angry", "utt004": "sad"}
    assert dd.utt2dur == {"utt001": 1.0, "utt002": 1.25, "utt003": 1.5, "utt004": 1.75}
    assert dd.segments is None
    assert dd.lines["text"]["utt003"] == 3
    assert dd.lines["emo_segments"]["utt003"] == 3  # first line of the utterance
    assert dd.emotion_intervals("utt001") == []
    assert dd.emotion_intervals("utt003") == [EmoInterval(0.1, 0.4, "angry"), EmoInterval(0.5, 0.9, "angry")]
    assert dd.audio_entry("utt002") == (str(wav_path(d, "utt002")), None, None)


def test_factory_fixture_makes_separate_dirs(data_dir_factory, tmp_path):
    a, b = data_dir_factory(), data_dir_factory(2, with_segments=True)
    assert (a, b) == (tmp_path / "data", tmp_path / "data1")
    assert DataDir.load(a).utt_ids == ["utt001", "utt002", "utt003", "utt004"]
    assert sorted(DataDir.load(b).segments) == ["utt001", "utt002"]
    assert data_dir_factory(name="x") == tmp_path / "x"


def test_load_audio_without_segments(tmp_path):
    d = make_data_dir(tmp_path)
    wave = DataDir.load(d).load_audio("utt003")
    assert wave.dtype == np.float32 and wave.shape == (24000,)
    np.testing.assert_allclose(wave, tone(1.5, 16000, 400.0, seed=2), atol=1 / 32768)


def test_segments(tmp_path):
    d = make_data_dir(tmp_path, with_segments=True)
    dd = DataDir.load(d)
    # rec02 = gap, utt003 (1.5 s), gap, utt004 (1.75 s), gap
    assert dd.segments["utt003"] == Segment("rec02", GAP, GAP + 1.5)
    assert dd.segments["utt004"] == Segment("rec02", 2 * GAP + 1.5, 2 * GAP + 3.25)
    assert dd.audio_entry("utt004") == (str(wav_path(d, "rec02")), 1.7, 3.45)
    assert sorted(dd.wav_scp) == ["rec01", "rec02"]


def test_load_audio_through_segments_equals_slicing(tmp_path):
    d = make_data_dir(tmp_path, with_segments=True)
    dd = DataDir.load(d)
    full = load_audio(str(wav_path(d, "rec02")))
    np.testing.assert_array_equal(dd.load_audio("utt003"), full[1600:1600 + 24000])
    np.testing.assert_array_equal(dd.load_audio("utt004"), full[27200:27200 + 28000])
    np.testing.assert_allclose(dd.load_audio("utt004"), tone(1.75, 16000, 500.0, seed=3), atol=1 / 32768)


def test_segment_to_end_of_recording(tmp_path):
    d = make_data_dir(tmp_path, 2, with_segments=True, utt2dur=None,
                      segments="utt001 rec01 0.1000 1.1000\nutt002 rec01 1.2000 -1\n")
    dd = DataDir.load(d)
    full = load_audio(str(wav_path(d, "rec01")))
    np.testing.assert_array_equal(dd.load_audio("utt002"), full[19200:])


def test_emo_intervals_are_sorted_by_start(tmp_path):
    d = make_data_dir(tmp_path, emo_segments="utt002 0.50 0.90 happy\nutt002 0.10 0.40 sad\n")
    assert DataDir.load(d).emotion_intervals("utt002") == [
        EmoInterval(0.1, 0.4, "sad", 2), EmoInterval(0.5, 0.9, "happy", 1)
    ]


def test_empty_transcript_needs_allow_empty_text(tmp_path):
    d = make_data_dir(tmp_path, text=lambda lines: lines[:1] + ["utt002"] + lines[2:])
    with pytest.raises(DataError) as err:
        DataDir.load(d)
    assert str(err.value) == f"{d}/text:2: 'utt002' has no value"
    assert DataDir.load(d, allow_empty_text=True).text["utt002"] == ""


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("overrides,where,message", [
    ({"utt2spk": lambda l: l[:2] + [l[1]] + l[2:]}, "utt2spk:3", "duplicate key 'utt002' (first on line 2)"),
    ({"text": lambda l: l[:1] + [""] + l[1:]}, "text:2", "blank line"),
    ({"text": b"utt001 A\nutt002 \xe9\n"}, "text:2", "not valid UTF-8 (byte 0xe9)"),
    ({"wav_scp": replace_line(2, "utt002 cat x.wav |")}, "wav.scp:2",
     "piped commands are not supported; convert the audio to files first"),
    ({"utt2dur": replace_line(3, "utt003 abc")}, "utt2dur:3", "duration 'abc' is not a number"),
    ({"utt2dur": replace_line(3, "utt003 0")}, "utt2dur:3", "duration 0 is not positive"),
    ({"emo_segments": replace_line(2, "utt002 0.30 0.90 happy")}, "emo_segments:2",
     "interval of 'utt002' overlaps the one on line 1"),
    ({"emo_segments": replace_line(2, "utt002 0.9 0.5 happy")}, "emo_segments:2", "invalid interval 0.9-0.5"),
    ({"emo_segments": replace_line(2, "utt002 0.5 happy")}, "emo_segments:2",
     "expected '<utt> <start> <end> <emotion>'"),
    ({"utt2emo": None}, "utt2emo", "required file not found"),
])
def test_errors_name_file_and_line(tmp_path, overrides, where, message):
    d = make_data_dir(tmp_path, **overrides)
    with pytest.raises(DataError) as err:
        DataDir.load(d)
    assert str(err.value) == f"{d}/{where}: {message}"


@pytest.mark.parametrize("line,message", [
    ("utt002 rec01 1.2", "expected '<utt> <recording> <start> <end>'"),
    ("utt002 rec01 x 2.45", "start 'x' is not a number"),
    ("utt002 rec01 1.2 inf", "end 'inf' is not finite"),
    ("utt002 rec01 2.0 1.2", "invalid interval 2.0-1.2"),
    ("utt002 rec01 -0.5 1.2", "invalid interval -0.5-1.2"),
])
def test_segments_errors(tmp_path, line, message):
    d = make_data_dir(tmp_path, with_segments=True, segments=replace_line(2, line))
    with pytest.raises(DataError) as err:
        DataDir.load(d)
    assert str(err.value) == f"{d}/segments:2: {message}"


def test_missing_dir(tmp_path):
    with pytest.raises(DataError) as err:
        DataDir.load(tmp_path / "nope")
    assert str(err.value) == f"{tmp_path}/nope: data directory not found"


def test_missing_audio_names_wav_scp_line(tmp_path):
    d = make_data_dir(tmp_path)
    wav = str(wav_path(d, "utt002"))
    Path(wav).unlink()
    dd = DataDir.load(d)  # headers are not read on load
    with pytest.raises(DataError) as err:
        dd.load_audio("utt002")
    assert str(err.value) == f"{d}/wav.scp:2: audio file not found ({wav})"


def test_corrupt_audio_names_wav_scp_line(tmp_path):
    d = make_data_dir(tmp_path, with_segments=True)
    wav = str(wav_path(d, "rec02"))
    Path(wav).write_bytes(b"\x00" * 100)
    with pytest.raises(DataError) as err:
        DataDir.load(d).load_audio("utt004")
    text = str(err.value)
    assert text.startswith(f"{d}/wav.scp:2: unreadable audio: ") and text.endswith(f" ({wav})")
    assert "\n" not in text


def test_unknown_utterance(tmp_path):
    d = make_data_dir(tmp_path, with_segments=True)
    with pytest.raises(DataError) as err:
        DataDir.load(d).audio_entry("utt009")
    assert str(err.value) == f"{d}/segments: utterance 'utt009' not found"
