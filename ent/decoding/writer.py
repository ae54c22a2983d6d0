"""Decoding output files.

:class:`DecodeWriter` collects one :class:`DecodeResult` per utterance and, at
:meth:`DecodeWriter.close`, writes every file sorted by utterance id (C-locale
order), each atomically (temporary file renamed into place), so a decoding
directory never holds half-written files:

``text``
    ``<utt> <words>`` (just ``<utt>`` for an empty result).
``token``
    ``<utt> <token pieces>`` separated by spaces.
``utt2emo``
    ``<utt> <emotion>``.
``frame_emotions``
    ``<utt> <frame_shift_s> <emo_0> <emo_1> ...``: one emotion name per
    encoder frame; frame ``i`` covers ``[i * frame_shift_s, (i + 1) *
    frame_shift_s)``. Read by :func:`ent.scoring.diarization.read_frame_emotions`.
``emo_segments``
    ``<utt> <start> <end> <emotion>`` (seconds, 3 decimals): the runs of equal
    non-neutral frame emotions (the rest of each utterance is neutral), as the
    reference ``emo_segments`` of a data directory; utterances without an
    emotional frame have no line (the file may be empty).
``result.jsonl``
    One JSON object per line: ``{"utt", "text", "tokens", "emotion",
    "emotion_scores", "score", "words": [{"word", "start", "end", "emotion"}],
    "segments": [{"start", "end", "emotion"}], "frame_shift"}``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Dict, List, Optional, Sequence, Type, Union

from ent.data.emotions import DEFAULT_EMOTIONS, NEUTRAL
from ent.decoding.hypothesis import (
    Hypothesis,
    Segment,
    TokenizerLike,
    UttEmotion,
    Word,
    frames_to_segments,
    words_with_times,
)
from ent.utils.fileio import atomic_write

PathLike = Union[str, Path]

#: Files written by :class:`DecodeWriter`.
OUTPUT_FILES = ("text", "token", "utt2emo", "frame_emotions", "emo_segments", "result.jsonl")


@dataclass
class DecodeResult:
    """Everything written for one utterance.

    Attributes:
        utt: Utterance id (no whitespace).
        text: Recognised text.
        tokens: Token pieces.
        emotion: Utterance emotion name.
        words: Words with times and emotions.
        frame_emotions: One emotion name per encoder frame.
        frame_shift: Seconds per encoder frame.
        segments: Non-neutral runs of ``frame_emotions``.
        score: Hypothesis score (log-probability).
        emotion_scores: Utterance emotion scores by name (optional).
    """

    utt: str
    text: str
    tokens: List[str]
    emotion: str
    words: List[Word]
    frame_emotions: List[str]
    frame_shift: float
    segments: List[Segment]
    score: float = 0.0
    emotion_scores: Optional[Dict[str, float]] = field(default=None)


def make_result(
    utt: str,
    hyp: Hypothesis,
    tokenizer: TokenizerLike,
    utt_emotion: Union[UttEmotion, int],
    frame_shift: float,
    emotions: Sequence[str] = DEFAULT_EMOTIONS,
    neutral: str = NEUTRAL,
) -> DecodeResult:
    """Build the :class:`DecodeResult` of a decoded hypothesis.

    Args:
        utt: Utterance id.
        hyp: Its best hypothesis.
        tokenizer: Gives the text, the pieces and the word starts.
        utt_emotion: The utterance emotion (an :class:`UttEmotion` or a class id).
        frame_shift: Seconds per encoder frame (``model.frame_shift``).
        emotions: Emotion names by class id.
        neutral: Name of the class left out of the segments.
    """
    scores: Optional[Dict[str, float]] = None
    if isinstance(utt_emotion, UttEmotion):
        emo_id = utt_emotion.emotion_id
        scores = {name: float(v) for name, v in zip(emotions, utt_emotion.scores.tolist())}
    else:
        emo_id = int(utt_emotion)
    return DecodeResult(
        utt=utt,
        text=tokenizer.decode(hyp.tokens),
        tokens=tokenizer.tokens(hyp.tokens),
        emotion=emotions[emo_id],
        words=words_with_times(hyp, tokenizer, frame_shift, emotions),
        frame_emotions=[emotions[e] for e in hyp.frame_emotions],
        frame_shift=frame_shift,
        segments=frames_to_segments(hyp.frame_emotions, frame_shift, emotions, neutral),
        score=float(hyp.score),
        emotion_scores=scores,
    )


def format_frame_shift(frame_shift: float) -> str:
    """Shortest exact text of a frame shift (e.g. ``0.04``)."""
    return repr(float(frame_shift))


def _check_field(utt: str, name: str, value: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"utterance '{utt}': {name} {value!r} is empty or contains whitespace")


class DecodeWriter:
    """Collect decoding results and write the output files at :meth:`close`.

    Used as a context manager, the files are written when the block ends
    normally; after an exception nothing is written (earlier files in
    ``out_dir`` are left as they were).

    Args:
        out_dir: Output directory (created if needed).
    """

    def __init__(self, out_dir: PathLike) -> None:
        self.out_dir = Path(out_dir)
        self._results: Dict[str, DecodeResult] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._results)

    def add(self, result: DecodeResult) -> None:
        """Add one utterance's result.

        Raises:
            ValueError: If the writer is closed, the id is repeated, or an id,
                emotion or piece is empty or contains whitespace, or the frame
                shift is not positive.
        """
        if self._closed:
            raise ValueError("DecodeWriter is closed")
        utt = result.utt
        _check_field(utt, "utterance id", utt)
        if utt in self._results:
            raise ValueError(f"utterance '{utt}' was added twice")
        if not (result.frame_shift > 0 and math.isfinite(result.frame_shift)):
            raise ValueError(f"utterance '{utt}': frame shift {result.frame_shift} is not positive")
        _check_field(utt, "emotion", result.emotion)
        for name in result.frame_emotions:
            _check_field(utt, "frame emotion", name)
        for seg in result.segments:
            _check_field(utt, "segment emotion", seg.emotion)
        for piece in result.tokens:
            _check_field(utt, "token", piece)
        if "\n" in result.text or "\r" in result.text:
            raise ValueError(f"utterance '{utt}': text contains a line break")
        self._results[utt] = result

    def close(self) -> None:
        """Write every output file (sorted by utterance id). Idempotent."""
        if self._closed:
            return
        self._closed = True
        results = [self._results[u] for u in sorted(self._results)]
        self.out_dir.mkdir(parents=True, exist_ok=True)

        def line(utt: str, value: str) -> str:
            return f"{utt} {value}\n" if value else f"{utt}\n"

        with atomic_write(self.out_dir / "text") as fh:
            for r in results:
                fh.write(line(r.utt, " ".join(r.text.split())))
        with atomic_write(self.out_dir / "token") as fh:
            for r in results:
                fh.write(line(r.utt, " ".join(r.tokens)))
        with atomic_write(self.out_dir / "utt2emo") as fh:
            for r in results:
                fh.write(f"{r.utt} {r.emotion}\n")
        with atomic_write(self.out_dir / "frame_emotions") as fh:
            for r in results:
                fh.write(line(r.utt, " ".join([format_frame_shift(r.frame_shift)] + r.frame_emotions)))
        with atomic_write(self.out_dir / "emo_segments") as fh:
            for r in results:
                for seg in r.segments:
                    fh.write(f"{r.utt} {seg.start:.3f} {seg.end:.3f} {seg.emotion}\n")
        with atomic_write(self.out_dir / "result.jsonl") as fh:
            for r in results:
                fh.write(json.dumps(_to_json(r), ensure_ascii=False) + "\n")

    def __enter__(self) -> "DecodeWriter":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True


def _to_json(r: DecodeResult) -> Dict[str, object]:
    """The ``result.jsonl`` object of one result (times rounded to milliseconds)."""
    return {
        "utt": r.utt,
        "text": " ".join(r.text.split()),
        "tokens": r.tokens,
        "emotion": r.emotion,
        "emotion_scores": r.emotion_scores,
        "score": r.score,
        "words": [
            {"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3), "emotion": w.emotion}
            for w in r.words
        ],
        "segments": [
            {"start": round(s.start, 3), "end": round(s.end, 3), "emotion": s.emotion} for s in r.segments
        ],
        "frame_shift": r.frame_shift,
    }
