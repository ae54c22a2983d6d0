"""fix_data_dir drops the right utterances for the right reasons, and the result validates."""

import os
import stat
from pathlib import Path
from typing import Dict, List

import pytest

from datadir_factory import make_data_dir, wav_path, write_tone
from ent.bin import fix_data_dir as fix_cli
from ent.data.fix import fix_data_dir
from ent.data.validate import validate_data_dir
from ent.utils.errors import DataError

FILES = ("wav.scp", "text", "utt2spk", "utt2emo", "segments", "emo_segments", "utt2dur", "spk2utt")


def snapshot(d: Path) -> Dict[str, bytes]:
    return {name: (d / name).read_bytes() for name in FILES if (d / name).is_file()}


def keys(d: Path, name: str) -> List[str]:
    return [line.split()[0] for line in (d / name).read_text().splitlines()]


def replace(lines: List[str], **new: str) -> List[str]:
    """Replace the lines whose key is given (``utt002="utt002 bored"``)."""
    return [new.get(line.split()[0], line) if line.strip() else line for line in lines]


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """Eight utterances, six of them broken in a different way, plus fixable faults."""
    text = (
        "utt001 HELLO\nutt002 HELLO\nutt003\nutt004 HELLO\nutt005 HELLO\n".encode()
        + b"utt006 CAF\xff\n"
        + b"utt008 HELLO\nutt007 HELLO\n"  # unsorted
    )
    d = make_data_dir(
        tmp_path, 8,
        text=text,
        utt2spk=lambda lines: [l for l in lines if not l.startswith("utt005")] + [""],  # missing + blank
        utt2emo=lambda lines: replace(lines, utt002="utt002 bored"),
        emo_segments=lambda lines: [l.replace("utt007 0.50", "utt007 0.30") for l in lines],  # overlap
        utt2dur=lambda lines: replace(lines, utt001="utt001 2.0"),  # fixable: from the audio
    )
    wav_path(d, "utt004").unlink()
    return d


def test_fix_drops_the_right_utterances(broken):
    d = broken
    original = snapshot(d)
    report = fix_data_dir(d)
    assert report.dropped == {
        "missing audio": ["utt004"],
        "empty transcript": ["utt003"],
        "missing from utt2spk": ["utt005"],
        "malformed line in text": ["utt006"],
        "unknown emotion": ["utt002"],
        "overlapping emotion intervals": ["utt007"],
    }
    assert (report.total, report.kept, report.num_dropped) == (8, 2, 6)
    assert report.malformed == [f"{d}/text:6: not valid UTF-8 (byte 0xff)", f"{d}/utt2spk:8: blank line"]
    assert report.fixed == [
        f"{d}/text:8: not sorted: 'utt007' comes after 'utt008' (sort with LC_ALL=C)",
        f"{d}/utt2dur:1: duration 2.0 s of 'utt001' disagrees with the audio (1.000 s)",
    ]
    for name in ("wav.scp", "text", "utt2spk", "utt2emo", "utt2dur"):
        assert keys(d, name) == ["utt001", "utt008"], name
    assert keys(d, "emo_segments") == ["utt008", "utt008"]
    assert (d / "utt2dur").read_text() == "utt001 1.0000\nutt008 1.7500\n"
    assert report.rewritten == ["wav.scp", "text", "utt2spk", "utt2emo", "emo_segments", "utt2dur"]
    # The result validates clean; the originals are in .backup.
    assert validate_data_dir(d) == []
    assert report.backup_dir == d / ".backup"
    assert snapshot(d / ".backup") == original
    text = report.format()
    assert "kept 2 of 8 utterances, dropped 6" in text
    assert "  unknown emotion: 1 (utt002)" in text
    assert "malformed lines dropped: 2" in text


def test_fix_is_idempotent(broken):
    fix_data_dir(broken)
    fixed = snapshot(broken)
    backup = snapshot(broken / ".backup")
    again = fix_data_dir(broken)
    assert again.num_dropped == 0 and again.kept == 2
    assert again.rewritten == [] and again.backup_dir is None
    assert again.malformed == again.fixed == []
    assert snapshot(broken) == fixed
    assert snapshot(broken / ".backup") == backup
    assert "nothing to rewrite" in again.format()


def test_no_backup(broken):
    report = fix_data_dir(broken, backup=False)
    assert report.backup_dir is None and report.rewritten
    assert not (broken / ".backup").exists()


def test_good_dir_is_left_alone(tmp_path):
    d = make_data_dir(tmp_path, with_segments=True)
    before = snapshot(d)
    report = fix_data_dir(d)
    assert report.kept == report.total == 4 and report.dropped == {}
    assert report.rewritten == [] and not (d / ".backup").exists()
    assert snapshot(d) == before


def test_segments_recordings(tmp_path):
    d = make_data_dir(
        tmp_path, 6, with_segments=True,
        segments=lambda lines: replace(lines, utt005="utt005 rec03 0.1 x"),  # malformed
    )
    wav_path(d, "rec02").unlink()  # utt003 and utt004
    with open(d / "wav.scp", "a") as fh:
        fh.write(f"rec09 {wav_path(d, 'rec01')}\n")  # unused
    report = fix_data_dir(d)
    assert report.dropped == {"missing audio": ["utt003", "utt004"], "malformed line in segments": ["utt005"]}
    assert report.malformed == [f"{d}/segments:5: end 'x' is not a number"]
    assert report.removed_recordings == ["rec02", "rec09"]
    assert keys(d, "wav.scp") == ["rec01", "rec03"]
    assert keys(d, "segments") == ["utt001", "utt002", "utt006"]
    assert validate_data_dir(d) == []


def test_duplicates(tmp_path):
    d = make_data_dir(
        tmp_path,
        utt2spk=lambda lines: lines[:2] + [lines[1]] + lines[2:],  # same line twice: fixable
        utt2emo=lambda lines: lines[:3] + ["utt003 sad"] + lines[3:],  # conflicting
    )
    report = fix_data_dir(d)
    assert report.dropped == {"duplicate key with different values": ["utt003"]}
    assert report.fixed == [f"{d}/utt2spk:3: duplicate key 'utt002' (first on line 2)"]
    assert keys(d, "utt2spk") == ["utt001", "utt002", "utt004"]
    assert validate_data_dir(d) == []


def test_bad_emotion_intervals_and_segments(tmp_path):
    d = make_data_dir(
        tmp_path, 6, with_segments=True,
        emo_segments=lambda lines: [l.replace("utt002 0.50 0.90", "utt002 0.50 3.00")
                                    .replace("utt003 0.50 0.90 angry", "utt003 0.50 0.90 furious")
                                    for l in lines] + ["utt009 0.1 0.2 sad"],
        segments=lambda lines: replace(lines, utt006="utt006 rec03 1.2 9.0"),
    )
    report = fix_data_dir(d)
    assert report.dropped == {
        "segment outside the recording": ["utt006"],
        "emotion interval outside the utterance": ["utt002"],
        "unknown emotion": ["utt003"],
    }
    assert report.fixed == [f"{d}/emo_segments:9: utterance 'utt009' not found in text"]
    assert keys(d, "emo_segments") == ["utt004", "utt004"]  # utt005 is neutral, utt006 dropped
    assert validate_data_dir(d) == []


def test_warnings_are_kept(tmp_path):
    d = make_data_dir(tmp_path)
    wav = wav_path(d, "utt002")
    write_tone(wav, 1.25, sample_rate=8000)
    report = fix_data_dir(d)
    assert report.kept == 4 and report.rewritten == []
    assert report.warnings == [
        f"{d}/wav.scp:2: warning: 8000 Hz audio will be resampled to 16000 Hz on load ({wav})"
    ]


def test_spk2utt_is_regenerated(tmp_path):
    d = make_data_dir(tmp_path, utt2emo=lambda lines: replace(lines, utt003="utt003 bored"))
    (d / "spk2utt").write_text("spk1 utt001 utt003\nspk2 utt002 utt004\n")
    fix_data_dir(d)
    assert (d / "spk2utt").read_text() == "spk1 utt001\nspk2 utt002 utt004\n"
    assert (d / ".backup" / "spk2utt").read_text() == "spk1 utt001 utt003\nspk2 utt002 utt004\n"


def test_rewritten_files_keep_their_permissions(broken):
    os.chmod(broken / "text", 0o640)
    fix_data_dir(broken)
    assert stat.S_IMODE((broken / "text").stat().st_mode) == 0o640


def test_missing_required_file_is_an_error_and_changes_nothing(tmp_path):
    d = make_data_dir(tmp_path, utt2emo=None, text=lambda lines: lines[::-1])
    before = snapshot(d)
    with pytest.raises(DataError) as err:
        fix_data_dir(d)
    assert str(err.value) == f"{d}/utt2emo: required file not found"
    assert snapshot(d) == before


def test_nothing_left_is_an_error_and_changes_nothing(tmp_path):
    d = make_data_dir(tmp_path, 2, utt2emo="utt001 bored\nutt002 bored\n")
    before = snapshot(d)
    with pytest.raises(DataError) as err:
        fix_data_dir(d)
    assert str(err.value) == (
        f"{d}: every utterance would be dropped (unknown emotion: 2); nothing was changed"
    )
    assert snapshot(d) == before and not (d / ".backup").exists()


def test_cli_prints_the_report(broken, capsys):
    assert fix_cli.main([str(broken), "--no-backup"]) is None
    out = capsys.readouterr().out
    assert f"{broken}: kept 2 of 8 utterances, dropped 6" in out
    assert "  missing audio: 1 (utt004)" in out
    assert not (broken / ".backup").exists()
    assert validate_data_dir(broken) == []


def test_cli_custom_emotions(tmp_path, capsys):
    d = make_data_dir(tmp_path, emotions=("neutral", "bored"))
    fix_cli.main([str(d), "--emotions", "neutral,bored"])
    assert "kept 4 of 4 utterances, dropped 0" in capsys.readouterr().out


def test_cli_error_exit(tmp_path, capsys):
    d = make_data_dir(tmp_path, text=None)
    with pytest.raises(SystemExit) as exc:
        fix_cli.main([str(d)])
    assert exc.value.code == 1
    assert capsys.readouterr().err == f"{d}/text: required file not found\n"
