"""The bad-input suite: each case breaks one thing in a valid data directory and
checks the exact one-line problem (file, line, message) the validator reports."""

import re
from typing import List

import numpy as np
import pytest
import soundfile as sf

from datadir_factory import make_data_dir, replace_line, wav_path, write_tone
from ent.data.datadir import DataDir
from ent.data.validate import Problem, Severity, scan_data_dir, validate_data_dir

ALLOWED = "(allowed: neutral, happy, angry, sad)"


def lines_of(problems: List[Problem]) -> List[str]:
    return [str(p) for p in problems]


# ------------------------------------------------------------------ good dirs
@pytest.mark.parametrize("with_segments", [False, True])
def test_good_dir_has_no_problems(tmp_path, with_segments):
    d = make_data_dir(tmp_path, 5, with_segments=with_segments)
    assert validate_data_dir(d) == []
    assert validate_data_dir(d, check_audio=False) == []
    DataDir.load(d)  # and the strict loader agrees


def test_good_dir_without_optional_files(tmp_path):
    d = make_data_dir(tmp_path, emo_segments=None, utt2dur=None)
    assert validate_data_dir(d) == []


# ------------------------------------------------------------------ audio
def test_missing_audio(tmp_path):
    d = make_data_dir(tmp_path)
    wav = wav_path(d, "utt002")
    wav.unlink()
    assert lines_of(validate_data_dir(d)) == [f"{d}/wav.scp:2: audio file not found ({wav})"]
    assert validate_data_dir(d, check_audio=False) == []


@pytest.mark.parametrize("corruption", ["random bytes", "truncated header", "empty file"])
def test_corrupt_audio(tmp_path, corruption):
    d = make_data_dir(tmp_path)
    wav = wav_path(d, "utt003")
    if corruption == "random bytes":
        wav.write_bytes(np.random.default_rng(0).bytes(5000))
    elif corruption == "truncated header":
        wav.write_bytes(wav.read_bytes()[:30])
    else:
        wav.write_bytes(b"")
    problems = validate_data_dir(d)
    assert len(problems) == 1
    # The middle part is libsndfile's own wording.
    pattern = re.escape(f"{d}/wav.scp:3: unreadable audio: ") + r"[^\n]+" + re.escape(f" ({wav})")
    assert re.fullmatch(pattern, str(problems[0]))
    assert problems[0].is_error


def test_audio_without_samples(tmp_path):
    d = make_data_dir(tmp_path)
    wav = wav_path(d, "utt001")
    sf.write(str(wav), np.zeros(0, dtype=np.float32), 16000)
    assert lines_of(validate_data_dir(d)) == [f"{d}/wav.scp:1: audio file is empty ({wav})"]


def test_8khz_audio_is_a_warning_and_loads_at_16khz(tmp_path):
    d = make_data_dir(tmp_path)
    wav = wav_path(d, "utt002")
    write_tone(wav, 1.25, sample_rate=8000)
    problems = validate_data_dir(d)
    assert lines_of(problems) == [
        f"{d}/wav.scp:2: warning: 8000 Hz audio will be resampled to 16000 Hz on load ({wav})"
    ]
    assert problems[0].severity == Severity.WARNING and not problems[0].is_error
    assert DataDir.load(d).load_audio("utt002").shape == (20000,)


def test_expected_sample_rate_is_configurable(tmp_path):
    d = make_data_dir(tmp_path, sample_rate=8000, utt2dur=None)
    assert validate_data_dir(d, sample_rate=8000) == []
    assert len(validate_data_dir(d)) == 4


def test_stereo_audio_is_a_warning_and_is_downmixed(tmp_path):
    d = make_data_dir(tmp_path)
    wav = wav_path(d, "utt004")
    written = write_tone(wav, 1.75, channels=2)
    problems = validate_data_dir(d)
    assert lines_of(problems) == [
        f"{d}/wav.scp:4: warning: 2-channel audio will be down-mixed to mono on load ({wav})"
    ]
    assert problems[0].severity == Severity.WARNING
    stored, _ = sf.read(str(wav), dtype="float32")
    loaded = DataDir.load(d).load_audio("utt004")
    np.testing.assert_allclose(loaded, stored.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(loaded, written.mean(axis=1), atol=1e-4)


def test_piped_command_in_wav_scp(tmp_path):
    d = make_data_dir(tmp_path, wav_scp=replace_line(1, "utt001 sox a.wav -t wav - |"))
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/wav.scp:1: piped commands are not supported; convert the audio to files first"
    ]


# ------------------------------------------------------------------ file format
def test_unsorted_file_reports_first_out_of_order_line(tmp_path):
    d = make_data_dir(tmp_path, 5, text=lambda lines: [lines[1], lines[0], lines[3], lines[2], lines[4]])
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/text:2: not sorted: 'utt001' comes after 'utt002' (sort with LC_ALL=C)"
    ]


def _rename_keys(lines: List[str], old: str, new: str) -> List[str]:
    return [new + line[len(old):] if line.split()[0] == old else line for line in lines]


@pytest.mark.parametrize("locale_order", [False, True])
def test_sort_order_is_c_locale_byte_order(tmp_path, locale_order):
    # 'UTT003' sorts before 'utt001' in byte order, after 'utt002' in a
    # case-insensitive (dictionary) order.
    def edit(lines: List[str]) -> List[str]:
        lines = _rename_keys(lines, "utt003", "UTT003")
        if locale_order:
            return sorted(lines, key=lambda s: s.split()[0].lower())
        return sorted(lines, key=lambda s: s.split()[0])

    files = ["wav_scp", "text", "utt2spk", "utt2emo", "emo_segments", "utt2dur"]
    d = make_data_dir(tmp_path, **{f: edit for f in files})
    problems = lines_of(validate_data_dir(d))
    if locale_order:
        assert problems[0] == f"{d}/wav.scp:3: not sorted: 'UTT003' comes after 'utt002' (sort with LC_ALL=C)"
        assert len(problems) == len(files)
    else:
        assert problems == []


def test_blank_line(tmp_path):
    d = make_data_dir(tmp_path, text=lambda lines: lines[:2] + [""] + lines[2:])
    assert lines_of(validate_data_dir(d)) == [f"{d}/text:3: blank line"]


def test_whitespace_only_line_is_blank(tmp_path):
    d = make_data_dir(tmp_path, utt2spk=lambda lines: lines + ["  \t "])
    assert lines_of(validate_data_dir(d)) == [f"{d}/utt2spk:5: blank line"]


def test_non_utf8_text_names_the_line(tmp_path):
    content = "utt001 HELLO\n".encode() + b"utt002 CAF\xc9 AU LAIT\n" + b"utt003 ONE\nutt004 TWO\n"
    d = make_data_dir(tmp_path, text=content)
    # Only the bad line: utt002 is not reported as missing from text on top.
    assert lines_of(validate_data_dir(d)) == [f"{d}/text:2: not valid UTF-8 (byte 0xc9)"]


def test_every_non_utf8_line_is_reported(tmp_path):
    content = b"utt001 \xff\nutt002 A\nutt003 B\xfe\nutt004 C\n"
    d = make_data_dir(tmp_path, text=content)
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/text:1: not valid UTF-8 (byte 0xff)",
        f"{d}/text:3: not valid UTF-8 (byte 0xfe)",
    ]


def test_utf8_transcripts_and_bom_are_fine(tmp_path):
    d = make_data_dir(
        tmp_path, text=lambda lines: ["\ufeff" + lines[0]] + [line + " CAFÉ 你好" for line in lines[1:]]
    )
    assert validate_data_dir(d) == []


def test_duplicate_key_same_value(tmp_path):
    d = make_data_dir(tmp_path, utt2spk=lambda lines: lines[:2] + [lines[1]] + lines[2:])
    assert lines_of(validate_data_dir(d)) == [f"{d}/utt2spk:3: duplicate key 'utt002' (first on line 2)"]


def test_duplicate_key_different_value(tmp_path):
    d = make_data_dir(tmp_path, utt2emo=lambda lines: lines[:2] + ["utt002 sad"] + lines[2:])
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/utt2emo:3: duplicate key 'utt002' (first on line 2) with a different value"
    ]


def test_missing_value(tmp_path):
    d = make_data_dir(tmp_path, utt2spk=replace_line(2, "utt002"))
    assert lines_of(validate_data_dir(d)) == [f"{d}/utt2spk:2: 'utt002' has no value"]


# ------------------------------------------------------------------ ids
def test_utterance_missing_from_one_file(tmp_path):
    d = make_data_dir(tmp_path, utt2emo=lambda lines: lines[:2] + lines[3:])
    assert lines_of(validate_data_dir(d)) == [f"{d}/text:3: utterance 'utt003' is missing from utt2emo"]


def test_utterance_only_in_one_file(tmp_path):
    d = make_data_dir(tmp_path, utt2spk=lambda lines: lines + ["utt009 spk1"])
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/utt2spk:5: utterance 'utt009' is missing from text, utt2emo, utt2dur, wav.scp"
    ]


def test_recording_without_utterance(tmp_path):
    d = make_data_dir(tmp_path)
    path = wav_path(d, "utt004")
    with open(d / "wav.scp", "a") as fh:
        fh.write(f"utt009 {path}\n")
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/wav.scp:5: utterance 'utt009' is missing from text, utt2spk, utt2emo, utt2dur"
    ]


def test_segments_recording_missing_from_wav_scp(tmp_path):
    d = make_data_dir(tmp_path, with_segments=True, wav_scp=lambda lines: lines[:1])
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/segments:3: recording 'rec02' of 'utt003' not found in wav.scp",
        f"{d}/segments:4: recording 'rec02' of 'utt004' not found in wav.scp",
    ]


def test_unused_recording_is_a_warning(tmp_path):
    d = make_data_dir(tmp_path, with_segments=True)
    path = wav_path(d, "rec01")
    with open(d / "wav.scp", "a") as fh:
        fh.write(f"rec09 {path}\n")
    problems = validate_data_dir(d)
    assert lines_of(problems) == [f"{d}/wav.scp:3: warning: recording 'rec09' is not used by any segment"]


def test_emo_segments_of_unknown_utterance(tmp_path):
    d = make_data_dir(tmp_path, emo_segments=lambda lines: lines + ["utt009 0.1 0.2 sad"])
    assert lines_of(validate_data_dir(d)) == [f"{d}/emo_segments:7: utterance 'utt009' not found in text"]


@pytest.mark.parametrize("name", ["wav.scp", "text", "utt2spk", "utt2emo"])
def test_required_file_missing(tmp_path, name):
    d = make_data_dir(tmp_path, **{name.replace(".", "_"): None})
    problems = lines_of(validate_data_dir(d))
    assert problems[0] == f"{d}/{name}: required file not found"
    if name == "text":  # the others name the utterances' files; nothing else is wrong
        assert problems == [problems[0]]


def test_data_dir_not_found(tmp_path):
    assert lines_of(validate_data_dir(tmp_path / "nope")) == [f"{tmp_path}/nope: data directory not found"]


# ------------------------------------------------------------------ values
def test_empty_transcript(tmp_path):
    d = make_data_dir(tmp_path, text=replace_line(3, "utt003   "))
    assert lines_of(validate_data_dir(d)) == [f"{d}/text:3: empty transcript for 'utt003'"]


def test_unknown_emotion_in_utt2emo(tmp_path):
    d = make_data_dir(tmp_path, utt2emo=replace_line(2, "utt002 bored"))
    assert lines_of(validate_data_dir(d)) == [f"{d}/utt2emo:2: unknown emotion 'bored' of 'utt002' {ALLOWED}"]


def test_unknown_emotion_in_emo_segments(tmp_path):
    d = make_data_dir(tmp_path, emo_segments=replace_line(3, "utt003 0.10 0.40 furious"))
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/emo_segments:3: unknown emotion 'furious' of 'utt003' {ALLOWED}"
    ]


def test_emotion_set_is_configurable(tmp_path):
    emotions = ("neutral", "bored", "excited")
    d = make_data_dir(tmp_path, emotions=emotions)
    assert validate_data_dir(d, emotions=emotions) == []
    problems = lines_of(validate_data_dir(d))
    assert problems[0] == f"{d}/utt2emo:2: unknown emotion 'bored' of 'utt002' {ALLOWED}"
    assert lines_of(validate_data_dir(d, emotions=("neutral", "bored"))) == [
        f"{d}/utt2emo:3: unknown emotion 'excited' of 'utt003' (allowed: neutral, bored)",
        f"{d}/emo_segments:3: unknown emotion 'excited' of 'utt003' (allowed: neutral, bored)",
        f"{d}/emo_segments:4: unknown emotion 'excited' of 'utt003' (allowed: neutral, bored)",
    ]


def test_interval_past_the_end_of_the_utterance(tmp_path):
    # utt002 lasts 1.25 s; 10 ms of slack is allowed.
    d = make_data_dir(tmp_path, emo_segments=replace_line(2, "utt002 0.50 1.30 happy"))
    expected = [
        f"{d}/emo_segments:2: interval 0.5-1.3 s of 'utt002' ends past the end of the utterance (1.250 s)"
    ]
    assert lines_of(validate_data_dir(d)) == expected
    assert lines_of(validate_data_dir(d, check_audio=False)) == expected  # from utt2dur
    ok = make_data_dir(tmp_path, name="ok", emo_segments=replace_line(2, "utt002 0.50 1.259 happy"))
    assert validate_data_dir(ok) == []


def test_interval_past_the_end_of_a_segment(tmp_path):
    d = make_data_dir(tmp_path, with_segments=True, utt2dur=None,
                      emo_segments=replace_line(4, "utt003 0.50 1.60 angry"))
    expected = [
        f"{d}/emo_segments:4: interval 0.5-1.6 s of 'utt003' ends past the end of the utterance (1.500 s)"
    ]
    assert lines_of(validate_data_dir(d)) == expected
    assert lines_of(validate_data_dir(d, check_audio=False)) == expected  # from segments


def test_negative_interval_start(tmp_path):
    d = make_data_dir(tmp_path, emo_segments=replace_line(1, "utt002 -0.10 0.40 happy"))
    assert lines_of(validate_data_dir(d)) == [f"{d}/emo_segments:1: invalid interval -0.10-0.40"]


def test_overlapping_intervals(tmp_path):
    d = make_data_dir(tmp_path, emo_segments=replace_line(2, "utt002 0.30 0.90 happy"))
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/emo_segments:2: interval of 'utt002' overlaps the one on line 1"
    ]


def test_malformed_emo_segments_line(tmp_path):
    d = make_data_dir(tmp_path, emo_segments=replace_line(5, "utt004 0.10 sad"))
    assert lines_of(validate_data_dir(d)) == [f"{d}/emo_segments:5: expected '<utt> <start> <end> <emotion>'"]


def test_segment_past_the_end_of_the_recording(tmp_path):
    # rec02 = 0.1 s + utt003 (1.5 s) + 0.1 s + utt004 (1.75 s) + 0.1 s = 3.55 s
    d = make_data_dir(tmp_path, with_segments=True, segments=replace_line(4, "utt004 rec02 1.7000 3.9000"))
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/segments:4: segment 1.7-3.9 s of 'utt004' ends past the end of recording 'rec02' (3.550 s)"
    ]


def test_segment_starting_after_the_recording(tmp_path):
    d = make_data_dir(tmp_path, with_segments=True, segments=replace_line(1, "utt001 rec01 5.0 6.0"))
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/segments:1: segment 5-6 s of 'utt001' starts past the end of recording 'rec01' (2.550 s)"
    ]


def test_malformed_segments_lines(tmp_path):
    d = make_data_dir(tmp_path, with_segments=True,
                      segments=lambda lines: [lines[0], "utt002 rec01 abc 2.45", "utt003 rec02 1.0",
                                              lines[3]])
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/segments:2: start 'abc' is not a number",
        f"{d}/segments:3: expected '<utt> <recording> <start> <end>'",
    ]


def test_utt2dur_disagrees_with_audio(tmp_path):
    d = make_data_dir(tmp_path, utt2dur=replace_line(2, "utt002 1.5000"))
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/utt2dur:2: duration 1.5000 s of 'utt002' disagrees with the audio (1.250 s)"
    ]
    assert validate_data_dir(d, check_audio=False) == []  # nothing to compare with
    ok = make_data_dir(tmp_path, name="ok", utt2dur=replace_line(2, "utt002 1.259"))
    assert validate_data_dir(ok) == []


def test_utt2dur_disagrees_with_segments_without_audio(tmp_path):
    d = make_data_dir(tmp_path, with_segments=True, utt2dur=replace_line(1, "utt001 2.0"))
    expected_audio = f"{d}/utt2dur:1: duration 2.0 s of 'utt001' disagrees with the audio (1.000 s)"
    assert lines_of(validate_data_dir(d)) == [expected_audio]
    assert lines_of(validate_data_dir(d, check_audio=False)) == [
        f"{d}/utt2dur:1: duration 2.0 s of 'utt001' disagrees with segments (1.000 s)"
    ]


def test_bad_utt2dur_value(tmp_path):
    d = make_data_dir(tmp_path, utt2dur=lambda lines: ["utt001 -1", "utt002 nan"] + lines[2:])
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/utt2dur:1: duration -1 is not positive",
        f"{d}/utt2dur:2: duration 'nan' is not finite",
    ]


# ------------------------------------------------------------------ collection
def test_all_problems_are_collected_in_file_order(tmp_path):
    d = make_data_dir(
        tmp_path,
        utt2emo=replace_line(1, "utt001 bored"),
        text=replace_line(4, "utt004"),
    )
    wav = wav_path(d, "utt003")
    wav.unlink()
    assert lines_of(validate_data_dir(d)) == [
        f"{d}/wav.scp:3: audio file not found ({wav})",
        f"{d}/text:4: empty transcript for 'utt004'",
        f"{d}/utt2emo:1: unknown emotion 'bored' of 'utt001' {ALLOWED}",
    ]


def test_max_problems_counts_the_rest(tmp_path):
    d = make_data_dir(tmp_path, 6, sample_rate=8000, utt2dur=None)
    problems = validate_data_dir(d, max_problems=2)
    assert len(problems) == 3
    assert str(problems[-1]) == f"{d}: warning: 4 more problems not shown (errors: 0, warnings: 4)"
    assert not any(p.is_error for p in problems)
    # A hidden error keeps the verdict.
    wav_path(d, "utt006").unlink()
    problems = validate_data_dir(d, max_problems=2)
    assert str(problems[-1]) == f"{d}: 4 more problems not shown (errors: 1, warnings: 3)"
    assert problems[-1].is_error
    assert len(validate_data_dir(d, max_problems=None)) == 6


def test_every_problem_is_one_line(tmp_path):
    d = make_data_dir(tmp_path, text=b"utt001 \xff\n\nutt003 X\n")
    wav_path(d, "utt002").write_bytes(b"RIFF\x00\x00")
    problems = validate_data_dir(d)
    assert len(problems) >= 3
    for p in problems:
        assert "\n" not in str(p) and str(p).startswith(f"{d}")


def test_scan_keeps_parsed_tables(tmp_path):
    d = make_data_dir(tmp_path, with_segments=True)
    scan = scan_data_dir(d)
    assert scan.utterances == ["utt001", "utt002", "utt003", "utt004"]
    assert scan.segments["utt003"].recording == "rec02"
    assert scan.durations["utt004"] == pytest.approx(1.75)
    assert scan.recordings["rec02"].frames == int(3.55 * 16000)
    assert scan.num_errors == scan.num_warnings == 0
