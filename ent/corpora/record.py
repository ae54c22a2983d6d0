"""One prepared utterance, and writing a list of them as a data directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Tuple, Union

from ent.data.combine import spk2utt_table
from ent.utils.fileio import atomic_write, write_table

PathLike = Union[str, Path]


@dataclass(frozen=True)
class CorpusUtterance:
    """An utterance ready to be written to a data directory.

    Attributes:
        utt: Utterance id (also its recording id: one file per utterance).
        wav: Audio path as written in ``wav.scp``.
        text: Normalized transcript (non-empty).
        speaker: Speaker id.
        emotion: Utterance-level emotion.
        duration: Duration in seconds (from the audio header).
        emo_intervals: Emotional intervals ``(start_s, end_s, emotion)``
            from the utterance start (diarization corpora only).
    """

    utt: str
    wav: str
    text: str
    speaker: str
    emotion: str
    duration: float
    emo_intervals: Tuple[Tuple[float, float, str], ...] = ()


def _seconds(value: float) -> str:
    return f"{value:.4f}"


def write_data_dir(out_dir: PathLike, utts: Sequence[CorpusUtterance], emo_segments: bool = False) -> None:
    """Write ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``, ``utt2emo``,
    ``utt2dur`` (and ``emo_segments``), sorted by key, each file atomically.

    Args:
        out_dir: The data directory (created).
        utts: The utterances (unique ids).
        emo_segments: Write ``emo_segments`` (one line per emotional
            interval); without it, a stale ``emo_segments`` is removed.

    Raises:
        ValueError: On a repeated utterance id.
    """
    out_dir = Path(out_dir)
    by_id = {u.utt: u for u in utts}
    if len(by_id) != len(utts):
        raise ValueError("repeated utterance ids")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_table(out_dir / "wav.scp", {k: u.wav for k, u in by_id.items()})
    write_table(out_dir / "text", {k: u.text for k, u in by_id.items()})
    utt2spk = {k: u.speaker for k, u in by_id.items()}
    write_table(out_dir / "utt2spk", utt2spk)
    write_table(out_dir / "spk2utt", spk2utt_table(utt2spk))
    write_table(out_dir / "utt2emo", {k: u.emotion for k, u in by_id.items()})
    write_table(out_dir / "utt2dur", {k: _seconds(u.duration) for k, u in by_id.items()})
    if emo_segments:
        with atomic_write(out_dir / "emo_segments") as fh:
            for key in sorted(by_id):
                for start, end, emotion in by_id[key].emo_intervals:
                    fh.write(f"{key} {_seconds(start)} {_seconds(end)} {emotion}\n")
    elif (out_dir / "emo_segments").is_file():
        (out_dir / "emo_segments").unlink()
