"""Tests of ent.scoring.results: RESULTS.md sections and the summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

from ent.scoring.results import (
    APPEND_ANCHOR,
    ExperimentInfo,
    format_summary_table,
    read_results,
    summary_rows,
    update_results,
)
from ent.utils.errors import DataError

ENV = {"python version": "3.11.0", "torch version": "2.11.0"}


def make_scores(wer_errors: int = 2, ua: float = 0.625, eder: float = 0.3) -> Dict[str, Any]:
    counts = {"n_sentences": 3, "n_ref": 20, "hits": 20 - wer_errors, "substitutions": wer_errors,
              "deletions": 0, "insertions": 0}
    return {
        "asr": {"wer": counts, "cer": dict(counts, n_ref=80, hits=80 - wer_errors), "n_missing": 0},
        "emotion": {"n_utts": 3, "wa": 0.5, "ua": ua, "macro_f1": 0.4, "confusion": [[1]]},
        "diarization": {"n_utts": 3, "eder": eder, "frame_accuracy": 0.75,
                        "frame_recall": {"neutral": 0.9, "happy": 0.5, "emotional": 0.625}},
    }


def info(name: str) -> ExperimentInfo:
    return ExperimentInfo(name, model_dir=f"exp/{name}", config="conf/train.yaml", date="2025-01-02 03:04:05",
                          environment=ENV)


def test_new_file_has_espnet_tables(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    update_results(path, info("ent_a"), "test", make_scores())
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# RESULTS\n")
    assert "## ent_a\n" in text
    assert "- model dir: `exp/ent_a`\n- config: `conf/train.yaml`\n- date: `2025-01-02 03:04:05`\n" in text
    assert "- torch version: `2.11.0`" in text
    assert "### WER\n\n|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|\n|---|---|---|---|---|---|---|---|\n" \
           "|test|3|20|90.0|10.0|0.0|0.0|10.0|\n" in text
    assert "|test|3|80|97.5|2.5|0.0|0.0|2.5|" in text  # CER
    assert "### Emotion\n\n|dataset|Snt|WA|UA|macro-F1|\n|---|---|---|---|---|\n|test|3|50.0|62.5|40.0|\n" in text
    assert "|dataset|Snt|EDER|frame acc|neutral recall|emotional recall|\n|---|---|---|---|---|---|\n" \
        "|test|3|30.0|75.0|90.0|62.5|\n" in text
    assert text.endswith("<!-- ent-results-end: ent_a -->\n")


def test_update_is_idempotent_and_keeps_other_sections(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text("# RESULTS\n\nHand-written notes.\n", encoding="utf-8")
    update_results(path, info("ent_a"), "test", make_scores(wer_errors=2))
    update_results(path, info("ent_b"), "test", make_scores(wer_errors=4))
    first = path.read_text(encoding="utf-8")
    update_results(path, info("ent_a"), "test", make_scores(wer_errors=2))
    assert path.read_text(encoding="utf-8") == first  # same input -> same file

    update_results(path, info("ent_a"), "test", make_scores(wer_errors=6))
    text = path.read_text(encoding="utf-8")
    assert "Hand-written notes." in text
    a = text[text.index("<!-- ent-results-begin: ent_a -->"): text.index("<!-- ent-results-end: ent_a -->")]
    b_old = first[first.index("<!-- ent-results-begin: ent_b -->"):]
    assert text.endswith(b_old)  # ent_b untouched, still after ent_a
    assert "|test|3|20|70.0|30.0|0.0|0.0|30.0|" in a
    assert "|test|3|20|90.0|" not in text
    assert text.count("## ent_a") == 1 and text.count("## ent_b") == 1


def test_new_sections_go_above_the_append_anchor(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    tail = "## History\n\nOld measurements.\n"
    path.write_text(f"# RESULTS\n\nIntro.\n\n{APPEND_ANCHOR}\n\n{tail}", encoding="utf-8")
    update_results(path, info("ent_a"), "test", make_scores())
    update_results(path, info("ent_b"), "test", make_scores())
    update_results(path, info("ent_a"), "dev", make_scores())
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# RESULTS\n\nIntro.\n\n<!-- ent-results-begin: ent_a -->")
    assert text.endswith(f"<!-- ent-results-end: ent_b -->\n\n{APPEND_ANCHOR}\n\n{tail}")
    assert text.index("ent-results-end: ent_a") < text.index("ent-results-begin: ent_b")
    assert set(read_results(path)["ent_a"].datasets) == {"test", "dev"}


def test_datasets_accumulate_within_a_section(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    update_results(path, info("ent_a"), "test", make_scores())
    update_results(path, info("ent_a"), "dev", {"emotion": make_scores()["emotion"]})
    update_results(path, info("ent_a"), "test", make_scores(wer_errors=1))
    records = read_results(path)
    assert list(records) == ["ent_a"]
    assert list(records["ent_a"].datasets) == ["test", "dev"]
    text = path.read_text(encoding="utf-8")
    assert "|test|3|20|95.0|" in text
    assert "|dev|3|50.0|62.5|40.0|" in text
    assert "|dev|3|20" not in text  # dev has no ASR rows
    assert "confusion" not in text  # only summary fields are stored


def test_defaults_fill_date_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    rec = update_results(path, ExperimentInfo("x"), "test", make_scores())
    assert rec.info.date and "python version" in (rec.info.environment or {})
    assert "- python version: `" in path.read_text(encoding="utf-8")


def test_bad_names_and_corrupt_files(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    with pytest.raises(ValueError, match="invalid experiment name"):
        update_results(path, info("a -->"), "test", make_scores())
    with pytest.raises(ValueError, match="invalid dataset name"):
        update_results(path, info("a"), "te|st", make_scores())
    path.write_text("# RESULTS\n<!-- ent-results-begin: a -->\n## a\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"RESULTS.md:2: section 'a' has no end marker"):
        update_results(path, info("a"), "test", make_scores())
    path.write_text("<!-- ent-results-begin: a -->\n<!-- ent-results-data: {oops -->\n"
                    "<!-- ent-results-end: a -->\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"RESULTS.md:2: corrupt ent-results-data"):
        read_results(path)


def test_summary_table(tmp_path: Path) -> None:
    table = format_summary_table({"exp/long_name": make_scores(), "b": {"emotion": make_scores()["emotion"]}})
    lines = table.rstrip("\n").split("\n")
    assert lines[0].split() == ["experiment", "WER", "UA", "WA", "F1", "EDER"]
    assert lines[1].split() == ["exp/long_name", "10.0", "62.5", "50.0", "40.0", "30.0"]
    assert lines[2].split() == ["b", "-", "62.5", "50.0", "40.0", "-"]
    assert len(lines[0]) == len(lines[1])  # right-aligned columns

    path = tmp_path / "RESULTS.md"
    update_results(path, info("a"), "test", make_scores(eder=0.1))
    update_results(path, info("a"), "dev", make_scores(eder=0.2))
    update_results(path, info("b"), "test", make_scores(eder=0.4))
    records = read_results(path)
    assert list(summary_rows(records, "test")) == ["a", "b"]
    assert list(summary_rows(records)) == ["a/test", "a/dev", "b"]
    assert format_summary_table(summary_rows(records, "dev")).split("\n")[1].split()[-1] == "20.0"


def test_revision_is_rendered_stored_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    info = ExperimentInfo("ent_a", config="conf/train.yaml", date="2025-01-02 03:04:05", environment=ENV,
                          revision="v0.1-3-gabc1234-dirty")
    update_results(path, info, "test", make_scores())
    assert "- config: `conf/train.yaml`\n- git revision: `v0.1-3-gabc1234-dirty`\n" in path.read_text()
    assert read_results(path)["ent_a"].info.revision == "v0.1-3-gabc1234-dirty"
    # A section written before revisions were recorded reads as None.
    update_results(path, ExperimentInfo("ent_b", date="d", environment=ENV), "test", make_scores())
    assert read_results(path)["ent_b"].info.revision is None


def test_git_revision_outside_a_checkout_or_without_git_is_none(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from ent.scoring.results import git_revision

    assert git_revision(tmp_path) is None  # not a git checkout
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert git_revision() is None
