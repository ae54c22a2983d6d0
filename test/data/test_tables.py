"""The line parsers of ent.data.tables, and that the data layer, the validator and
the scorer report a bad line of a table in the same words (file, line, message)."""

from pathlib import Path

import pytest

from datadir_factory import make_data_dir, replace_line
from ent.data.datadir import DataDir
from ent.data.tables import (
    EmoInterval,
    Segment,
    overlapping_intervals,
    parse_duration,
    parse_emo_interval,
    parse_float,
    parse_segment,
    parse_wav_scp,
)
from ent.data.validate import scan_data_dir
from ent.scoring.diarization import read_emo_segments, read_utt2dur
from ent.utils.errors import DataError


def message_of(call) -> str:
    with pytest.raises(DataError) as info:
        call()
    return str(info.value)


def test_parsers_name_file_and_line() -> None:
    path = Path("d/emo_segments")
    assert parse_float(path, 3, "start", "0.5") == 0.5
    assert message_of(lambda: parse_float(path, 3, "start", "x")) == "d/emo_segments:3: start 'x' is not a number"
    assert message_of(lambda: parse_float(path, 3, "end", "inf")) == "d/emo_segments:3: end 'inf' is not finite"
    assert parse_emo_interval(path, 2, "0.1 0.4 happy") == EmoInterval(0.1, 0.4, "happy", 2)
    assert parse_emo_interval(path, 2, "0.1 0.4 happy").lineno == 2
    assert message_of(lambda: parse_emo_interval(path, 2, "0.4 0.1 happy")).endswith(":2: invalid interval 0.4-0.1")
    assert "expected '<utt> <start> <end> <emotion>'" in message_of(lambda: parse_emo_interval(path, 2, "0.1 0.4"))
    assert parse_segment(Path("segments"), 1, "rec 0.5 -1") == Segment("rec", 0.5, -1.0)
    assert message_of(lambda: parse_segment(Path("segments"), 1, "rec 0.5 0.2")) == (
        "segments:1: invalid interval 0.5-0.2"
    )
    assert parse_duration(Path("utt2dur"), 4, "1.25") == 1.25
    assert message_of(lambda: parse_duration(Path("utt2dur"), 4, "0")) == "utt2dur:4: duration 0 is not positive"
    assert parse_wav_scp(Path("wav.scp"), 1, "/a.wav") == "/a.wav"
    assert "piped commands are not supported" in message_of(lambda: parse_wav_scp(Path("wav.scp"), 1, "sox a - |"))


def test_overlapping_intervals_in_start_order() -> None:
    a, b, c = EmoInterval(0.5, 0.9, "sad", 1), EmoInterval(0.0, 0.6, "happy", 2), EmoInterval(0.9, 1.0, "sad", 3)
    assert overlapping_intervals([a, b, c]) == [(b, a)]
    assert [(x.lineno, y.lineno) for x, y in overlapping_intervals([a, b, c])] == [(2, 1)]
    touching = [EmoInterval(0.0, 0.5, "happy", 1), EmoInterval(0.5 - 1e-12, 0.9, "sad", 2)]
    assert overlapping_intervals(touching) != []
    assert overlapping_intervals(touching, eps=1e-9) == []


@pytest.mark.parametrize("bad_line, message", [
    ("utt001 0.40 0.10 happy", "invalid interval 0.40-0.10"),
    ("utt001 0.10 x happy", "end 'x' is not a number"),
    ("utt001 0.10 0.40", "expected '<utt> <start> <end> <emotion>'"),
])
def test_one_message_for_a_bad_emo_segments_line(tmp_path, bad_line: str, message: str) -> None:
    d = make_data_dir(tmp_path, emo_segments=replace_line(1, bad_line))
    where = f"{d / 'emo_segments'}:1: "
    assert message_of(lambda: DataDir.load(d)) == where + message
    assert message_of(lambda: read_emo_segments(d / "emo_segments")) == where + message
    problems = [str(p) for p in scan_data_dir(d, check_audio=False).problems]
    assert where + message in problems


def test_one_message_for_a_bad_utt2dur_line(tmp_path) -> None:
    d = make_data_dir(tmp_path, utt2dur=replace_line(2, "utt002 -1"))
    expected = f"{d / 'utt2dur'}:2: duration -1 is not positive"
    assert message_of(lambda: DataDir.load(d)) == expected
    assert message_of(lambda: read_utt2dur(d / "utt2dur")) == expected
    assert expected in [str(p) for p in scan_data_dir(d, check_audio=False).problems]
