"""``python -m ent.bin.mix_data_dir`` on small data directories."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datadir_factory import make_data_dir  # noqa: E402

from ent.bin import validate_data_dir  # noqa: E402
from ent.bin.mix_data_dir import main  # noqa: E402


def _table(path: Path) -> dict:
    return dict(line.split(" ", 1) for line in path.read_text(encoding="utf-8").splitlines())


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """12 utterances: spk1 neutral/angry (mixable), spk2 happy/sad (no neutral)."""
    return make_data_dir(tmp_path, 12, name="train")


def test_writes_a_valid_dir_and_skips_a_rerun(src: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                             capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "train_mix"
    args = ["--data-dir", str(src), "--out-dir", str(out), "--mix-share", "1", "--patterns", "ne,nen",
            "--pattern-weights", "1,3", "--gap-s", "0.02", "--seed", "3"]
    with caplog.at_level(logging.INFO):
        main(args)
    assert "wrote" in caplog.text and "spk2" in caplog.text  # spk2 cannot be mixed: logged
    parts = _table(out / "mix_parts")
    assert len(parts) == 12 and all(k.startswith("spk1-mix-ne") for k in parts)
    assert len(_table(out / "text")) == 24
    validate_data_dir.main([str(out)])  # exits 1 on an error
    assert "errors: 0, warnings: 0" in capsys.readouterr().out
    stamp = (out / ".done").stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO):
        main(args + ["--nj", "2"])
    assert "skipping" in caplog.text and (out / ".done").stat().st_mtime_ns == stamp
    caplog.clear()
    with caplog.at_level(logging.INFO):
        main(args + ["--force"])
    assert "wrote" in caplog.text and (out / ".done").stat().st_mtime_ns != stamp


def test_speaker_restriction(src: Path, tmp_path: Path) -> None:
    (tmp_path / "spk").write_text("spk2\n")
    main(["--data-dir", str(src), "--out-dir", str(tmp_path / "a"), "--speakers", str(tmp_path / "spk")])
    assert (tmp_path / "a" / "mix_parts").read_text() == ""
    assert len(_table(tmp_path / "a" / "text")) == 12  # spk2 alone cannot be mixed; originals kept
    main(["--data-dir", str(src), "--out-dir", str(tmp_path / "b"), "--speaker-list", "spk1 spk2",
          "--audio-dir", str(tmp_path / "wav_b")])
    parts = _table(tmp_path / "b" / "mix_parts")
    assert len(parts) == 6 and all((tmp_path / "wav_b" / f"{k}.wav").is_file() for k in parts)
    with pytest.raises(SystemExit) as exc:
        main(["--data-dir", str(src), "--out-dir", str(tmp_path / "c"), "--speakers", "f", "--speaker-list", "x"])
    assert exc.value.code == 2


@pytest.mark.parametrize("extra, message", [
    ([], "utt2emo:3: unknown emotion 'bored' of 'utt003'"),
    (["--patterns", "ne,xx"], "unknown mixing pattern 'xx'"),
    (["--speaker-list", "nobody"], "speaker 'nobody' of the speaker restriction"),
])
def test_errors_exit_1_with_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture, extra: list,
                                     message: str) -> None:
    def edit(lines):
        if not extra:
            lines[2] = "utt003 bored"
        return lines

    src = make_data_dir(tmp_path, 4, utt2emo=edit)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exc:
        main(["--data-dir", str(src), "--out-dir", str(tmp_path / "out")] + extra)
    assert exc.value.code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0]
    assert not (tmp_path / "out").exists()


def test_runs_as_a_module(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "mix"
    done = subprocess.run([sys.executable, "-m", "ent.bin.mix_data_dir", "--data-dir", str(src),
                           "--out-dir", str(out), "--mix-share", "0.25"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert len(_table(out / "mix_parts")) == 3
