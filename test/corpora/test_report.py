"""PrepReport: counting, strict mode, the empty-result error and its outputs."""

import json
from pathlib import Path

import pytest

from ent.corpora.report import MAX_EXAMPLES, PrepReport
from ent.utils.errors import DataError


def test_counts_examples_and_format(tmp_path: Path) -> None:
    r = PrepReport("TOY")
    for i in range(MAX_EXAMPLES + 3):
        r.drop("label 'xxx'", f"u{i}")
    r.drop("missing audio", "u99")
    r.keep("s1", "happy")
    r.keep("s2", "happy")
    r.keep("s2", "sad")
    r.ignore("annotator line")
    r.note("transcription without a label", "u42")
    r.bad_line(tmp_path / "f.txt", 7, "garbled")
    assert r.kept == 3 and r.num_dropped == MAX_EXAMPLES + 4
    assert r.examples["label 'xxx'"] == [f"u{i}" for i in range(MAX_EXAMPLES)]
    text = r.format()
    assert "kept: 3 utterances (s1: 1, s2: 2)" in text
    assert f"label 'xxx': {MAX_EXAMPLES + 3} (e.g. u0, u1" in text
    assert f"{tmp_path / 'f.txt'}:7: garbled" in text
    # Most frequent drop reason first.
    assert text.index("label 'xxx'") < text.index("missing audio")
    r.write(tmp_path / "rep")
    assert (tmp_path / "rep.txt").read_text() == text
    data = json.loads((tmp_path / "rep.json").read_text())
    assert data["dropped"] == {"label 'xxx'": MAX_EXAMPLES + 3, "missing audio": 1}
    assert data["kept_per_emotion"] == {"happy": 2, "sad": 1} and data["unparseable"] == 1


def test_strict_bad_line_raises_one_line_error(tmp_path: Path) -> None:
    r = PrepReport("TOY", strict=True)
    with pytest.raises(DataError) as exc:
        r.bad_line(tmp_path / "f.txt", 3, "not a header")
    assert str(exc.value) == f"{tmp_path / 'f.txt'}:3: not a header"
    assert r.unparseable == 0


def test_empty_result_is_an_error_naming_the_reasons(tmp_path: Path) -> None:
    r = PrepReport("TOY")
    r.drop("missing audio", "a")
    r.drop("missing audio", "b")
    with pytest.raises(DataError, match=r"no TOY utterance kept \(missing audio: 2; 0 unparseable lines\)"):
        r.check_not_empty(tmp_path)
    r.keep("s", "neutral")
    r.check_not_empty(tmp_path)
