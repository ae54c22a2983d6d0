"""Bad audio content in decoding: a stream refuses NaN/Inf pieces and stays usable; the decoding
writer keeps results valid JSON, lists failed utterances, keeps partial results and locks its dir."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ent.decoding.hypothesis import Segment, Word
from ent.decoding.recognizer import DecodeOptions, EmotionRecognizer
from ent.decoding.streaming import StreamingSession, decode_stream
from ent.decoding.writer import DecodeResult, DecodeWriter, silent_result
from ent.features.fbank import Fbank
from ent.utils.errors import DataError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_recognizer import WAVE, CharTokenizer, build_model  # noqa: E402


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory: pytest.TempPathFactory) -> EmotionRecognizer:
    stats = tmp_path_factory.mktemp("bad_audio") / "stats.npz"
    feats = Fbank().eval().extract(torch.from_numpy(WAVE)).double().numpy()
    np.savez(stats, count=np.int64(len(feats)), sum=feats.sum(0), sum_square=(feats * feats).sum(0))
    return EmotionRecognizer(build_model("fent", stats, seed=0), CharTokenizer(), DecodeOptions(search="greedy"))


def strict_json(line: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"bare {name} in JSON")

    return json.loads(line, parse_constant=refuse)


def test_a_stream_refuses_nan_and_inf_pieces_and_goes_on_unchanged(recognizer: EmotionRecognizer) -> None:
    session = StreamingSession(recognizer, chunk_ms=320)
    reference, _ = decode_stream(session, WAVE, 4000)
    session.reset()
    session.accept(WAVE[:4000])
    bad = WAVE[4000:8000].copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match=r"samples hold 1 NaN/Inf values \(first: sample 10 of this piece, "
                                         r"0\.251 s into the stream\)"):
        session.accept(bad)
    bad[10], bad[20] = 0.0, -np.inf
    with pytest.raises(ValueError, match="samples hold 1 NaN/Inf values"):
        session.accept(torch.from_numpy(bad))
    assert session.num_samples == 4000  # the refused pieces left no trace
    for i in range(4000, len(WAVE), 4000):
        session.accept(WAVE[i:i + 4000])
    result = session.finalize().result
    assert result.tokens == reference.tokens and result.frame_emotions == reference.frame_emotions


def result(utt: str, score: float = -1.0, scores=None) -> DecodeResult:
    return DecodeResult(utt=utt, text="ab", tokens=["▁a", "b"], emotion="happy",
                        words=[Word("ab", 0.0, 0.08, "happy", 1, [2, 3])], frame_emotions=["happy", "happy", "neutral"],
                        frame_shift=0.04, segments=[Segment(0.0, 0.08, "happy")], score=score,
                        emotion_scores=scores)


def test_result_jsonl_is_strict_json_with_null_for_nan_scores(tmp_path: Path, caplog) -> None:
    with DecodeWriter(tmp_path) as writer:
        writer.add(result("u1", float("nan"), {"neutral": float("nan"), "happy": float("inf")}))
        writer.add(result("u2"))
    lines = (tmp_path / "result.jsonl").read_text().splitlines()
    first, second = (strict_json(line) for line in lines)
    assert first["score"] is None and first["emotion_scores"] == {"neutral": None, "happy": None}
    assert second["score"] == -1.0
    assert "1 utterances have NaN or infinite scores, written as null (first: u1)" in caplog.text


def test_silent_result_is_empty_and_neutral_with_the_frames_kept() -> None:
    silent = silent_result(result("u", scores={"happy": 0.9}), "neutral")
    assert (silent.text, silent.tokens, silent.words, silent.segments) == ("", [], [], [])
    assert silent.emotion == "neutral" and silent.frame_emotions == ["neutral"] * 3
    assert silent.emotion_scores is None and silent.score == 0.0


def test_failed_utterances_are_listed_and_a_clean_run_removes_the_list(tmp_path: Path) -> None:
    with DecodeWriter(tmp_path) as writer:
        writer.add(result("u1"))
        writer.add_failure("u2", "data/wav.scp:2: audio has 3 NaN samples\n(first at 0.1 s)")
        with pytest.raises(ValueError, match="added twice"):
            writer.add(result("u2"))
    assert (tmp_path / "failed").read_text() == "u2 data/wav.scp:2: audio has 3 NaN samples (first at 0.1 s)\n"
    assert (tmp_path / "text").read_text() == "u1 ab\n"
    with DecodeWriter(tmp_path) as writer:
        writer.add(result("u1"))
        writer.add(result("u2"))
    assert not (tmp_path / "failed").exists()


def test_an_error_keeps_the_results_so_far_in_incomplete(tmp_path: Path) -> None:
    (tmp_path / "text").write_text("old 1\n")
    with pytest.raises(DataError):
        with DecodeWriter(tmp_path) as writer:
            writer.add(result("u1"))
            writer.add(result("u2"))
            raise DataError("data/wav.scp", 3, "audio has 1 NaN samples")
    assert (tmp_path / "text").read_text() == "old 1\n"  # the directory's own files are untouched
    partial = tmp_path / "incomplete"
    assert (partial / "text").read_text() == "u1 ab\nu2 ab\n"
    assert (partial / "ERROR").read_text() == (
        "DataError: data/wav.scp:3: audio has 1 NaN samples\n2 utterances decoded before it, 0 failed\n")
    with DecodeWriter(tmp_path) as writer:  # a complete decoding removes it
        writer.add(result("u1"))
    assert not partial.exists() and (tmp_path / "text").read_text() == "u1 ab\n"
    with pytest.raises(RuntimeError):  # nothing decoded: no incomplete dir
        with DecodeWriter(tmp_path):
            raise RuntimeError("model not found")
    assert not partial.exists()
    with pytest.raises(RuntimeError):  # nor a new empty directory
        with DecodeWriter(tmp_path / "new"):
            raise RuntimeError("model not found")
    assert not (tmp_path / "new").exists()


HOLD = """
import sys, time
sys.path.insert(0, {root!r})
from ent.decoding.writer import DecodeWriter
w = DecodeWriter({out!r})
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_writer_of_one_dir_is_refused_in_one_line(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(root=root, out=str(tmp_path))],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(DataError) as err:
            DecodeWriter(tmp_path)
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith(f"{tmp_path}: another decoding is writing here (pid {proc.pid}: -c); ")
        assert message.endswith("wait for it to end or choose another output directory")
    finally:
        proc.kill()
        proc.wait()
    with DecodeWriter(tmp_path) as writer:  # a killed writer leaves no stale lock
        writer.add(result("u1"))
    assert (tmp_path / "text").is_file()
