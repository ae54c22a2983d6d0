"""combine_data_dirs: unions, speaker subsets, and the inconsistencies it refuses."""

from pathlib import Path
from typing import Dict, List, Optional

import pytest

from ent.data.combine import combine_data_dirs, spk2utt_table
from ent.utils.errors import DataError


def _write(ddir: Path, utts: Dict[str, str], extra: Optional[Dict[str, List[str]]] = None,
           with_dur: bool = True) -> Path:
    """A data dir (no audio needed): ``utts`` maps utt -> speaker."""
    ddir.mkdir(parents=True)
    ids = sorted(utts)
    (ddir / "wav.scp").write_text("".join(f"{u} /audio/{u}.wav\n" for u in ids))
    (ddir / "text").write_text("".join(f"{u} words of {u}\n" for u in ids))
    (ddir / "utt2spk").write_text("".join(f"{u} {utts[u]}\n" for u in ids))
    (ddir / "utt2emo").write_text("".join(f"{u} neutral\n" for u in ids))
    if with_dur:
        (ddir / "utt2dur").write_text("".join(f"{u} 1.50\n" for u in ids))  # verbatim "1.50"
    for name, lines in (extra or {}).items():
        (ddir / name).write_text("".join(line + "\n" for line in lines))
    return ddir


def test_union_is_sorted_verbatim_with_spk2utt(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", {"u3": "s1", "u1": "s1"}, {"emo_segments": ["u1 0.1 0.2 happy", "u1 0.3 0.4 sad"]})
    b = _write(tmp_path / "b", {"u2": "s2"})
    n = combine_data_dirs([a, b], tmp_path / "out")
    out = tmp_path / "out"
    assert n == 3
    assert (out / "text").read_text() == "u1 words of u1\nu2 words of u2\nu3 words of u3\n"
    assert (out / "utt2dur").read_text() == "u1 1.50\nu2 1.50\nu3 1.50\n"
    assert (out / "spk2utt").read_text() == "s1 u1 u3\ns2 u2\n"
    assert (out / "emo_segments").read_text() == "u1 0.1 0.2 happy\nu1 0.3 0.4 sad\n"


def test_speaker_subset_and_stale_files(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", {"u1": "s1", "u2": "s2", "u3": "s2"}, {"emo_segments": ["u1 0.1 0.2 happy"]})
    out = tmp_path / "out"
    assert combine_data_dirs([a], out, keep_speaker=lambda spk: spk == "s2") == 2
    assert (out / "wav.scp").read_text() == "u2 /audio/u2.wav\nu3 /audio/u3.wav\n"
    assert (out / "emo_segments").read_text() == ""
    b = _write(tmp_path / "b", {"u9": "s9"}, with_dur=False)
    combine_data_dirs([b], out)
    assert not (out / "utt2dur").exists() and not (out / "emo_segments").exists()
    with pytest.raises(DataError, match="no utterance left"):
        combine_data_dirs([a], tmp_path / "none", keep_speaker=lambda spk: False)


def test_segments_keep_only_the_recordings_used(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", {"u1": "s1", "u2": "s2"}, {"segments": ["u1 rec1 0.0 1.0", "u2 rec2 0.0 1.0"]})
    (a / "wav.scp").write_text("rec1 /audio/rec1.wav\nrec2 /audio/rec2.wav\n")
    combine_data_dirs([a], tmp_path / "out", keep_speaker=lambda spk: spk == "s2")
    assert (tmp_path / "out" / "wav.scp").read_text() == "rec2 /audio/rec2.wav\n"
    assert (tmp_path / "out" / "segments").read_text() == "u2 rec2 0.0 1.0\n"


def test_inconsistent_sources_are_errors(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", {"u1": "s1"})
    dup = _write(tmp_path / "dup", {"u1": "s2"})
    with pytest.raises(DataError, match=rf"^{dup / 'text'}:1: utterance 'u1' also in {a / 'text'}:1$"):
        combine_data_dirs([a, dup], tmp_path / "out")
    nodur = _write(tmp_path / "nodur", {"u5": "s5"}, with_dur=False)
    with pytest.raises(DataError, match=rf"^{nodur / 'utt2dur'}: not found, but {a / 'utt2dur'} exists"):
        combine_data_dirs([a, nodur], tmp_path / "out")
    with pytest.raises(DataError, match="data directory not found"):
        combine_data_dirs([tmp_path / "missing"], tmp_path / "out")
    with pytest.raises(ValueError, match="also a source"):
        combine_data_dirs([a], a)


def test_spk2utt_table() -> None:
    assert spk2utt_table({"b": "x", "a": "x", "c": "y"}) == {"x": "a b", "y": "c"}
