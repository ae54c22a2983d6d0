"""The validate_data_dir command: one line per problem, a summary, exit status."""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for datadir_factory
from datadir_factory import make_data_dir, wav_path, write_tone  # noqa: E402

from ent.bin.validate_data_dir import main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_good_dir_exits_0(tmp_path, capsys):
    d = make_data_dir(tmp_path)
    assert main([str(d)]) is None
    assert capsys.readouterr().out == f"{d}: utterances: 4, errors: 0, warnings: 0\n"


def test_errors_exit_1(tmp_path, capsys):
    d = make_data_dir(tmp_path, utt2emo=lambda lines: lines[:1] + ["utt002 bored"] + lines[2:])
    wav = wav_path(d, "utt003")
    wav.unlink()
    with pytest.raises(SystemExit) as exc:
        main([str(d)])
    assert exc.value.code == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{d}/wav.scp:3: audio file not found ({wav})",
        f"{d}/utt2emo:2: unknown emotion 'bored' of 'utt002' (allowed: neutral, happy, angry, sad)",
        f"{d}: utterances: 4, errors: 2, warnings: 0",
    ]


def test_warnings_only_exit_0(tmp_path, capsys):
    d = make_data_dir(tmp_path)
    wav = wav_path(d, "utt001")
    write_tone(wav, 1.0, sample_rate=8000, channels=2)
    assert main([str(d)]) is None
    assert capsys.readouterr().out.splitlines() == [
        f"{d}/wav.scp:1: warning: 8000 Hz audio will be resampled to 16000 Hz on load ({wav})",
        f"{d}/wav.scp:1: warning: 2-channel audio will be down-mixed to mono on load ({wav})",
        f"{d}: utterances: 4, errors: 0, warnings: 2",
    ]


def test_no_audio(tmp_path, capsys):
    d = make_data_dir(tmp_path)
    wav_path(d, "utt002").unlink()
    with pytest.raises(SystemExit):
        main([str(d)])
    capsys.readouterr()
    assert main([str(d), "--no-audio"]) is None
    assert capsys.readouterr().out == f"{d}: utterances: 4, errors: 0, warnings: 0\n"


def test_emotions_option(tmp_path, capsys):
    d = make_data_dir(tmp_path, emotions=("neutral", "bored"))
    with pytest.raises(SystemExit) as exc:
        main([str(d)])
    assert exc.value.code == 1
    capsys.readouterr()
    assert main([str(d), "--emotions", "neutral,bored"]) is None
    assert main([str(d), "--emotions", "neutral bored"]) is None


def test_bad_emotions_option_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--emotions", "neutral,happy,neutral"])
    assert exc.value.code == 2
    assert "--emotions: duplicate emotion names" in capsys.readouterr().err


def test_max_problems(tmp_path, capsys):
    d = make_data_dir(tmp_path, 5, sample_rate=8000, utt2dur=None)
    assert main([str(d), "--max-problems", "2"]) is None
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:] == [
        f"{d}: warning: 3 more problems not shown (errors: 0, warnings: 3)",
        f"{d}: utterances: 5, errors: 0, warnings: 5",
    ]
    assert main([str(d), "--max-problems", "0"]) is None  # 0: all
    assert len(capsys.readouterr().out.splitlines()) == 6


def test_missing_dir(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "nope")])
    assert exc.value.code == 1
    assert capsys.readouterr().out.splitlines()[0] == f"{tmp_path}/nope: data directory not found"


def test_module_entry_point(tmp_path):
    d = make_data_dir(tmp_path, text=lambda lines: lines[:1] + ["utt002"] + lines[2:])
    run = subprocess.run([sys.executable, "-m", "ent.bin.validate_data_dir", str(d)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert run.stdout.splitlines() == [
        f"{d}/text:2: empty transcript for 'utt002'",
        f"{d}: utterances: 4, errors: 1, warnings: 0",
    ]
