"""Tests of the decoding output files: contents, order, formats read back by the scorers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, List

import pytest
import torch

from ent.decoding import DecodeWriter, Hypothesis, UttEmotion, make_result
from ent.decoding.writer import OUTPUT_FILES, format_frame_shift
from ent.scoring import read_keyed_table
from ent.scoring.diarization import read_emo_segments, read_frame_emotions
from ent.scoring.emotion import read_utt2emo

EMOTIONS = ["neutral", "happy", "angry", "sad"]
WB = "\u2581"


class FakeTokenizer:
    """Pieces with "▁" word starts."""

    pieces = ["<blank>", f"{WB}he", "llo", f"{WB}wor", "ld", f"{WB}a"]

    def tokens(self, ids: Iterable[int]) -> List[str]:
        return [self.pieces[int(i)] for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join("".join(self.tokens(ids)).replace(WB, " ").split())

    def is_word_start(self, token_id: int) -> bool:
        return self.pieces[int(token_id)].startswith(WB)


def hyp(tokens: List[int], frames: List[int], tok_emo: List[int], frame_emo: List[int]) -> Hypothesis:
    post = torch.nn.functional.one_hot(torch.tensor(frame_emo, dtype=torch.long), 4).float()
    return Hypothesis(tokens, frames, tok_emo, frame_emo, post.reshape(len(frame_emo), 4), -1.5)


def results():
    tok = FakeTokenizer()
    return [
        make_result("utt_b", hyp([1, 2, 3, 4], [0, 1, 2, 4], [1, 1, 2, 2], [0, 1, 1, 2, 2, 0]), tok,
                    UttEmotion(1, "happy", torch.tensor([0.1, 0.6, 0.2, 0.1])), 0.04, EMOTIONS),
        make_result("utt_a", hyp([5], [1], [0], [0, 0, 0]), tok, 0, 0.04, EMOTIONS),
        make_result("Utt_c", hyp([], [], [], [3, 3]), tok, 3, 0.02, EMOTIONS),
    ]


def test_files_are_written_sorted_and_parse(tmp_path: Path) -> None:
    out = tmp_path / "decode"
    with DecodeWriter(out) as writer:
        for r in results():
            writer.add(r)
        assert len(writer) == 3
        assert not any((out / f).exists() for f in OUTPUT_FILES)  # nothing before close
    order = ["Utt_c", "utt_a", "utt_b"]  # C-locale order: upper case first
    for name in ("text", "token", "utt2emo", "frame_emotions", "result.jsonl"):
        lines = (out / name).read_text(encoding="utf-8").splitlines()
        if name.endswith("jsonl"):
            keys = [json.loads(x)["utt"] for x in lines]
        else:
            keys = [x.split()[0] for x in lines]
        assert keys == order, name
    assert not list(out.glob(".*.tmp"))  # temp files renamed

    text = read_keyed_table(out / "text", allow_empty_value=True)
    assert {u: e.value for u, e in text.items()} == {"Utt_c": "", "utt_a": "a", "utt_b": "hello world"}
    assert (out / "text").read_text().splitlines()[0] == "Utt_c"
    assert (out / "token").read_text().splitlines()[2] == f"utt_b {WB}he llo {WB}wor ld"
    assert read_utt2emo(out / "utt2emo", EMOTIONS) == {"Utt_c": "sad", "utt_a": "neutral", "utt_b": "happy"}

    frames = read_frame_emotions(out / "frame_emotions", EMOTIONS)
    assert frames["utt_b"].frame_shift == 0.04
    assert frames["utt_b"].labels == ["neutral", "happy", "happy", "angry", "angry", "neutral"]
    assert frames["Utt_c"].frame_shift == 0.02 and frames["Utt_c"].labels == ["sad", "sad"]
    assert (out / "frame_emotions").read_text().splitlines()[1] == "utt_a 0.04 neutral neutral neutral"

    seg_lines = (out / "emo_segments").read_text().splitlines()
    assert seg_lines == [
        "Utt_c 0.000 0.040 sad",
        "utt_b 0.040 0.120 happy",
        "utt_b 0.120 0.200 angry",
    ]
    segs = read_emo_segments(out / "emo_segments", EMOTIONS)
    assert [(s.start, s.end, s.label) for s in segs["utt_b"]] == [(0.04, 0.12, "happy"), (0.12, 0.2, "angry")]

    objs = [json.loads(x) for x in (out / "result.jsonl").read_text(encoding="utf-8").splitlines()]
    b = objs[2]
    assert b["text"] == "hello world" and b["emotion"] == "happy" and b["frame_shift"] == 0.04
    assert b["words"] == [
        {"word": "hello", "start": 0.0, "end": 0.08, "emotion": "happy"},
        {"word": "world", "start": 0.08, "end": 0.2, "emotion": "angry"},
    ]
    assert b["segments"] == [
        {"start": 0.04, "end": 0.12, "emotion": "happy"},
        {"start": 0.12, "end": 0.2, "emotion": "angry"},
    ]
    assert b["emotion_scores"]["happy"] == pytest.approx(0.6)
    assert b["tokens"] == [f"{WB}he", "llo", f"{WB}wor", "ld"] and b["score"] == -1.5
    assert objs[0]["text"] == "" and objs[0]["words"] == [] and objs[1]["emotion_scores"] is None


def test_nothing_is_written_after_an_error(tmp_path: Path) -> None:
    (tmp_path / "text").write_text("old 1\n")
    with pytest.raises(RuntimeError):
        with DecodeWriter(tmp_path) as writer:
            writer.add(results()[0])
            raise RuntimeError("decoding failed")
    assert (tmp_path / "text").read_text() == "old 1\n"
    assert not (tmp_path / "utt2emo").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_results_are_refused(tmp_path: Path) -> None:
    writer = DecodeWriter(tmp_path)
    r = results()
    writer.add(r[0])
    with pytest.raises(ValueError, match="added twice"):
        writer.add(r[0])
    bad = make_result("has space", hyp([5], [0], [0], [0]), FakeTokenizer(), 0, 0.04, EMOTIONS)
    with pytest.raises(ValueError, match="whitespace"):
        writer.add(bad)
    names = ["neutral", "very happy", "x", "y"]
    bad = make_result("u", hyp([5], [0], [0], [0]), FakeTokenizer(), 0, 0.04, names)
    bad.emotion = "very happy"
    with pytest.raises(ValueError, match="emotion"):
        writer.add(bad)
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        writer.add(r[1])
    assert len((tmp_path / "utt2emo").read_text().splitlines()) == 1


def test_frame_shift_text_is_exact() -> None:
    assert format_frame_shift(0.04) == "0.04"
    assert float(format_frame_shift(0.1 * 0.4)) == 0.1 * 0.4
