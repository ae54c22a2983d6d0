"""``python -m ent.bin.prepare_iemocap`` on the generated IEMOCAP tree."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpora"))
from iemocap_fixture import EXPECTED, EXPECTED_DROPS, make_iemocap_tree  # noqa: E402

from ent.bin.prepare_iemocap import main, parse_label_map  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_iemocap_tree(tmp_path / "IEMOCAP")


def test_help_names_the_layout() -> None:
    out = subprocess.run([sys.executable, "-m", "ent.bin.prepare_iemocap", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "--iemocap-root" in out.stdout and "--strict" in out.stdout and "--label-map" in out.stdout


def test_prepares_and_prints_the_report(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main(["--iemocap-root", str(root), "--out-dir", str(tmp_path / "data"), "--no-progress"])
    out = capsys.readouterr().out
    assert f"kept: {len(EXPECTED)} utterances" in out
    for reason, n in EXPECTED_DROPS.items():
        assert f"{reason}: {n}" in out
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "iemocap_prep_report.json", "iemocap_prep_report.txt", *[f"session{s}" for s in range(1, 6)]]


def test_sessions_option(root: Path, tmp_path: Path) -> None:
    main(["--iemocap-root", str(root), "--out-dir", str(tmp_path / "data"), "--sessions", "2", "4",
          "--no-progress"])
    assert sorted(p.name for p in (tmp_path / "data").glob("session*")) == ["session2", "session4"]


def test_strict_error_is_one_line_naming_file_and_line(root: Path, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    trans = next((root / "Session2" / "dialog" / "transcriptions").glob("*.txt"))
    lines = trans.read_text().splitlines()
    lines.insert(2, "this is not a transcription line")
    trans.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exc:
        main(["--iemocap-root", str(root), "--out-dir", str(tmp_path / "d"), "--strict", "--no-progress"])
    assert exc.value.code == 1
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage().startswith(f"{trans}:3: not '<id> [<start>-<end>]: <text>'")
    # Without --strict the run succeeds and warns about the skipped line.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        main(["--iemocap-root", str(root), "--out-dir", str(tmp_path / "d"), "--no-progress"])
    assert any("1 unparseable lines or entries were skipped" in r.getMessage() for r in caplog.records)


def test_empty_result_exits_1(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_iemocap_tree(tmp_path / "IEMOCAP", sessions=[1])
    for wav in root.rglob("*.wav"):
        wav.unlink()
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exc:
        main(["--iemocap-root", str(root), "--out-dir", str(tmp_path / "d"), "--sessions", "1", "--no-progress"])
    assert exc.value.code == 1
    assert any("no IEMOCAP utterance kept (missing audio: 5" in r.getMessage() for r in caplog.records)


def test_label_map_option() -> None:
    assert parse_label_map("neu:neutral, HAP:happy") == {"neu": "neutral", "hap": "happy"}
    for bad, msg in (("neu", "expected 'label:emotion'"), ("bored:sad", "unknown IEMOCAP label"), (",", "empty")):
        with pytest.raises(ValueError, match=msg):
            parse_label_map(bad)
    with pytest.raises(SystemExit) as exc:
        main(["--iemocap-root", "x", "--out-dir", "y", "--label-map", "bored:sad"])
    assert exc.value.code == 2
