"""IEMOCAP preparation on a generated tree in the exact release layout."""

from collections import Counter
from pathlib import Path

import pytest
from iemocap_fixture import (
    EXPECTED,
    EXPECTED_DROPS,
    SESSIONS,
    UTTS,
    dialog_id,
    duration_of,
    session_utts,
    utt_id,
)

from ent.corpora.iemocap import (
    FOUR_CLASS_MAP,
    normalize_transcript,
    parse_emo_evaluation,
    parse_transcription,
    parse_utt_id,
    prepare_iemocap,
)
from ent.corpora.report import PrepReport
from ent.data.validate import validate_data_dir
from ent.utils.errors import DataError


def _table(path: Path) -> dict:
    lines = path.read_text(encoding="utf-8").splitlines()
    keys = [line.split(" ", 1)[0] for line in lines]
    assert keys == sorted(keys), f"{path} is not sorted"
    return dict(line.split(" ", 1) for line in lines)


def test_fixture_prepares_into_exactly_the_expected_data_dirs(iemocap_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    prepare_iemocap(iemocap_root, out, progress=False)
    for s in SESSIONS:
        ddir = out / f"session{s}"
        want = {u: v for u, v in EXPECTED.items() if v[0] == s}
        assert _table(ddir / "text") == {u: v[3] for u, v in want.items()}
        assert _table(ddir / "utt2spk") == {u: v[1] for u, v in want.items()}
        assert _table(ddir / "utt2emo") == {u: v[2] for u, v in want.items()}
        wav = _table(ddir / "wav.scp")
        assert set(wav) == set(want)
        for u, path in wav.items():
            assert Path(path).is_absolute() and Path(path).is_file()
            assert Path(path) == (iemocap_root / f"Session{s}" / "sentences" / "wav" / u.rsplit("_", 1)[0]
                                  / f"{u}.wav").resolve()
        index = {utt_id(s, u): i for i, u in enumerate(session_utts(s))}
        assert _table(ddir / "utt2dur") == {u: f"{duration_of(index[u]):.4f}" for u in want}
        spk2utt = _table(ddir / "spk2utt")
        assert spk2utt == {spk: " ".join(sorted(u for u, v in want.items() if v[1] == spk))
                           for spk in {v[1] for v in want.values()}}
        problems = validate_data_dir(ddir)
        assert problems == [], [str(p) for p in problems]


def test_report_counts_every_drop_and_ignored_line(iemocap_root: Path, tmp_path: Path) -> None:
    report = prepare_iemocap(iemocap_root, tmp_path / "data", progress=False)
    assert dict(report.dropped) == EXPECTED_DROPS
    assert report.kept == len(EXPECTED) == 25
    assert dict(report.kept_per_set) == {f"session{s}": 5 for s in SESSIONS}
    # excited is merged into happy: 5 "hap" + 5 "exc" utterances.
    assert dict(report.kept_per_emotion) == {"neutral": 5, "happy": 10, "angry": 5, "sad": 5}
    assert report.unparseable == 0
    # 10 evaluation + 10 transcription files; the hidden ._*.txt and Categorical/ are not read.
    assert report.files_read == 20
    assert report.ignored["transcription of a non-utterance id"] == 20  # MXX0 and M_1 lines
    assert report.ignored["comment line"] == 10
    n_utts = sum(len(session_utts(s)) for s in SESSIONS)
    assert report.ignored["annotator line"] == 5 * n_utts
    assert report.notes["transcription without a label"] == 10
    assert report.examples["missing audio"] == ["Ses02F_impro01_M002"]
    text = (tmp_path / "data" / "iemocap_prep_report.txt").read_text()
    assert "missing audio: 1 (e.g. Ses02F_impro01_M002)" in text and "label 'xxx': 5" in text
    assert '"kept": 25' in (tmp_path / "data" / "iemocap_prep_report.json").read_text()


def test_without_merging_excited_the_exc_utterances_are_dropped(iemocap_root: Path, tmp_path: Path) -> None:
    label_map = {k: v for k, v in FOUR_CLASS_MAP.items() if k != "exc"}
    report = prepare_iemocap(iemocap_root, tmp_path / "data", label_map=label_map, progress=False)
    assert report.dropped["label 'exc'"] == 5
    assert report.kept_per_emotion["happy"] == 5


def test_utterance_ids_give_session_dialog_and_speaker() -> None:
    assert parse_utt_id("Ses01F_impro01_F000") == (1, "Ses01F_impro01", "Ses01F")
    assert parse_utt_id("Ses01F_impro01_M003") == (1, "Ses01F_impro01", "Ses01M")  # speaker = last field
    assert parse_utt_id("Ses03M_script01_1_F012") == (3, "Ses03M_script01_1", "Ses03F")
    for not_utt in ("Ses01F_script01_1_MXX0", "M_1", "F_001", "Ses06F_impro01_F000", "Ses01F_impro01_F00"):
        assert parse_utt_id(not_utt) is None, not_utt


@pytest.mark.parametrize("raw, norm", [(u.raw_text, u.norm_text or "") for u in UTTS] + [
    ("[BREATHING] Yeah--", "yeah"),
    ("<laughter> OK. {noise}", "ok"),
    ("uh-huh, y'know", "uh huh y'know"),
])
def test_text_normalization(raw: str, norm: str) -> None:
    assert normalize_transcript(raw) == norm


def _eval_file(iemocap_root: Path, session: int = 1) -> Path:
    return iemocap_root / f"Session{session}" / "dialog" / "EmoEvaluation" / f"{dialog_id(session, UTTS[0])}.txt"


def _insert_line(path: Path, lineno: int, line: str) -> None:
    lines = path.read_text().split("\n")
    lines.insert(lineno - 1, line)
    path.write_text("\n".join(lines))


def test_strict_mode_names_file_and_line_of_an_unparseable_line(iemocap_root: Path, tmp_path: Path) -> None:
    path = _eval_file(iemocap_root)
    _insert_line(path, 4, "[6.2901 - 8.2357] this line is garbled")
    with pytest.raises(DataError) as exc:
        prepare_iemocap(iemocap_root, tmp_path / "strict", strict=True, progress=False)
    assert str(exc.value).startswith(f"{path}:4: not an evaluation header or annotator line")
    assert "\n" not in str(exc.value)
    # Without strict, the line is counted and reported; nothing else changes.
    report = prepare_iemocap(iemocap_root, tmp_path / "lenient", progress=False)
    assert report.unparseable == 1
    assert report.unparseable_examples[0].startswith(f"{path}:4:")
    assert report.kept == len(EXPECTED)


def test_unknown_label_and_bad_transcription_lines_are_unparseable(iemocap_root: Path) -> None:
    eval_path = _eval_file(iemocap_root)
    _insert_line(eval_path, 3, "[1.0000 - 2.0000]\tSes01F_impro01_F050\tbored\t[2.0, 2.0, 2.0]")
    report = PrepReport("IEMOCAP")
    labels = parse_emo_evaluation(eval_path, report)
    assert report.unparseable == 1 and "unknown label 'bored'" in report.unparseable_examples[0]
    assert [lab.utt for lab in labels][:1] == ["Ses01F_impro01_F000"]
    assert labels[0].label == "neu" and labels[0].lineno == 4

    trans_path = iemocap_root / "Session1" / "dialog" / "transcriptions" / eval_path.name
    _insert_line(trans_path, 2, "Ses01F_impro01_F000: no times here")
    report = PrepReport("IEMOCAP", strict=True)
    with pytest.raises(DataError, match=rf"^{trans_path}:2: not '<id> \[<start>-<end>\]: <text>'"):
        parse_transcription(trans_path, report)


def test_a_repeated_label_is_an_unparseable_line(iemocap_root: Path, tmp_path: Path) -> None:
    path = _eval_file(iemocap_root)
    uid = utt_id(1, UTTS[0])
    with path.open("a") as fh:
        fh.write(f"[9.0000 - 9.5000]\t{uid}\tang\t[2.0, 2.0, 2.0]\n")
    with pytest.raises(DataError, match=f"second label of '{uid}'"):
        prepare_iemocap(iemocap_root, tmp_path / "d", strict=True, progress=False)


def test_crlf_files_parse_like_lf_files(iemocap_root: Path, tmp_path: Path) -> None:
    assert b"\r\n" in _eval_file(iemocap_root, 3).read_bytes()
    prepare_iemocap(iemocap_root, tmp_path / "data", sessions=[3], progress=False)
    text = (tmp_path / "data" / "session3" / "text").read_text()
    assert "\r" not in text and text.count("\n") == 5


def test_missing_layout_and_empty_result_are_errors(iemocap_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="IEMOCAP root not found"):
        prepare_iemocap(tmp_path / "nowhere", tmp_path / "d", progress=False)
    with pytest.raises(DataError, match="Session1: session folder not found"):
        prepare_iemocap(tmp_path, tmp_path / "d", progress=False)
    # No audio at all: every utterance is dropped, which is an error (the report is still written).
    for s in SESSIONS:
        for wav in (iemocap_root / f"Session{s}" / "sentences").rglob("*.wav"):
            wav.unlink()
    with pytest.raises(DataError, match=r"no IEMOCAP utterance kept \(missing audio: 26"):
        prepare_iemocap(iemocap_root, tmp_path / "d", progress=False)
    assert "missing audio: 26" in (tmp_path / "d" / "iemocap_prep_report.txt").read_text()


def test_a_session_without_kept_utterances_is_an_error(iemocap_root: Path, tmp_path: Path) -> None:
    for wav in (iemocap_root / "Session4" / "sentences").rglob("*.wav"):
        wav.unlink()
    with pytest.raises(DataError, match="no utterance kept for session 4"):
        prepare_iemocap(iemocap_root, tmp_path / "d", progress=False)
    assert not (tmp_path / "d" / "session1").exists()  # nothing half-written


def test_label_counts_match_the_kept_tables(iemocap_root: Path, tmp_path: Path) -> None:
    report = prepare_iemocap(iemocap_root, tmp_path / "data", progress=False)
    counts: Counter = Counter()
    for s in SESSIONS:
        counts.update(_table(tmp_path / "data" / f"session{s}" / "utt2emo").values())
    assert counts == report.kept_per_emotion
