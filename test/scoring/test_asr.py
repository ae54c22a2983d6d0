"""Tests of ent.scoring.asr: WER/CER counts against jiwer and hand counts."""

from __future__ import annotations

import logging
from pathlib import Path

import jiwer
import pytest

from ent.scoring.asr import (
    char_error_counts,
    format_asr_report,
    score_text_files,
    score_transcripts,
    word_error_counts,
)
from ent.utils.errors import DataError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_word_counts_hand_count() -> None:
    # "a b c d" -> "a x c d e": b->x substituted, e inserted.
    c = word_error_counts(["a b c d"], ["a x c d e"])
    assert (c.n_ref, c.hits, c.substitutions, c.deletions, c.insertions) == (4, 3, 1, 0, 1)
    assert c.error_rate == pytest.approx(2 / 4)
    assert c.n_sentence_errors == 1


def test_corpus_level_rate_is_total_errors_over_total_words() -> None:
    refs = ["a b", "c d e f g h i j"]  # 2 + 8 words
    hyps = ["x", "c d e f g h i j"]  # utt 1: 1 sub + 1 del; utt 2 perfect
    c = word_error_counts(refs, hyps)
    assert c.errors == 2 and c.n_ref == 10
    assert c.error_rate == pytest.approx(0.2)  # not the mean of 1.0 and 0.0
    assert c.error_rate == pytest.approx(jiwer.wer(refs, hyps))


def test_wer_and_cer_equal_jiwer() -> None:
    refs = ["the cat sat on the mat", "hello world", "one two three four"]
    hyps = ["the cat sat on mat", "hello there big world", "one too three for five"]
    w = word_error_counts(refs, hyps)
    out = jiwer.process_words(refs, hyps)
    assert (w.substitutions, w.deletions, w.insertions, w.hits) == (
        out.substitutions, out.deletions, out.insertions, out.hits,
    )
    assert w.error_rate == pytest.approx(jiwer.wer(refs, hyps))
    c = char_error_counts(refs, hyps)
    assert c.error_rate == pytest.approx(jiwer.cer(refs, hyps))
    assert c.n_ref == sum(len(r) for r in refs)  # spaces count as characters


def test_cer_hand_count_and_whitespace_normalisation() -> None:
    # "ab cd" vs "ab   d": extra spaces are not tokens; 'c' deleted.
    c = char_error_counts(["ab cd"], ["ab   d"])
    assert (c.n_ref, c.deletions, c.substitutions, c.insertions) == (5, 1, 0, 0)
    w = word_error_counts(["a  b"], [" a b "])
    assert w.errors == 0 and w.n_ref == 2


def test_empty_hypothesis_is_all_deletions_not_missing(tmp_path: Path) -> None:
    ref = write(tmp_path / "ref", "u1 a b c\nu2 d e\n")
    hyp = write(tmp_path / "hyp", "u1\nu2 d e\n")
    s = score_text_files(ref, hyp)
    assert s.wer.deletions == 3 and s.wer.n_ref == 5 and s.wer.errors == 3
    assert s.cer.deletions == 5  # "a b c"
    assert s.n_missing == 0
    assert s.wer.n_sentences == 2 and s.wer.n_sentence_errors == 1


def test_missing_hypothesis_counted_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ref = write(tmp_path / "ref", "u1 a b\nu2 c d e\nu3 f\n")
    hyp = write(tmp_path / "hyp", "u1 a b\nu3 g\n")
    with caplog.at_level(logging.WARNING):
        s = score_text_files(ref, hyp)
    assert s.missing == ["u2"] and s.n_missing == 1
    assert (s.wer.deletions, s.wer.substitutions, s.wer.n_ref) == (3, 1, 6)
    assert s.wer.error_rate == pytest.approx(4 / 6)
    assert s.wer.n_sentences == 3
    assert "1 of 3 reference utterances have no hypothesis" in caplog.text
    assert [u.missing for u in s.utts] == [False, True, False]
    assert "(missing hypothesis)" in format_asr_report(s)


def test_unknown_hypothesis_id_is_data_error(tmp_path: Path) -> None:
    ref = write(tmp_path / "ref", "u1 a b\n")
    hyp = write(tmp_path / "hyp", "u1 a b\nzz c\n")
    with pytest.raises(DataError, match=r"hyp:2: utterance 'zz' is not in the reference"):
        score_text_files(ref, hyp)


def test_bad_files(tmp_path: Path) -> None:
    ref = write(tmp_path / "ref", "u1 a b\nu1 c\n")
    hyp = write(tmp_path / "hyp", "u1 a b\n")
    with pytest.raises(DataError, match=r"ref:2: duplicate key 'u1'"):
        score_text_files(ref, hyp)
    write(ref, "u1 a b\nu2\n")
    with pytest.raises(DataError, match=r"ref:2: 'u2' has no value"):
        score_text_files(ref, hyp)
    with pytest.raises(DataError, match="file not found"):
        score_text_files(tmp_path / "nope", hyp)


def test_score_transcripts_rejects_unknown_ids() -> None:
    with pytest.raises(ValueError, match="not in the reference"):
        score_transcripts({"a": "x"}, {"b": "x"})


def test_report_lines() -> None:
    s = score_transcripts({"u1": "a b c d"}, {"u1": "a x c d e"})
    report = format_asr_report(s)
    assert report.startswith("%WER 50.00 [ 2 / 4, 1 ins, 0 del, 1 sub ]\n")
    assert "|word|1|4|75.0|25.0|0.0|25.0|50.0|100.0|" in report
    d = s.to_dict()
    assert d["wer"]["error_rate"] == pytest.approx(0.5) and d["n_missing"] == 0


KALDI_REF = 'SAY THE WORD "BITE", [NOISE] PLEASE.'
NORMALIZED_REF = "say the word bite please"


def test_normalize_callable_scores_a_kaldi_reference_like_the_normalized_one(tmp_path: Path) -> None:
    from ent.text.normalize import normalize_text

    hyps = {"u1": "say the word bit please", "u2": "yes"}
    raw = score_transcripts({"u1": KALDI_REF, "u2": "Yes!"}, hyps, normalize=normalize_text)
    clean = score_transcripts({"u1": NORMALIZED_REF, "u2": "yes"}, hyps)
    assert raw.wer.to_dict() == clean.wer.to_dict() and raw.cer.to_dict() == clean.cer.to_dict()
    assert raw.wer.errors == 1 and raw.wer.n_ref == 6  # bite -> bit
    assert raw.utts[0].ref == NORMALIZED_REF  # the report shows what was scored
    # without a normalizer the texts are compared as they are: every reference word is wrong
    verbatim = score_transcripts({"u1": KALDI_REF, "u2": "Yes!"}, hyps)
    assert verbatim.wer.errors == verbatim.wer.n_ref == 7
    # the file scorer and the corpus-level counters take the same callable
    ref = write(tmp_path / "ref", f"u1 {KALDI_REF}\nu2 Yes!\n")
    hyp = write(tmp_path / "hyp", "u1 SAY the word bit please\nu2 yes\n")
    assert score_text_files(ref, hyp, normalize_text).wer.to_dict() == clean.wer.to_dict()
    assert word_error_counts([KALDI_REF], ["say the word bit please"], normalize_text).errors == 1
    assert char_error_counts([KALDI_REF], [NORMALIZED_REF], normalize_text).errors == 0


def test_reference_empty_after_normalization_counts_insertions() -> None:
    from ent.text.normalize import normalize_text

    s = score_transcripts({"u1": "[NOISE]", "u2": "a b"}, {"u1": "uh", "u2": "a b"}, normalize=normalize_text)
    assert (s.wer.n_ref, s.wer.insertions, s.wer.errors) == (2, 1, 1)


def test_report_states_the_normalization() -> None:
    s = score_transcripts({"u1": "a"}, {"u1": "a"})
    assert "Text normalization: case=lower (from x)\n" in format_asr_report(s, "case=lower (from x)")
    assert "Text normalization" not in format_asr_report(s)
