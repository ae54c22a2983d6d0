"""ZED preparation from a generated annotation JSON and audio."""

import json
from pathlib import Path

import pytest
from zed_fixture import EXPECTED, EXPECTED_DROPS, MALFORMED_ID, json_line_of

from ent.corpora.zed import find_zed_json, load_zed_json, map_zed_emotion, prepare_zed
from ent.data.datadir import DataDir
from ent.data.validate import validate_data_dir
from ent.utils.errors import DataError


def _lines(path: Path) -> list:
    return path.read_text(encoding="utf-8").splitlines()


def test_fixture_prepares_into_the_expected_data_dir(zed_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "data" / "zed"
    report = prepare_zed(zed_root, out, progress=False)
    assert _lines(out / "text") == [f"{u} {v[0]}" for u, v in sorted(EXPECTED.items())]
    assert _lines(out / "utt2emo") == [f"{u} {v[1]}" for u, v in sorted(EXPECTED.items())]
    assert _lines(out / "emo_segments") == [line for _, v in sorted(EXPECTED.items()) for line in v[2]]
    assert _lines(out / "utt2spk") == [f"{u} {u}" for u in sorted(EXPECTED)]
    assert _lines(out / "utt2dur") == ["ZED_0001 3.0000", "ZED_0002 2.0000", "ZED_0003 2.0000", "ZED_0007 2.5000"]
    wav = dict(line.split(" ", 1) for line in _lines(out / "wav.scp"))
    assert wav["ZED_0001"] == str((zed_root / "wavs" / "ZED_0001.wav").resolve())  # "datafolder" placeholder
    assert wav["ZED_0002"] == str((zed_root / "wavs" / "ZED_0002.wav").resolve())  # relative to the root
    assert wav["ZED_0003"] == str((zed_root / "audio" / "ZED_0003.wav").resolve())  # found by file name
    problems = validate_data_dir(out)
    assert problems == [], [str(p) for p in problems]
    data = DataDir.load(out)
    assert [(iv.start, iv.end, iv.emotion) for iv in data.emotion_intervals("ZED_0007")] == [(1.0, 2.0, "angry")]
    assert report.kept == 4


def test_report_counts_drops_notes_and_malformed_entries(zed_root: Path, tmp_path: Path) -> None:
    report = prepare_zed(zed_root, tmp_path / "data" / "zed", progress=False)
    assert dict(report.dropped) == EXPECTED_DROPS
    assert report.unparseable == 1
    line = json_line_of(zed_root / "ZED.json", MALFORMED_ID)
    assert report.unparseable_examples[0].startswith(f"{zed_root / 'ZED.json'}:{line}: '{MALFORMED_ID}'")
    assert report.notes["interval end clipped to the audio duration"] == 1
    assert report.notes["neutral interval (neutral is implicit)"] == 1
    assert dict(report.kept_per_emotion) == {"happy": 1, "sad": 1, "angry": 2}
    assert (tmp_path / "data" / "zed_prep_report.txt").is_file()


def test_strict_mode_stops_at_the_malformed_entry(zed_root: Path, tmp_path: Path) -> None:
    line = json_line_of(zed_root / "ZED.json", MALFORMED_ID)
    with pytest.raises(DataError) as exc:
        prepare_zed(zed_root, tmp_path / "zed", strict=True, progress=False)
    where = f"{zed_root / 'ZED.json'}:{line}"
    assert str(exc.value).startswith(f"{where}: '{MALFORMED_ID}': \"emotion\" must be a list")


@pytest.mark.parametrize("name, emotion", [
    ("happy", "happy"), ("Happy", "happy"), ("H", "happy"), ("hap", "happy"), ("happiness", "happy"),
    ("SAD", "sad"), ("s", "sad"), ("angry", "angry"), ("a", "angry"), ("Anger", "angry"),
    ("neutral", "neutral"), ("N", "neutral"), (" sad ", "sad"), ("fear", None), ("surprise", None),
])
def test_emotion_names(name: str, emotion: str) -> None:
    assert map_zed_emotion(name) == emotion


def test_interval_far_past_the_end_drops_the_utterance(zed_root: Path, tmp_path: Path) -> None:
    path = zed_root / "ZED.json"
    data = json.loads(path.read_text())
    data["ZED_0001"]["emotion"][0]["end"] = 3.5  # audio is 3.0 s
    path.write_text(json.dumps(data, indent=2))
    report = prepare_zed(zed_root, tmp_path / "zed", progress=False)
    assert report.dropped["interval beyond the end of the audio"] == 1
    assert "ZED_0001" not in (tmp_path / "zed" / "text").read_text()


def test_same_emotion_overlaps_are_merged(zed_root: Path, tmp_path: Path) -> None:
    path = zed_root / "ZED.json"
    data = json.loads(path.read_text())
    data["ZED_0001"]["emotion"] = [{"emo": "happy", "start": 1.0, "end": 2.0},
                                   {"emo": "h", "start": 1.5, "end": 2.5}]
    path.write_text(json.dumps(data, indent=2))
    prepare_zed(zed_root, tmp_path / "zed", progress=False)
    assert "ZED_0001 1.0000 2.5000 happy" in _lines(tmp_path / "zed" / "emo_segments")


def test_json_discovery_and_errors(zed_root: Path, tmp_path: Path) -> None:
    assert find_zed_json(zed_root) == zed_root / "ZED.json"
    (zed_root / "ZED.json").rename(zed_root / "annotations.json")
    assert find_zed_json(zed_root) == zed_root / "annotations.json"
    (zed_root / "other.json").write_text("{}")
    with pytest.raises(DataError, match="ZED.json: annotation file not found"):
        find_zed_json(zed_root)
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": {\n    "wav": "x.wav",\n  }\n}\n')
    with pytest.raises(DataError, match=rf"^{bad}:4: invalid JSON"):
        load_zed_json(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(DataError, match="top level must be an object"):
        load_zed_json(bad)


def test_nothing_kept_is_an_error(zed_root: Path, tmp_path: Path) -> None:
    for wav in zed_root.rglob("*.wav"):
        wav.unlink()
    with pytest.raises(DataError, match=r"no ZED utterance kept \(missing audio: 7"):
        prepare_zed(zed_root, tmp_path / "zed", progress=False)
