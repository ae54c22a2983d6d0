"""End-to-end tests of ``python -m ent.bin.score`` on tiny files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ent.bin.score import main

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture()
def dirs(tmp_path: Path) -> tuple:
    ref = tmp_path / "data" / "test"
    hyp = tmp_path / "exp" / "ent_tiny" / "decode_test"
    write(ref / "text", "u1 hello world\nu2 good morning all\nu3 yes\n")
    write(ref / "utt2emo", "u1 happy\nu2 sad\nu3 neutral\n")
    write(ref / "utt2dur", "u1 1.0\nu2 2.0\nu3 1.0\n")
    write(ref / "emo_segments", "u1 0.5 1.0 happy\nu2 0.0 1.0 sad\n")
    write(hyp / "text", "u1 hello word\nu2 good morning all\nu3\n")
    write(hyp / "utt2emo", "u1 happy\nu2 angry\nu3 neutral\n")
    # 0.04 s encoder frames: u1 happy from 0.52 s (0.02 s error), u2 sad on [0, 1.0] (exact),
    # u3 angry on [0, 0.2] (0.2 s false emotion).
    write(
        hyp / "frame_emotions",
        "u1 0.04 " + " ".join(["neutral"] * 13 + ["happy"] * 12) + "\n"
        "u2 0.04 " + " ".join(["sad"] * 25 + ["neutral"] * 24) + "\n"
        "u3 0.04 " + " ".join(["angry"] * 5 + ["neutral"] * 20) + "\n",
    )
    return ref, hyp


def test_end_to_end(dirs: tuple, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ref, hyp = dirs
    results = tmp_path / "RESULTS.md"
    main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--diarization", "--results", str(results),
          "--dataset", "test"])
    for name in ("score_asr.txt", "score_emotion.txt", "confusion.png", "score_diarization.txt", "scores.json"):
        assert (hyp / name).is_file(), name
    scores = json.loads((hyp / "scores.json").read_text(encoding="utf-8"))
    wer = scores["asr"]["wer"]
    # 6 words: 1 substitution (world -> word) + 1 deletion (empty hyp for "yes").
    assert (wer["n_ref"], wer["substitutions"], wer["deletions"], wer["insertions"]) == (6, 1, 1, 0)
    assert wer["error_rate"] == pytest.approx(2 / 6)
    emo = scores["emotion"]
    assert emo["wa"] == pytest.approx(2 / 3) and emo["ua"] == pytest.approx(2 / 3)
    assert emo["confusion"][3] == [0, 0, 1, 0]  # sad -> angry
    dia = scores["diarization"]
    assert dia["hyp_format"] == "frame_emotions"
    assert dia["utt_eder"] == pytest.approx({"u1": 0.02, "u2": 0.0, "u3": 0.2})
    assert dia["eder"] == pytest.approx(0.22 / 3)
    assert dia["frame_accuracy"] == pytest.approx((49 + 100 + 40) / 200)
    out = capsys.readouterr().out
    assert "WER 33.33 %" in out and "EDER 7.33 %" in out
    text = results.read_text(encoding="utf-8")
    assert "## ent_tiny" in text and "|test|3|6|66.7|16.7|16.7|0.0|33.3|" in text

    main(["--print-summary", str(results)])
    summary = capsys.readouterr().out.split("\n")
    assert summary[1].split() == ["ent_tiny", "33.3", "66.7", "66.7", "50.0", "7.3"]


def test_out_dir_emo_segments_hyp_and_only_available(dirs: tuple, tmp_path: Path) -> None:
    ref, hyp = dirs
    (hyp / "frame_emotions").unlink()
    (hyp / "text").unlink()
    write(hyp / "emo_segments", "u1 0.6 1.0 happy\n")
    out = tmp_path / "scores"
    main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--diarization", "--out-dir", str(out)])
    scores = json.loads((out / "scores.json").read_text(encoding="utf-8"))
    assert "asr" not in scores and "emotion" in scores
    assert not (out / "score_asr.txt").exists()
    assert scores["diarization"]["hyp_format"] == "emo_segments"
    # u1: 0.1 s missed of 1 s; u2: sad [0, 1] missed (neutral hyp) of 2 s; u3 perfect.
    assert scores["diarization"]["utt_eder"] == pytest.approx({"u1": 0.1, "u2": 0.5, "u3": 0.0})


def test_errors_exit_with_one_line(dirs: tuple, caplog: pytest.LogCaptureFixture) -> None:
    ref, hyp = dirs
    write(hyp / "utt2emo", "u1 happy\nu2 furious\n")
    with pytest.raises(SystemExit) as exc:
        main(["--ref-dir", str(ref), "--hyp-dir", str(hyp)])
    assert exc.value.code == 1
    assert "utt2emo:2: unknown emotion 'furious'" in caplog.text
    (hyp / "frame_emotions").unlink()
    write(hyp / "utt2emo", "u1 happy\n")
    with pytest.raises(SystemExit):
        main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--diarization"])
    assert "--diarization needs frame_emotions or emo_segments" in caplog.text


def test_custom_emotions_and_help(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    hyp = tmp_path / "hyp"
    write(ref / "utt2emo", "a calm\nb tense\n")
    write(hyp / "utt2emo", "a calm\nb calm\n")
    main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--emotions", "calm,tense"])
    scores = json.loads((hyp / "scores.json").read_text(encoding="utf-8"))
    assert scores["emotion"]["emotions"] == ["calm", "tense"] and scores["emotion"]["wa"] == 0.5
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "ent.bin.score", "--help"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 0 and "--diarization" in proc.stdout
