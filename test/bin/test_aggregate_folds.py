"""``python -m ent.bin.aggregate_folds`` and ``compare_scores`` on scores.json files of a fake experiment."""

import logging
from pathlib import Path
from typing import Dict

import pytest

from ent.bin.aggregate_folds import main
from ent.bin.compare_scores import main as compare_main
from ent.bin.score import score_dirs
from ent.data.emotions import DEFAULT_EMOTIONS
from ent.scoring.cross_validation import mean_std, metrics_of


def _write(path: Path, rows: Dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k} {v}\n" for k, v in sorted(rows.items())))


@pytest.fixture
def expdir(tmp_path: Path) -> Path:
    """exp/fold{1,2}/{ent,fent}/decode_decode/test/scores.json with different accuracies."""
    ref = tmp_path / "ref"
    _write(ref / "text", {"u1": "a b", "u2": "c d", "u3": "e", "u4": "f g"})
    _write(ref / "utt2emo", {"u1": "happy", "u2": "sad", "u3": "angry", "u4": "neutral"})
    exp = tmp_path / "exp"
    hyps = {  # (fold, model) -> hypothesis emotions of u1..u4
        (1, "ent"): ["happy", "sad", "angry", "neutral"],
        (2, "ent"): ["happy", "sad", "sad", "sad"],
        (1, "fent"): ["happy", "happy", "angry", "neutral"],
        (2, "fent"): ["sad", "sad", "angry", "neutral"],
    }
    for (fold, model), emos in hyps.items():
        hyp = exp / f"fold{fold}" / model / "decode_decode" / "test"
        _write(hyp / "text", {"u1": "a b", "u2": "c", "u3": "e", "u4": "f g"})
        _write(hyp / "utt2emo", dict(zip(["u1", "u2", "u3", "u4"], emos)))
        score_dirs(ref, hyp, hyp, list(DEFAULT_EMOTIONS))
    return exp


def test_writes_per_fold_table_and_mean_std(expdir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "RESULTS.md"
    main(["--expdir", str(expdir), "--folds", "1", "2", "--models", "ent", "fent", "--out", str(out),
          "--title", "Toy CV"])
    text = out.read_text()
    assert text.startswith("# Toy CV\n")
    assert "|ent|2|75.00 ± 35.36|" in text  # WA 100 % and 50 %: mean 75, sample std 35.36
    assert "|fold1|4|100.00|100.00|100.00|14.29|" in text  # 1 deleted word of 7
    assert "## fent" in text and "|mean ± std (2 folds)||75.00 ± 0.00|" in text
    assert capsys.readouterr().out.startswith("|model|folds|WA|UA|macro-F1|WER|CER|")


def test_missing_fold_is_an_error_unless_allowed(expdir: Path, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    args = ["--expdir", str(expdir), "--folds", "1", "2", "3", "--models", "ent", "--out", str(tmp_path / "R.md")]
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1
    missing = expdir / "fold3" / "ent" / "decode_decode" / "test" / "scores.json"
    assert any(r.getMessage() == f"{missing}: file not found" for r in caplog.records)
    main(args + ["--allow-missing"])
    text = (tmp_path / "R.md").read_text()
    assert f"ent: fold 3 missing ({missing})" in text and "|ent|2|" in text


def test_corrupt_scores_name_the_file(expdir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = expdir / "fold2" / "ent" / "decode_decode" / "test" / "scores.json"
    bad.write_text("{\n  \"emotion\": \n")
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit):
        main(["--expdir", str(expdir), "--folds", "1", "2", "--models", "ent", "--out", str(tmp_path / "R.md")])
    assert any(r.getMessage().startswith(f"{bad}:2: invalid JSON") for r in caplog.records)


def test_compare_scores_side_by_side(expdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = expdir / "fold2" / "ent" / "decode_decode" / "test" / "scores.json"
    b = expdir / "fold2" / "fent" / "decode_decode" / "test" / "scores.json"
    out = tmp_path / "cmp.md"
    compare_main(["--scores", f"ENT={a}", f"FENT={b}", "--metrics", "WA", "WER", "EDER", "--out", str(out),
                  "--title", "Side by side", "--note", "n1"])
    printed = capsys.readouterr().out
    assert printed == ("|model|Snt|WA|WER|EDER|\n|---|---|---|---|---|\n"
                       "|ENT|4|50.00|14.29|-|\n|FENT|4|75.00|14.29|-|\n")
    assert out.read_text() == "# Side by side\n\n- n1\n\n" + printed
    with pytest.raises(SystemExit) as exc:
        compare_main(["--scores", "no-equals-sign"])
    assert exc.value.code == 2


def test_mean_std_matches_the_table(expdir: Path) -> None:
    import json
    was = [metrics_of(json.loads((expdir / f"fold{k}" / "fent" / "decode_decode" / "test" / "scores.json")
                                 .read_text()))["WA"] for k in (1, 2)]
    assert mean_std(was) == (pytest.approx(0.75), pytest.approx(0.0))
