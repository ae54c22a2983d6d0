"""``python -m ent.bin.prepare_zed`` on a generated ZED folder."""

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpora"))
from zed_fixture import EXPECTED, MALFORMED_ID, json_line_of, make_zed_tree  # noqa: E402

from ent.bin.prepare_zed import main  # noqa: E402


def test_prepares_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_zed_tree(tmp_path / "ZED")
    main(["--zed-root", str(root), "--out-dir", str(tmp_path / "data" / "zed"), "--no-progress"])
    out = capsys.readouterr().out
    assert f"kept: {len(EXPECTED)} utterances" in out and "unparseable lines: 1" in out
    assert (tmp_path / "data" / "zed" / "emo_segments").is_file()
    assert (tmp_path / "data" / "zed_prep_report.json").is_file()


def test_json_option_and_strict_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_zed_tree(tmp_path / "ZED")
    moved = tmp_path / "elsewhere.json"
    (root / "ZED.json").rename(moved)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exc:
        main(["--zed-root", str(root), "--out-dir", str(tmp_path / "z"), "--json", str(moved), "--strict",
              "--no-progress"])
    assert exc.value.code == 1
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    where = f"{moved}:{json_line_of(moved, MALFORMED_ID)}"
    assert messages == [f"{where}: '{MALFORMED_ID}': \"emotion\" must be a list of "
                        "{\"emo\": str, \"start\": number, \"end\": number}"]


def test_missing_root_exits_1(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exc:
        main(["--zed-root", str(tmp_path / "nope"), "--out-dir", str(tmp_path / "z")])
    assert exc.value.code == 1
    assert any("ZED root not found" in r.getMessage() for r in caplog.records)
