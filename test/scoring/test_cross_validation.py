"""Fold aggregation: per-fold metrics, mean ± sample std, pooled scores, tables."""

import statistics
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from ent.bin.score import score_dirs
from ent.data.emotions import DEFAULT_EMOTIONS
from ent.scoring.cross_validation import (
    format_comparison,
    format_cv_results,
    format_fold_table,
    mean_std,
    metrics_of,
    pooled_metrics,
)

# Per fold: utt -> (ref text, hyp text, ref emotion, hyp emotion)
FOLDS: List[Dict[str, Tuple[str, str, str, str]]] = [
    {"a1": ("the cat sat", "the cat sat", "happy", "happy"),
     "a2": ("a dog", "a dig", "sad", "neutral"),
     "a3": ("hello there", "hello", "angry", "angry")},
    {"b1": ("good morning", "good morning", "neutral", "neutral"),
     "b2": ("see you soon", "see you", "happy", "sad"),
     "b3": ("yes", "yes", "sad", "sad"),
     "b4": ("no way", "no way out", "happy", "happy")},
]


def _write(path: Path, rows: Dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k} {v}\n" for k, v in sorted(rows.items())))


@pytest.fixture(scope="module")
def fold_scores(tmp_path_factory: pytest.TempPathFactory) -> List[dict]:
    root = tmp_path_factory.mktemp("cv")
    out = []
    for i, fold in enumerate(FOLDS):
        ref, hyp = root / f"ref{i}", root / f"hyp{i}"
        _write(ref / "text", {u: v[0] for u, v in fold.items()})
        _write(hyp / "text", {u: v[1] for u, v in fold.items()})
        _write(ref / "utt2emo", {u: v[2] for u, v in fold.items()})
        _write(hyp / "utt2emo", {u: v[3] for u, v in fold.items()})
        out.append(score_dirs(ref, hyp, hyp, list(DEFAULT_EMOTIONS)))
    return out


def _ua(pairs: List[Tuple[str, str]]) -> float:
    recalls = []
    for c in sorted({r for r, _ in pairs}):
        rows = [h for r, h in pairs if r == c]
        recalls.append(sum(h == c for h in rows) / len(rows))
    return sum(recalls) / len(recalls)


def test_metrics_of_one_fold(fold_scores: List[dict]) -> None:
    m = metrics_of(fold_scores[0])
    assert m["WA"] == pytest.approx(2 / 3)
    assert m["UA"] == pytest.approx(_ua([(v[2], v[3]) for v in FOLDS[0].values()]))
    assert m["WER"] == pytest.approx(2 / 7)  # dig (sub), there (del) over 7 words
    assert m["CER"] is not None and 0 < m["CER"] < m["WER"]
    assert m["EDER"] is None and m["FrameAcc"] is None


def test_mean_and_sample_std_over_folds(fold_scores: List[dict]) -> None:
    was = [metrics_of(s)["WA"] for s in fold_scores]
    mean, std = mean_std(was)
    assert mean == pytest.approx(statistics.mean(was))
    assert std == pytest.approx(statistics.stdev(was))  # sample std, ddof = 1
    assert mean_std([0.5]) == (0.5, None)
    assert mean_std([None, None]) == (None, None)


def test_pooled_scores_equal_scoring_all_folds_as_one_set(fold_scores: List[dict]) -> None:
    pooled = pooled_metrics(fold_scores)
    pairs = [(v[2], v[3]) for fold in FOLDS for v in fold.values()]
    assert pooled["WA"] == pytest.approx(sum(r == h for r, h in pairs) / len(pairs))
    assert pooled["UA"] == pytest.approx(_ua(pairs))
    words = sum(len(v[0].split()) for fold in FOLDS for v in fold.values())
    assert pooled["WER"] == pytest.approx((2 + 1 + 1) / words)  # fold 1: 2 errors; fold 2: 1 del + 1 ins


def test_tables(fold_scores: List[dict]) -> None:
    folds = [("fold1", fold_scores[0]), ("fold2", fold_scores[1])]
    table = format_fold_table(folds).splitlines()
    assert table[0] == "|fold|Snt|WA|UA|macro-F1|WER|CER|"
    assert table[2].startswith("|fold1|3|66.67|")
    mean, std = mean_std([metrics_of(s)["WA"] for s in fold_scores])
    assert table[4].startswith(f"|mean ± std (2 folds)||{100 * mean:.2f} ± {100 * std:.2f}|")
    assert table[5].startswith("|pooled|7|")
    doc = format_cv_results({"ent": folds, "fent": folds[:1]}, "CV", notes=["a note"])
    assert doc.startswith("# CV\n\n- a note\n")
    assert "|ent|2|" in doc and "|fent|1|66.67|" in doc and "## fent" in doc
    comp = format_comparison([("x", fold_scores[0])], ["WER", "EDER"]).splitlines()
    assert comp == ["|model|Snt|WER|EDER|", "|---|---|---|---|", "|x|3|28.57|-|"]
