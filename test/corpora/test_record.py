"""Writing prepared utterances as a data directory."""

from pathlib import Path

import pytest

from ent.corpora.record import CorpusUtterance, write_data_dir


def _utt(utt: str, spk: str, intervals=()) -> CorpusUtterance:
    return CorpusUtterance(utt, f"/a/{utt}.wav", "hello world", spk, "happy", 1.23456, tuple(intervals))


def test_tables_are_sorted_and_complete(tmp_path: Path) -> None:
    utts = [_utt("b", "s2", [(0.5, 1.0, "happy")]), _utt("a", "s1"), _utt("c", "s2", [(0.1, 0.2, "sad"),
                                                                                  (0.3, 0.4, "angry")])]
    write_data_dir(tmp_path / "d", utts, emo_segments=True)
    d = tmp_path / "d"
    assert (d / "wav.scp").read_text() == "a /a/a.wav\nb /a/b.wav\nc /a/c.wav\n"
    assert (d / "spk2utt").read_text() == "s1 a\ns2 b c\n"
    assert (d / "utt2dur").read_text() == "a 1.2346\nb 1.2346\nc 1.2346\n"
    assert (d / "emo_segments").read_text() == (
        "b 0.5000 1.0000 happy\nc 0.1000 0.2000 sad\nc 0.3000 0.4000 angry\n")
    write_data_dir(d, utts)  # without emo_segments: a stale file goes
    assert not (d / "emo_segments").exists()


def test_repeated_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="repeated utterance ids"):
        write_data_dir(tmp_path / "d", [_utt("a", "s"), _utt("a", "t")])
