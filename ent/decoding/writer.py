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
    "segments": [{"start", "end", "emotion"}], "frame_shift"}``. It is strict
    JSON: a score that is not a finite number (NaN, which a broken model can
    give) is written as ``null``, with a warning.
``failed``
    Only when utterances were left out (``ent.bin.inference --skip-bad-audio``):
    ``<utt> <why>``, one line each (a stale ``failed`` is removed otherwise).

One writer at a time: :class:`DecodeWriter` holds an exclusive lock on
``<out_dir>/.lock`` (:class:`~ent.utils.locking.FileLock`, released when the
process ends however it ends); a second writer into the same directory is
refused with a one-line :class:`~ent.utils.errors.DataError`.

When decoding stops with an error, the results added so far are not lost:
they are written, in the same files, into ``<out_dir>/incomplete/`` together
with ``ERROR`` (the error message), and the files of ``out_dir`` itself are
left as they were. A later complete decoding removes ``incomplete/``.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass, field, replace
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
from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write
from ent.utils.jsonio import dumps as json_dumps
from ent.utils.jsonio import has_non_finite
from ent.utils.locking import FileLock, LockBusyError

PathLike = Union[str, Path]

#: Files written by :class:`DecodeWriter`.
OUTPUT_FILES = ("text", "token", "utt2emo", "frame_emotions", "emo_segments", "result.jsonl")
FAILED_FILE = "failed"
INCOMPLETE_DIR = "incomplete"
LOCK_FILE = ".lock"


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


def silent_result(result: DecodeResult, neutral: str = NEUTRAL) -> DecodeResult:
    """The result written for digital silence: no words, neutral everywhere.

    An all-zero waveform holds no speech, whatever a model makes of it; the
    frames (their number) are kept, every one neutral, and the scores are
    left out (``score`` 0, ``emotion_scores`` None).

    Args:
        result: The model's result for the silent waveform.
        neutral: The neutral emotion's name.
    """
    return replace(result, text="", tokens=[], emotion=neutral, words=[],
                   frame_emotions=[neutral] * len(result.frame_emotions), segments=[], score=0.0,
                   emotion_scores=None)


def format_frame_shift(frame_shift: float) -> str:
    """Shortest exact text of a frame shift (e.g. ``0.04``)."""
    return repr(float(frame_shift))


def _check_field(utt: str, name: str, value: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"utterance '{utt}': {name} {value!r} is empty or contains whitespace")


class DecodeWriter:
    """Collect decoding results and write the output files at :meth:`close`.

    The writer locks ``out_dir`` when it is made (see the module docstring).
    Used as a context manager, the files are written when the block ends
    normally; after an exception the results added so far go to
    ``out_dir/incomplete/`` and the files of ``out_dir`` are left as they were.

    Args:
        out_dir: Output directory (created if needed).

    Raises:
        DataError: If another writer holds ``out_dir``.
    """

    def __init__(self, out_dir: PathLike) -> None:
        self.out_dir = Path(out_dir)
        self._results: Dict[str, DecodeResult] = {}
        self._failed: Dict[str, str] = {}
        self._closed = False
        self._created = not self.out_dir.exists()  # removed again by an abort that keeps nothing
        self._lock = FileLock(self.out_dir / LOCK_FILE)
        try:
            self._lock.acquire()
        except LockBusyError as exc:
            raise DataError(self.out_dir, None, f"another decoding is writing here ({exc.owner or 'owner unknown'}); "
                            "wait for it to end or choose another output directory") from None

    def __len__(self) -> int:
        return len(self._results)

    @property
    def failed(self) -> Dict[str, str]:
        """Utterances left out: utt -> why (see :meth:`add_failure`)."""
        return dict(self._failed)

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
        if utt in self._results or utt in self._failed:
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

    def add_failure(self, utt: str, reason: str) -> None:
        """Record an utterance that could not be decoded (listed in ``failed``).

        Args:
            utt: Its id.
            reason: Why, one line (e.g. the :class:`DataError` message).
        """
        if self._closed:
            raise ValueError("DecodeWriter is closed")
        _check_field(utt, "utterance id", utt)
        if utt in self._results or utt in self._failed:
            raise ValueError(f"utterance '{utt}' was added twice")
        self._failed[utt] = " ".join(str(reason).split())

    def close(self) -> None:
        """Write every output file (sorted by utterance id) and unlock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            _write_files(self.out_dir, [self._results[u] for u in sorted(self._results)])
            failed = self.out_dir / FAILED_FILE
            if self._failed:
                with atomic_write(failed) as fh:
                    for utt in sorted(self._failed):
                        fh.write(f"{utt} {self._failed[utt]}\n")
            elif failed.exists():
                failed.unlink()
            shutil.rmtree(self.out_dir / INCOMPLETE_DIR, ignore_errors=True)
        finally:
            self._lock.release()

    def abort(self, error: Optional[BaseException] = None) -> None:
        """Stop without writing ``out_dir``'s files: keep the results so far in ``incomplete/``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self._results and not self._failed:  # nothing to keep
            self._lock.release()
            if self._created:  # leave no empty directory behind (e.g. a model that cannot be loaded)
                try:
                    (self.out_dir / LOCK_FILE).unlink()
                    self.out_dir.rmdir()
                except OSError:
                    pass
            return
        try:
            partial = self.out_dir / INCOMPLETE_DIR
            _write_files(partial, [self._results[u] for u in sorted(self._results)])
            with atomic_write(partial / "ERROR") as fh:
                what = f"{type(error).__name__}: {error}" if error is not None else "stopped"
                fh.write(f"{' '.join(what.split())}\n{len(self._results)} utterances decoded before it, "
                         f"{len(self._failed)} failed\n")
            if self._failed:
                with atomic_write(partial / FAILED_FILE) as fh:
                    for utt in sorted(self._failed):
                        fh.write(f"{utt} {self._failed[utt]}\n")
            logging.getLogger(__name__).warning(
                f"decoding stopped: the {len(self._results)} utterances decoded so far are in {partial}")
        finally:
            self._lock.release()

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
            self.abort(exc)


def _write_files(out_dir: Path, results: List[DecodeResult]) -> None:
    """Write the output files of ``results`` (already sorted) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def line(utt: str, value: str) -> str:
        return f"{utt} {value}\n" if value else f"{utt}\n"

    with atomic_write(out_dir / "text") as fh:
        for r in results:
            fh.write(line(r.utt, " ".join(r.text.split())))
    with atomic_write(out_dir / "token") as fh:
        for r in results:
            fh.write(line(r.utt, " ".join(r.tokens)))
    with atomic_write(out_dir / "utt2emo") as fh:
        for r in results:
            fh.write(f"{r.utt} {r.emotion}\n")
    with atomic_write(out_dir / "frame_emotions") as fh:
        for r in results:
            fh.write(line(r.utt, " ".join([format_frame_shift(r.frame_shift)] + r.frame_emotions)))
    with atomic_write(out_dir / "emo_segments") as fh:
        for r in results:
            for seg in r.segments:
                fh.write(f"{r.utt} {seg.start:.3f} {seg.end:.3f} {seg.emotion}\n")
    non_finite = []
    with atomic_write(out_dir / "result.jsonl") as fh:
        for r in results:
            record = _to_json(r)
            if has_non_finite(record):
                non_finite.append(r.utt)
            fh.write(json_dumps(record, ensure_ascii=False) + "\n")
    if non_finite:
        logging.getLogger(__name__).warning(
            f"{out_dir / 'result.jsonl'}: {len(non_finite)} utterances have NaN or infinite scores, written as "
            f"null (first: {non_finite[0]})")


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
