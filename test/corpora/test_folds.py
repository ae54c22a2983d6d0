"""Leave-one-session-out folds on the prepared IEMOCAP fixture."""

import json
from collections import Counter
from pathlib import Path
from typing import Dict

import pytest
from iemocap_fixture import EXPECTED, SESSIONS

from ent.corpora.folds import (
    check_fold,
    default_dev_speaker,
    find_session_dirs,
    make_folds,
    plan_folds,
)
from ent.corpora.iemocap import prepare_iemocap
from ent.data.validate import validate_data_dir
from ent.utils.errors import DataError

IEMOCAP_SPEAKERS = {s: {f"Ses0{s}F", f"Ses0{s}M"} for s in SESSIONS}


def _utt2spk(path: Path) -> Dict[str, str]:
    return dict(line.split(" ", 1) for line in (path / "utt2spk").read_text().splitlines())


@pytest.fixture
def data(iemocap_root: Path, tmp_path: Path) -> Path:
    out = tmp_path / "data"
    prepare_iemocap(iemocap_root, out, progress=False)
    return out


def test_default_dev_speakers_follow_the_documented_rule() -> None:
    folds = plan_folds(IEMOCAP_SPEAKERS)
    assert [f.dev_speaker for f in folds] == ["Ses05M", "Ses01F", "Ses02M", "Ses03F", "Ses04M"]
    assert [f.test_session for f in folds] == [1, 2, 3, 4, 5]
    assert folds[0].train_sessions == (2, 3, 4, 5)
    for f in folds:
        assert f.dev_speaker[:5] != f"Ses0{f.test_session}"
        assert int(f.dev_speaker[4]) in f.train_sessions


def test_folds_hold_exactly_the_right_utterances(data: Path) -> None:
    summaries = make_folds(find_session_dirs(data), data)
    assert len(summaries) == 5
    everyone = set(EXPECTED)
    for summary in summaries:
        fold = summary.fold
        fdir = data / f"fold{fold.index}"
        train, dev, test = (_utt2spk(fdir / name) for name in ("train", "dev", "test"))
        assert set(test) == {u for u, v in EXPECTED.items() if v[0] == fold.test_session}
        assert set(dev) == {u for u, v in EXPECTED.items() if v[1] == fold.dev_speaker}
        assert set(train) == everyone - set(test) - set(dev)
        test_speakers = {f"Ses0{fold.test_session}F", f"Ses0{fold.test_session}M"}
        assert not test_speakers & (set(train.values()) | set(dev.values()))
        assert fold.dev_speaker not in set(train.values())
        assert summary.counts == {"train": len(train), "dev": len(dev), "test": len(test)}
        saved = json.loads((fdir / "fold.json").read_text())
        assert saved["dev_speaker"] == fold.dev_speaker and saved["counts"] == summary.counts
        for name in ("train", "dev", "test"):
            problems = validate_data_dir(fdir / name)
            assert problems == [], [str(p) for p in problems]


def test_fold_label_counts(data: Path) -> None:
    make_folds(find_session_dirs(data), data, folds=[1])
    fdir = data / "fold1"

    def counts(name: str) -> Counter:
        return Counter(line.split()[1] for line in (fdir / name / "utt2emo").read_text().splitlines())

    # Every session keeps neutral 1, happy 2 (hap + exc), angry 1, sad 1; Ses05M spoke angry and sad.
    assert counts("test") == {"neutral": 1, "happy": 2, "angry": 1, "sad": 1}
    assert counts("dev") == {"angry": 1, "sad": 1}
    assert counts("train") == {"neutral": 4, "happy": 8, "angry": 3, "sad": 3}
    assert not (data / "fold2").exists()


def test_dev_speaker_override_and_its_checks(data: Path) -> None:
    sessions = find_session_dirs(data)
    [summary] = make_folds(sessions, data, folds=[5], dev_speakers={5: "Ses04F"})
    assert summary.fold.dev_speaker == "Ses04F"
    assert set(_utt2spk(data / "fold5" / "dev").values()) == {"Ses04F"}
    with pytest.raises(ValueError, match="not a speaker of its training sessions"):
        make_folds(sessions, data, folds=[5], dev_speakers={5: "Ses05F"})  # the test session's speaker
    with pytest.raises(ValueError, match="unknown folds"):
        make_folds(sessions, data, folds=[6])
    with pytest.raises(ValueError, match="unknown folds"):
        plan_folds(IEMOCAP_SPEAKERS, {7: "Ses01F"})


def test_rule_needs_gendered_speaker_ids() -> None:
    with pytest.raises(ValueError, match="name one with a dev speaker override"):
        default_dev_speaker(1, {1: {"a", "b"}, 2: {"c", "d"}})
    with pytest.raises(ValueError, match="at least two sessions"):
        default_dev_speaker(1, {1: {"Ses01F"}})


def test_check_fold_finds_a_shared_speaker(data: Path) -> None:
    make_folds(find_session_dirs(data), data, folds=[1])
    fdir = data / "fold1"
    check_fold(fdir)
    utt2spk = fdir / "dev" / "utt2spk"
    first = utt2spk.read_text().splitlines()[0].split()[0]
    utt2spk.write_text(utt2spk.read_text().replace(f"{first} Ses05M", f"{first} Ses01F"))
    with pytest.raises(DataError, match="speaker 'Ses01F' is in both dev and test"):
        check_fold(fdir)


def test_find_session_dirs(data: Path, tmp_path: Path) -> None:
    assert list(find_session_dirs(data)) == [1, 2, 3, 4, 5]
    assert list(find_session_dirs(data, [2, 4])) == [2, 4]
    with pytest.raises(DataError, match="session7: session data directory not found"):
        find_session_dirs(data, [7])
    with pytest.raises(DataError, match="no session<n> data directory"):
        find_session_dirs(tmp_path / "empty")
