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


# ------------------------------------------------------------ text normalization
def _kaldi_dirs(tmp_path: Path) -> tuple:
    ref = tmp_path / "data" / "test"
    hyp = tmp_path / "exp" / "m" / "decode" / "test"
    write(ref / "text", 'u1 SAY THE WORD "BITE", [NOISE] PLEASE.\nu2 DON\'T STOP\n')
    write(hyp / "text", "u1 say the word bit please\nu2 dont stop\n")
    return ref, hyp


def test_kaldi_reference_is_normalized_as_the_decoding_recorded(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from ent.scoring.text_normalization import RECORD_NAME, TextNormalization

    ref, hyp = _kaldi_dirs(tmp_path)
    # what the model's token list did: lower case, tags removed, apostrophes deleted
    TextNormalization(keep_apostrophe=False, token_dir="/tok").write(hyp / RECORD_NAME)
    with caplog.at_level("INFO"):
        main(["--ref-dir", str(ref), "--hyp-dir", str(hyp)])
    scores = json.loads((hyp / "scores.json").read_text(encoding="utf-8"))
    wer = scores["asr"]["wer"]
    # exactly the WER of the pre-normalized reference "say the word bite please" / "dont stop"
    pre = tmp_path / "pre"
    write(pre / "text", "u1 say the word bite please\nu2 dont stop\n")
    main(["--ref-dir", str(pre), "--hyp-dir", str(hyp), "--out-dir", str(tmp_path / "pre_scores"),
          "--no-normalize"])
    pre_scores = json.loads((tmp_path / "pre_scores" / "scores.json").read_text(encoding="utf-8"))
    assert wer == pre_scores["asr"]["wer"] and (wer["errors"], wer["n_ref"]) == (1, 7)
    assert scores["asr"]["text_normalization"] == {
        "case": "lower", "keep_apostrophe": False, "remove_tags": True, "user_defined_symbols": [],
        "token_dir": "/tok", "source": str(hyp / RECORD_NAME)}
    assert pre_scores["asr"]["text_normalization"] is None
    assert "text normalization recorded by the decoding: case=lower, no apostrophes" in caplog.text
    report = (hyp / "score_asr.txt").read_text(encoding="utf-8")
    assert f"Text normalization: case=lower, no apostrophes, remove_tags (from {hyp / RECORD_NAME})" in report
    assert "REF: say the word bite please" in report


def test_token_dir_option_and_default_fallback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import yaml

    ref, hyp = _kaldi_dirs(tmp_path)
    with caplog.at_level("WARNING"):
        main(["--ref-dir", str(ref), "--hyp-dir", str(hyp)])
    scores = json.loads((hyp / "scores.json").read_text(encoding="utf-8"))
    # defaults keep in-word apostrophes: don't vs dont is one more error
    assert scores["asr"]["wer"]["errors"] == 2 and scores["asr"]["text_normalization"]["source"] == "default"
    assert "scoring with the default text normalization" in caplog.text
    tok = tmp_path / "tok"
    write(tok / "config.yaml", yaml.safe_dump({"case": "lower", "keep_apostrophe": False, "remove_tags": True}))
    main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--token-dir", str(tok)])
    scores = json.loads((hyp / "scores.json").read_text(encoding="utf-8"))
    assert scores["asr"]["wer"]["errors"] == 1
    assert scores["asr"]["text_normalization"]["source"] == str(tok / "config.yaml")
    with pytest.raises(SystemExit):
        main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--token-dir", str(tok), "--no-normalize"])


# ------------------------------------------------------------ diarization without utt2dur, timelines
@pytest.fixture()
def sed_dirs(tmp_path: Path) -> tuple:
    """A diarization set with audio (no text), its hypothesis frames and words."""
    import sys

    sys.path.insert(0, str(REPO / "test"))
    from datadir_factory import make_data_dir

    ref = make_data_dir(tmp_path, n=3, name="test_sed", durations=[1.0, 1.5, 0.8], text=None)
    hyp = tmp_path / "exp" / "m" / "decode" / "test_sed"
    frames = {"utt001": ["neutral"] * 25, "utt002": ["happy"] * 20 + ["neutral"] * 18,
              "utt003": ["neutral"] * 5 + ["angry"] * 15}
    write(hyp / "frame_emotions", "".join(f"{u} 0.04 {' '.join(f)}\n" for u, f in frames.items()))
    words = {"utt001": [], "utt002": [{"word": "hi", "start": 0.1, "end": 0.5, "emotion": "happy"}],
             "utt003": [{"word": "no", "start": 0.2, "end": 0.6, "emotion": "angry"}]}
    write(hyp / "result.jsonl", "".join(json.dumps({"utt": u, "text": "", "words": w}) + "\n"
                                        for u, w in words.items()))
    return ref, hyp


def test_diarization_without_utt2dur_takes_the_audio_durations(sed_dirs: tuple, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    ref, hyp = sed_dirs
    main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--diarization", "--out-dir", str(tmp_path / "a")])
    with_dur = json.loads((tmp_path / "a" / "scores.json").read_text(encoding="utf-8"))["diarization"]
    (ref / "utt2dur").unlink()
    with caplog.at_level("INFO"):
        main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--diarization", "--out-dir", str(tmp_path / "b")])
    without = json.loads((tmp_path / "b" / "scores.json").read_text(encoding="utf-8"))["diarization"]
    assert with_dur["durations_from"] == "utt2dur" and without["durations_from"] == "audio"
    assert without["eder"] == pytest.approx(with_dur["eder"]) and with_dur["eder"] > 0
    assert without["utt_eder"] == pytest.approx(with_dur["utt_eder"])
    assert without["frame_accuracy"] == pytest.approx(with_dur["frame_accuracy"])
    assert f"no {ref / 'utt2dur'}: durations of 3 utterances from the audio headers of {ref / 'wav.scp'}" \
        in caplog.text


def test_timeline_pictures_of_the_first_utterances(sed_dirs: tuple, tmp_path: Path) -> None:
    ref, hyp = sed_dirs
    out = tmp_path / "scores"
    stale = out / "timeline" / "old_utt.png"
    write(stale, "from an earlier run")
    main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--diarization", "--out-dir", str(out), "--plot-utts", "2"])
    pngs = sorted(p.name for p in (out / "timeline").iterdir())
    assert pngs == ["utt001.png", "utt002.png"]  # the first two ids; the stale one is gone
    for name in pngs:
        assert (out / "timeline" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scores = json.loads((out / "scores.json").read_text(encoding="utf-8"))
    assert scores["diarization"]["timelines"] == ["timeline/utt001.png", "timeline/utt002.png"]
    # the default draws up to 8 (here all 3), with the waveform on request; 0 draws none
    main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--diarization", "--out-dir", str(out), "--plot-wave"])
    assert len(list((out / "timeline").glob("*.png"))) == 3
    main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--diarization", "--out-dir", str(tmp_path / "none"),
          "--plot-utts", "0"])
    assert not (tmp_path / "none" / "timeline").exists()


def test_timelines_without_result_jsonl_and_with_a_bad_one(sed_dirs: tuple, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    ref, hyp = sed_dirs
    good = (hyp / "result.jsonl").read_text(encoding="utf-8")
    (hyp / "result.jsonl").unlink()
    main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--diarization", "--plot-utts", "1"])
    assert [p.name for p in (hyp / "timeline").iterdir()] == ["utt001.png"]
    write(hyp / "result.jsonl", good + '{"utt": "utt004", "words": [{"word": "x"}]}\n')
    with pytest.raises(SystemExit):
        main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--diarization"])
    assert "result.jsonl:4: expected an object with 'utt' and 'words'" in caplog.text


def test_diarization_leaves_out_emotional_utterances_without_intervals(sed_dirs: tuple, tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A mixed set's originals: an angry utterance without emo_segments lines is not 'all neutral'."""
    ref, hyp = sed_dirs
    main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--diarization", "--out-dir", str(tmp_path / "all")])
    full = json.loads((tmp_path / "all" / "scores.json").read_text(encoding="utf-8"))["diarization"]
    assert full["n_utts"] == 3 and full["n_left_out"] == 0
    lines = (ref / "emo_segments").read_text().splitlines()
    write(ref / "emo_segments", "".join(line + "\n" for line in lines if not line.startswith("utt003 ")))
    with caplog.at_level("INFO"):
        main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--diarization", "--out-dir", str(tmp_path / "some")])
    some = json.loads((tmp_path / "some" / "scores.json").read_text(encoding="utf-8"))["diarization"]
    # utt001 (neutral, no lines: all neutral) and utt002 are scored; utt003 (angry) is left out
    assert some["n_utts"] == 2 and some["n_left_out"] == 1 and sorted(some["utt_eder"]) == ["utt001", "utt002"]
    assert some["utt_eder"] == pytest.approx({u: full["utt_eder"][u] for u in ("utt001", "utt002")})
    assert "1 utterances of" in caplog.text and "'utt003'" in caplog.text
    report = (tmp_path / "some" / "score_diarization.txt").read_text(encoding="utf-8")
    assert "frame recall: neutral" in report


def test_frame_recall_per_class(tmp_path: Path) -> None:
    from ent.scoring.diarization import Interval, score_diarization

    # 1 s utterances on a 0.02 s grid: 50 frames each.
    ref = {"a": [Interval(0.0, 0.5, "happy")], "b": [Interval(0.5, 1.0, "sad")]}
    hyp = {"a": [Interval(0.0, 0.3, "happy")],            # happy 15 of 25 right, neutral 25 of 25
           "b": [Interval(0.0, 1.0, "angry")]}            # sad 0 of 25, neutral 0 of 25
    scores = score_diarization(ref, {"a": 1.0, "b": 1.0}, hyp_segments=hyp)
    recall = scores.frame_recall()
    assert recall == {"neutral": (25, 50), "happy": (15, 25), "sad": (0, 25), "emotional": (15, 50)}
    assert list(recall) == ["neutral", "happy", "sad", "emotional"]
    assert scores.to_dict()["frame_recall"] == pytest.approx({"neutral": 0.5, "happy": 0.6, "sad": 0.0,
                                                              "emotional": 0.3})


def test_results_record_the_config_and_the_git_revision(dirs: tuple, tmp_path: Path) -> None:
    ref, hyp = dirs
    results = tmp_path / "RESULTS.md"
    main(["--ref-dir", str(ref), "--hyp-dir", str(hyp), "--results", str(results), "--dataset", "test",
          "--config", "conf/train_ent.yaml", "--model-dir", "exp/ent_tiny"])
    from ent.scoring.results import git_revision, read_results

    info = read_results(results)["ent_tiny"].info
    assert info.config == "conf/train_ent.yaml" and info.model_dir == "exp/ent_tiny"
    text = results.read_text(encoding="utf-8")
    assert "- config: `conf/train_ent.yaml`" in text
    import ent

    described = subprocess.run(["git", "-C", str(Path(ent.__file__).parent), "describe", "--always", "--dirty"],
                               capture_output=True, text=True)
    if described.returncode == 0:  # a git checkout: its revision, as git describes it
        assert info.revision == described.stdout.strip() == git_revision()
        assert f"- git revision: `{info.revision}`" in text
    else:
        assert info.revision is None and "git revision" not in text
