"""Tests of ent.scoring.diarization: EDER (ZED) and frame accuracy on hand-made cases."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

from ent.scoring.diarization import (
    FrameLabels,
    Interval,
    eder_from_frames,
    eder_from_intervals,
    fill_intervals,
    frame_accuracy,
    frames_to_intervals,
    intervals_to_frames,
    merge_intervals,
    num_frames,
    read_emo_segments,
    read_frame_emotions,
    score_diarization,
)
from ent.utils.errors import DataError

N, H, A, S = "neutral", "happy", "angry", "sad"


def frames(*runs: tuple) -> List[str]:
    """frames((N, 3), (H, 2)) -> [N, N, N, H, H]."""
    return [label for label, n in runs for _ in range(n)]


def test_perfect_is_zero() -> None:
    ref = [Interval(0.5, 1.5, H)]
    assert eder_from_intervals(ref, ref, 2.0) == pytest.approx(0.0)
    hyp = frames((N, 25), (H, 50), (N, 25))  # 0.02 s frames: happy on [0.5, 1.5)
    assert eder_from_frames(ref, hyp, 2.0) == pytest.approx(0.0, abs=1e-9)
    assert eder_from_intervals([], [], 1.0) == 0.0


def test_all_neutral_hyp_gives_interval_fraction() -> None:
    ref = [Interval(0.5, 1.0, H)]
    assert eder_from_intervals(ref, [], 2.0) == pytest.approx(0.25)
    assert eder_from_frames(ref, frames((N, 100)), 2.0) == pytest.approx(0.25)
    # False emotion: neutral reference, emotional hypothesis.
    assert eder_from_intervals([], [Interval(0.0, 0.5, A)], 2.0) == pytest.approx(0.25)


def test_wrong_emotion() -> None:
    ref = [Interval(0.5, 1.5, H)]
    assert eder_from_intervals(ref, [Interval(0.5, 1.5, A)], 2.0) == pytest.approx(0.5)
    # Half of the interval right, half confused with sad.
    assert eder_from_intervals(ref, [Interval(0.5, 1.0, H), Interval(1.0, 1.5, S)], 2.0) == pytest.approx(0.25)


def test_boundary_shifted_by_0_1_s() -> None:
    ref = [Interval(0.5, 1.5, H)]
    # 0.1 s missed at the start + 0.1 s false emotion at the end, over 2 s.
    assert eder_from_intervals(ref, [Interval(0.6, 1.6, H)], 2.0) == pytest.approx(0.1)
    hyp = frames((N, 30), (H, 50), (N, 20))
    assert eder_from_frames(ref, hyp, 2.0) == pytest.approx(0.1)
    assert frame_accuracy(intervals_to_frames(ref, 2.0), hyp) == pytest.approx(90 / 100)


def test_matches_speechbrain_documented_value() -> None:
    # speechbrain.utils.EDER docstring: predictions n n n a a a, 0.2 s frames,
    # duration 1.22 s, angry on [0.39, 1.10] -> 0.2704918032786885.
    hyp = frames((N, 3), (A, 3))
    ref = [Interval(0.39, 1.10, A)]
    assert eder_from_frames(ref, hyp, 1.22, frame_shift=0.2) == pytest.approx(0.2704918032786885)
    assert eder_from_frames(ref, hyp, 1.22, frame_shift=0.2, extend_last=False) == pytest.approx(
        0.2704918032786885
    )


def test_uncovered_tail_is_an_error_without_extension() -> None:
    ref: List[Interval] = []
    hyp = frames((N, 40))  # 0.8 s of 1.0 s
    assert eder_from_frames(ref, hyp, 1.0, extend_last=False) == pytest.approx(0.2)
    assert eder_from_frames(ref, hyp, 1.0, extend_last=True) == pytest.approx(0.0)
    # Frames past the end are ignored.
    assert eder_from_frames(ref, frames((N, 50), (H, 5)), 1.0) == pytest.approx(0.0)


def test_frames_to_intervals_merges_adjacent_equal_labels() -> None:
    segs = frames_to_intervals([N, N, H, H, H, N], 0.02)
    assert [s.label for s in segs] == [N, H, N]
    assert [s.start for s in segs] == pytest.approx([0.0, 0.04, 0.10])
    assert [s.end for s in segs] == pytest.approx([0.04, 0.10, 0.12])
    assert frames_to_intervals([], 0.02) == []


def test_merge_of_adjacent_equal_intervals() -> None:
    split = [Interval(1.0, 1.5, H), Interval(0.5, 1.0, H), Interval(1.5, 1.6, S)]
    assert merge_intervals(split) == [Interval(0.5, 1.5, H), Interval(1.5, 1.6, S)]
    ref = [Interval(0.5, 1.5, H)]
    assert eder_from_intervals(ref, split, 2.0) == pytest.approx(eder_from_intervals(ref, [ref[0], split[2]], 2.0))
    with pytest.raises(ValueError, match="overlap"):
        merge_intervals([Interval(0.0, 1.0, H), Interval(0.5, 1.5, S)])


def test_fill_and_sample() -> None:
    cover = fill_intervals([Interval(0.5, 1.0, H)], 2.0)
    assert cover == [Interval(0.0, 0.5, N), Interval(0.5, 1.0, H), Interval(1.0, 2.0, N)]
    assert fill_intervals([Interval(0.0, 3.0, S)], 2.0) == [Interval(0.0, 2.0, S)]
    assert num_frames(1.0, 0.02) == 50 and num_frames(1.01, 0.02) == 51
    labels = intervals_to_frames([Interval(0.04, 0.08, H)], 0.11, 0.02)
    assert labels == [N, N, H, H, N, N]  # last, partial frame [0.10, 0.11]


def test_frame_accuracy_hand_count() -> None:
    assert frame_accuracy([N, H, H, S], [N, H, A, None]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="reference frames"):
        frame_accuracy([N], [N, N])


def test_score_diarization_mean_over_utterances() -> None:
    utt2dur = {"a": 2.0, "b": 1.0, "c": 1.0}
    ref = {"a": [Interval(0.5, 1.0, H)], "b": [Interval(0.0, 1.0, S)]}
    hyp = {"b": [Interval(0.0, 1.0, S)], "c": [Interval(0.0, 0.5, A)]}
    s = score_diarization(ref, utt2dur, hyp_segments=hyp)
    assert [u.eder for u in s.utts] == pytest.approx([0.25, 0.0, 0.5])
    assert s.eder == pytest.approx(0.75 / 3)  # unweighted mean, not time-weighted (1.0/4.0)
    assert s.frame_accuracy == pytest.approx((75 + 50 + 25) / 200)
    assert s.n_missing == 0


def test_score_diarization_frames_missing_and_coverage(tmp_path: Path) -> None:
    utt2dur = {"a": 1.0, "b": 1.0}
    ref = {"a": [Interval(0.5, 1.0, H)]}
    hyp = {"a": FrameLabels(0.04, frames((N, 12), (H, 12)), 1)}  # 0.96 s, last label extended
    s = score_diarization(ref, utt2dur, hyp_frames=hyp)
    assert s.utts[0].eder == pytest.approx(0.02)
    assert s.missing == ["b"] and s.utts[1].eder == 1.0 and s.utts[1].n_correct_frames == 0
    assert s.eder == pytest.approx(0.51)
    bad = {"a": FrameLabels(0.02, frames((N, 20)), 3)}  # 0.4 s for a 1 s utterance
    with pytest.raises(DataError, match=r"fe:3: 'a': 20 frames of 0.02 s cover 0.400 s"):
        score_diarization(ref, utt2dur, hyp_frames=bad, hyp_path="fe")
    with pytest.raises(DataError, match="'z' is not in the reference"):
        score_diarization(ref, utt2dur, hyp_segments={"z": []}, hyp_path="h")


def test_read_emo_segments(tmp_path: Path) -> None:
    path = tmp_path / "emo_segments"
    path.write_text("u1 1.0 1.5 sad\nu1 0.2 0.8 happy\nu2 0.0 1.02 angry\n", encoding="utf-8")
    segs = read_emo_segments(path, utt2dur={"u1": 2.0, "u2": 1.0})
    assert segs["u1"] == [Interval(0.2, 0.8, H), Interval(1.0, 1.5, S)]
    assert segs["u2"] == [Interval(0.0, 1.0, A)]  # clipped within the tolerance
    path.write_text("", encoding="utf-8")
    assert read_emo_segments(path) == {}
    for text, message in [
        ("u1 0.2 0.8 happy\nu1 0.5 1.0 sad\n", r"emo_segments:2: interval of 'u1' overlaps the one on line 1"),
        ("u1 0.2 0.8 joy\n", r"emo_segments:1: unknown emotion 'joy'"),
        ("u1 0.8 0.2 sad\n", r"emo_segments:1: invalid interval 0.8-0.2"),
        ("u1 0.2 x sad\n", r"emo_segments:1: end 'x' is not a number"),
        ("u1 0.2 sad\n", r"emo_segments:1: expected '<utt> <start> <end> <emotion>'"),
        ("u1 0.2 2.5 sad\n", r"emo_segments:1: interval 0.2-2.5 goes past the utterance end"),
        ("u9 0.2 0.5 sad\n", r"emo_segments:1: utterance 'u9' has no duration"),
    ]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=message):
            read_emo_segments(path, utt2dur={"u1": 2.0})


def test_read_frame_emotions(tmp_path: Path) -> None:
    path = tmp_path / "frame_emotions"
    path.write_text("u1 0.04 neutral neutral happy\nu2 0.02 sad\n", encoding="utf-8")
    fe = read_frame_emotions(path)
    assert fe["u1"] == FrameLabels(0.04, [N, N, H], 1)
    assert fe["u2"].labels == [S]
    for text, message in [
        ("u1 0.04\n", r"frame_emotions:1: 'u1' has no value|expected '<utt> <frame_shift_s>"),
        ("u1 0.04 happy\nu1 0.04 sad\n", r"frame_emotions:2: duplicate key 'u1'"),
        ("u1 -0.04 happy\n", r"frame_emotions:1: frame shift -0.04 is not positive"),
        ("u1 happy happy\n", r"frame_emotions:1: frame shift 'happy' is not a number"),
        ("u1 0.04 happy glad\n", r"frame_emotions:1: unknown emotion 'glad'"),
    ]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=message):
            read_frame_emotions(path)


def _factory():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import datadir_factory

    return datadir_factory


def test_durations_from_audio_headers_equal_utt2dur(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ent.scoring.diarization import durations_from_audio, read_utt2dur

    factory = _factory()
    data = factory.make_data_dir(tmp_path, n=3, durations=[1.0, 1.5, 0.75])
    expected = read_utt2dur(data / "utt2dur")
    assert durations_from_audio(data) == pytest.approx(expected, abs=1e-9)
    # relative audio paths are taken from the current directory, as everywhere in ENT
    lines = [f"{key} {Path(path).relative_to(tmp_path)}" for key, path in
             (line.split() for line in (data / "wav.scp").read_text().splitlines())]
    (data / "wav.scp").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    assert durations_from_audio(data) == pytest.approx(expected, abs=1e-9)


def test_durations_from_segments(tmp_path: Path) -> None:
    from ent.scoring.diarization import durations_from_audio

    factory = _factory()
    data = factory.make_data_dir(tmp_path, n=3, durations=[1.0, 1.5, 0.75], with_segments=True)
    segs = [line.split() for line in (data / "segments").read_text().splitlines()]
    assert durations_from_audio(data) == pytest.approx({u: float(e) - float(s) for u, _, s, e in segs})
    # a negative end runs to the end of the recording (from its header): rec02 is 0.1 + 0.75 + 0.1 s
    segs[2][3] = "-1"
    (data / "segments").write_text("".join(" ".join(f) + "\n" for f in segs))
    assert durations_from_audio(data)[segs[2][0]] == pytest.approx(0.95 - float(segs[2][2]))


def test_durations_from_missing_audio_name_wav_scp_line(tmp_path: Path) -> None:
    from ent.scoring.diarization import durations_from_audio

    factory = _factory()
    data = factory.make_data_dir(tmp_path, n=2)
    factory.wav_path(data, "utt002").unlink()
    with pytest.raises(DataError, match=r"wav.scp:2: audio file not found \(.*utt002.wav\)"):
        durations_from_audio(data)
