"""Tests of ent.scoring.emotion: WA/UA/macro-F1, confusion matrix and its PNG."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from ent.scoring.emotion import (
    confusion_matrix,
    format_confusion_matrix,
    format_emotion_report,
    plot_confusion_matrix,
    row_normalize,
    score_emotions,
    score_utt2emo_files,
)
from ent.utils.errors import DataError

EMOS = ["neutral", "happy", "angry", "sad"]

# 8 utterances: neutral 3 (2 right, 1 -> happy), happy 2 (1 right, 1 -> neutral),
# angry 1 (right), sad 2 (never predicted: -> neutral, -> angry).
REF = ["neutral", "neutral", "neutral", "happy", "happy", "angry", "sad", "sad"]
HYP = ["neutral", "neutral", "happy", "happy", "neutral", "angry", "neutral", "angry"]


def as_maps(ref: list, hyp: list) -> tuple:
    return ({f"u{i}": r for i, r in enumerate(ref)}, {f"u{i}": h for i, h in enumerate(hyp)})


def test_hand_made_case_with_class_absent_from_hyp() -> None:
    s = score_emotions(*as_maps(REF, HYP), EMOS)
    assert s.confusion.tolist() == [
        [2, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 1, 0],
        [1, 0, 1, 0],
    ]
    assert s.wa == pytest.approx(4 / 8)
    # recalls: 2/3, 1/2, 1/1, 0/2
    assert s.ua == pytest.approx((2 / 3 + 1 / 2 + 1 + 0) / 4)
    # F1 = 2TP / (ref + hyp): neutral 4/(3+4), happy 2/(2+2), angry 2/(1+2), sad 0/(2+0)
    f1 = s.f1()
    assert f1["neutral"] == pytest.approx(4 / 7)
    assert f1["sad"] == 0.0
    assert s.precision()["sad"] is None
    assert s.macro_f1 == pytest.approx((4 / 7 + 1 / 2 + 2 / 3 + 0) / 4)


def test_equals_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    s = score_emotions(*as_maps(REF, HYP), EMOS)
    assert s.wa == pytest.approx(metrics.accuracy_score(REF, HYP))
    assert s.ua == pytest.approx(metrics.balanced_accuracy_score(REF, HYP))
    assert s.macro_f1 == pytest.approx(metrics.f1_score(REF, HYP, average="macro", zero_division=0))
    assert (s.confusion == metrics.confusion_matrix(REF, HYP, labels=EMOS)).all()
    # A class predicted but absent from the reference: left out of UA, F1 = 0 in the macro mean.
    ref2 = ["neutral", "neutral", "happy", "happy"]
    hyp2 = ["neutral", "angry", "happy", "neutral"]
    s2 = score_emotions(*as_maps(ref2, hyp2), EMOS)
    assert s2.ua == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert s2.recall()["angry"] is None and s2.recall()["sad"] is None
    assert s2.f1()["angry"] == 0.0 and s2.f1()["sad"] is None
    assert s2.macro_f1 == pytest.approx(metrics.f1_score(ref2, hyp2, average="macro", zero_division=0))


def test_missing_hypothesis_counts_as_error(caplog: pytest.LogCaptureFixture) -> None:
    refs = {"a": "happy", "b": "happy", "c": "sad"}
    with caplog.at_level(logging.WARNING):
        s = score_emotions(refs, {"a": "happy", "c": "sad"}, EMOS)
    assert s.missing == ["b"] and s.n_utts == 3
    assert s.wa == pytest.approx(2 / 3)
    assert s.recall()["happy"] == pytest.approx(1 / 2)
    assert s.ua == pytest.approx((1 / 2 + 1) / 2)
    assert s.f1()["happy"] == pytest.approx(2 * 1 / (2 + 1))  # FN includes the missing one
    assert "no emotion hypothesis" in caplog.text
    assert "<missing>" in format_emotion_report(s)


def test_files_and_errors(tmp_path: Path) -> None:
    ref = tmp_path / "ref_utt2emo"
    hyp = tmp_path / "hyp_utt2emo"
    ref.write_text("a happy\nb sad\n", encoding="utf-8")
    hyp.write_text("a happy\nb angry\n", encoding="utf-8")
    s = score_utt2emo_files(ref, hyp, EMOS)
    assert s.wa == pytest.approx(0.5)
    hyp.write_text("a happy\nb joyful\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"hyp_utt2emo:2: unknown emotion 'joyful'"):
        score_utt2emo_files(ref, hyp, EMOS)
    ref.write_text("a Happy\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"ref_utt2emo:1: unknown emotion 'Happy'"):
        score_utt2emo_files(ref, hyp, EMOS)
    ref.write_text("a happy\n", encoding="utf-8")
    hyp.write_text("a happy\nz sad\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"hyp_utt2emo:2: utterance 'z' is not in the reference"):
        score_utt2emo_files(ref, hyp, EMOS)
    hyp.write_text("a happy sad\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"hyp_utt2emo:1: expected '<utt> <emotion>'"):
        score_utt2emo_files(ref, hyp, EMOS)


def test_custom_emotion_list() -> None:
    emos = ["neutral", "frustrated"]
    s = score_emotions({"a": "frustrated", "b": "neutral"}, {"a": "frustrated", "b": "frustrated"}, emos)
    assert s.confusion.tolist() == [[0, 1], [0, 1]]
    with pytest.raises(ValueError, match="not in the emotion list"):
        confusion_matrix(["happy"], ["happy"], emos)


def test_confusion_text_is_aligned() -> None:
    conf = np.array([[12, 1], [0, 3]])
    text = format_confusion_matrix(conf, ["neutral", "sad"])
    lines = text.rstrip("\n").split("\n")
    assert len({len(line) for line in lines}) == 1
    assert lines[1].split() == ["neutral", "12", "1"]
    pct = format_confusion_matrix(conf, ["neutral", "sad"], normalize=True)
    assert pct.split("\n")[1].split() == ["neutral", "92.3", "7.7"]
    assert row_normalize(np.zeros((2, 2))).tolist() == [[0.0, 0.0], [0.0, 0.0]]


@pytest.mark.parametrize("normalize", [False, True])
def test_png_written_and_readable(tmp_path: Path, normalize: bool) -> None:
    import matplotlib.image

    s = score_emotions(*as_maps(REF, HYP), EMOS)
    out = tmp_path / "sub" / "confusion.png"
    plot_confusion_matrix(s.confusion, EMOS, out, normalize=normalize, title="test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(out)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img.std() > 0.01  # not a blank image
    assert not list(tmp_path.glob("sub/.*.tmp"))
