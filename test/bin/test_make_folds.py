"""``python -m ent.bin.make_folds`` on prepared IEMOCAP fixture sessions."""

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpora"))
from iemocap_fixture import make_iemocap_tree  # noqa: E402

from ent.bin.make_folds import main, parse_dev_speakers  # noqa: E402
from ent.corpora.iemocap import prepare_iemocap  # noqa: E402


@pytest.fixture
def data(tmp_path: Path) -> Path:
    prepare_iemocap(make_iemocap_tree(tmp_path / "IEMOCAP"), tmp_path / "data", progress=False)
    return tmp_path / "data"


def test_writes_the_named_folds(data: Path, capsys: pytest.CaptureFixture) -> None:
    main(["--data-dir", str(data), "--folds", "1", "3", "--dev-speaker", "3=Ses01M"])
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "fold1: test session 1 (5 utts), dev speaker Ses05M (2 utts), train sessions 2 3 4 5 (18 utts)",
        "fold3: test session 3 (5 utts), dev speaker Ses01M (2 utts), train sessions 1 2 4 5 (18 utts)",
    ]
    assert sorted(p.name for p in data.glob("fold*")) == ["fold1", "fold3"]


def test_bad_dev_speaker_exits_1(data: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exc:
        main(["--data-dir", str(data), "--dev-speaker", "2=Ses02F"])
    assert exc.value.code == 1
    assert any("dev speaker 'Ses02F' of fold 2 is not a speaker of its training sessions" in r.getMessage()
               for r in caplog.records)


def test_dev_speaker_parsing() -> None:
    assert parse_dev_speakers(["1=Ses05F", " 2 = Ses01M"]) == {1: "Ses05F", 2: "Ses01M"}
    for bad in (["1"], ["x=Ses01F"], ["1="], ["1=a", "1=b"]):
        with pytest.raises(ValueError):
            parse_dev_speakers(bad)
    with pytest.raises(SystemExit) as exc:
        main(["--data-dir", "x", "--dev-speaker", "oops"])
    assert exc.value.code == 2
