"""Emotion diarization error rate (EDER) of the ZED benchmark, and frame accuracy.

Speech emotion diarization (Wang et al., "Speech Emotion Diarization: Which
Emotion Appears When?", 2023) labels *when* each emotion occurs in an
utterance. Its benchmark, the Zaion Emotion Dataset (ZED), is scored with the
emotion diarization error rate, computed in SpeechBrain's ZED recipe
(``speechbrain.utils.EDER``) per utterance and averaged over utterances.

Definition used here, for one utterance of duration ``T`` seconds:

1. **Reference**: the emotional intervals of ``emo_segments``
   (``<utt> <start> <end> <emotion>``, seconds); the rest of ``[0, T]`` is the
   background class (``neutral``, class 0 of the emotion list). This gives a
   sequence of labelled segments covering ``[0, T]``.
2. **Hypothesis**, either

   * intervals in the same ``emo_segments`` format (the rest neutral), or
   * per-frame labels (``frame_emotions``, see :func:`read_frame_emotions`):
     frame ``i`` covers ``[i * s, (i + 1) * s)`` for the frame shift ``s``
     (0.02 s in ZED, whose window length equals its stride). The last
     frame's label is extended to ``T`` when the frames stop short of ``T``
     (ZED's recipe pads the prediction by repeating its last label); frames
     beyond ``T`` are ignored.

   Adjacent equal labels are merged into segments (ZED's
   ``merge_ssegs_same_emotion_adjacent``).
3. **EDER** ``= 1 - (sum over reference segments r, hypothesis segments h
   with the same label of |r ∩ h|) / T``, i.e. the fraction of the
   utterance's duration where the hypothesis emotion differs from the
   reference: missed emotion (emotion predicted neutral), false emotion
   (neutral predicted emotional) and confusion (wrong emotion) together.
   Time not covered by the hypothesis counts as an error.
4. The test-set EDER is the **mean of the per-utterance EDERs** (as ZED).

Differences from SpeechBrain's implementation, none of which changes the
value for ZED's setting (one emotional interval per utterance, 0.02 s
frames with window = stride): ZED's reference supports exactly one
emotional interval, here any number of non-overlapping ones (or none);
ZED compares labels by their first letter, here by full name; ZED's
``distribute_overlap`` (for windows longer than the stride) is not needed
since frames here never overlap; the overlap is computed in continuous time
in both.

**Frame accuracy** (a complementary, simpler score): both label sequences
are sampled at the centres of frames of ``frame_shift`` seconds (default
0.02 s; ``ceil(T / frame_shift)`` frames, the last one possibly partial,
sampled at the centre of its part inside ``[0, T]``), and the accuracy is
the number of frames whose labels agree over the number of frames, pooled
over all utterances.

A reference utterance whose ``frame_emotions`` line is missing counts as
fully wrong (EDER 1, no correct frame) and is reported in ``missing``. With
an ``emo_segments`` hypothesis an absent utterance simply means "all
neutral", as in the reference.
"""

from __future__ import annotations

import bisect
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Union

from ent.data.emotions import DEFAULT_EMOTIONS, NEUTRAL, emotion_to_index
from ent.data.tables import EmoInterval, overlapping_intervals, parse_duration, parse_emo_interval, parse_float
from ent.scoring import read_keyed_table
from ent.utils.errors import DataError
from ent.utils.fileio import read_table

PathLike = Union[str, Path]

logger = logging.getLogger(__name__)

#: Frame shift of the ZED benchmark (seconds).
FRAME_SHIFT: float = 0.02
#: How far (seconds) an ``emo_segments`` interval may end after the
#: utterance's ``utt2dur`` duration (it is clipped); beyond, it is an error.
DURATION_TOLERANCE: float = 0.05
#: Times closer than this (seconds) are equal when merging segments.
_EPS: float = 1e-9


class Interval(NamedTuple):
    """A labelled time interval ``[start, end)`` in seconds."""

    start: float
    end: float
    label: str


class FrameLabels(NamedTuple):
    """Per-frame emotion labels of one utterance (``frame_emotions`` line).

    Attributes:
        frame_shift: Seconds between frames; frame ``i`` covers
            ``[i * frame_shift, (i + 1) * frame_shift)``.
        labels: One emotion name per frame.
        lineno: Line in the file (0 if not read from a file).
    """

    frame_shift: float
    labels: List[str]
    lineno: int = 0


# ---------------------------------------------------------------- conversions
def merge_intervals(intervals: Sequence[Interval]) -> List[Interval]:
    """Sort intervals and merge touching or overlapping ones of equal label.

    Args:
        intervals: Intervals with ``start < end``.

    Returns:
        Sorted intervals where no two neighbours with the same label touch.

    Raises:
        ValueError: If an interval is empty or two intervals with different
            labels overlap.
    """
    out: List[Interval] = []
    for iv in sorted(intervals, key=lambda x: (x.start, x.end)):
        if not iv.end > iv.start:
            raise ValueError(f"empty interval {iv}")
        if out and iv.start <= out[-1].end + _EPS:
            prev = out[-1]
            if iv.label == prev.label:
                out[-1] = Interval(prev.start, max(prev.end, iv.end), prev.label)
                continue
            if iv.start < prev.end - _EPS:
                raise ValueError(f"intervals {prev} and {iv} overlap with different labels")
        out.append(iv)
    return out


def frames_to_intervals(labels: Sequence[str], frame_shift: float = FRAME_SHIFT) -> List[Interval]:
    """Turn per-frame labels into segments, merging runs of equal labels.

    Args:
        labels: One label per frame; frame ``i`` covers
            ``[i * frame_shift, (i + 1) * frame_shift)``.
        frame_shift: Seconds per frame.

    Returns:
        Contiguous segments covering ``[0, len(labels) * frame_shift)``,
        e.g. ``["n", "n", "h"]`` with 0.02 -> ``[(0, 0.04, "n"),
        (0.04, 0.06, "h")]``.
    """
    if frame_shift <= 0:
        raise ValueError(f"frame shift must be positive, got {frame_shift}")
    out: List[Interval] = []
    run_start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[run_start]:
            out.append(Interval(run_start * frame_shift, i * frame_shift, labels[run_start]))
            run_start = i
    return out


def fill_intervals(intervals: Sequence[Interval], duration: float, background: str = NEUTRAL) -> List[Interval]:
    """Complete emotional intervals into segments covering ``[0, duration]``.

    Intervals are clipped to ``[0, duration]``; the gaps get ``background``;
    adjacent equal labels are merged.

    Raises:
        ValueError: If ``duration <= 0``, an interval is empty or two
            intervals with different labels overlap.
    """
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    clipped = [
        Interval(max(0.0, iv.start), min(duration, iv.end), iv.label)
        for iv in merge_intervals(intervals)
        if iv.start < duration and iv.end > 0
    ]
    out: List[Interval] = []
    t = 0.0
    for iv in clipped:
        if iv.start > t + _EPS:
            out.append(Interval(t, iv.start, background))
        out.append(iv)
        t = iv.end
    if t < duration - _EPS:
        out.append(Interval(t, duration, background))
    return merge_intervals(out)


def frames_to_cover(
    labels: Sequence[str], frame_shift: float, duration: float, extend_last: bool = True
) -> List[Interval]:
    """Hypothesis segments of per-frame labels, clipped to ``[0, duration]``.

    Args:
        labels: One label per frame (frame ``i`` covers
            ``[i * frame_shift, (i + 1) * frame_shift)``).
        frame_shift: Seconds per frame.
        duration: Utterance duration in seconds.
        extend_last: Extend the last segment to ``duration`` when the frames
            end earlier; otherwise that tail is left uncovered (an error).

    Returns:
        Merged segments inside ``[0, duration]`` (may leave a tail uncovered).
    """
    segs = frames_to_intervals(labels, frame_shift)
    if segs and extend_last and segs[-1].end < duration:
        segs[-1] = Interval(segs[-1].start, duration, segs[-1].label)
    return [
        Interval(iv.start, min(iv.end, duration), iv.label) for iv in segs if iv.start < duration - _EPS
    ]


def num_frames(duration: float, frame_shift: float = FRAME_SHIFT) -> int:
    """``ceil(duration / frame_shift)`` frames (a partial last frame counts),
    robust to float error (``1.0 / 0.02`` -> 50)."""
    return max(1, math.ceil(round(duration / frame_shift, 6)))


def _labels_at(cover: Sequence[Interval], times: Sequence[float]) -> List[Optional[str]]:
    """Label of the segment containing each time (``None`` if uncovered)."""
    starts = [iv.start for iv in cover]
    out: List[Optional[str]] = []
    for t in times:
        k = bisect.bisect_right(starts, t) - 1
        out.append(cover[k].label if k >= 0 and cover[k].start <= t < cover[k].end else None)
    return out


def intervals_to_frames(
    intervals: Sequence[Interval],
    duration: float,
    frame_shift: float = FRAME_SHIFT,
    background: Optional[str] = NEUTRAL,
) -> List[Optional[str]]:
    """Sample labelled intervals at frame centres.

    Args:
        intervals: Non-overlapping labelled intervals (e.g. emotional
            intervals of ``emo_segments``).
        duration: Utterance duration in seconds.
        frame_shift: Seconds per frame.
        background: Label of times no interval covers; ``None`` keeps them
            unlabelled (``None`` in the output).

    Returns:
        :func:`num_frames` labels; frame ``i`` takes the label at the centre
        of ``[i * frame_shift, min((i + 1) * frame_shift, duration)]``.
    """
    n = num_frames(duration, frame_shift)
    centres = [(i * frame_shift + min((i + 1) * frame_shift, duration)) / 2.0 for i in range(n)]
    if background is None:
        cover = merge_intervals(intervals)
    else:
        cover = fill_intervals(intervals, duration, background)
    return _labels_at(cover, centres)


# ------------------------------------------------------------------- metrics
def matched_duration(ref_cover: Sequence[Interval], hyp_cover: Sequence[Interval]) -> float:
    """Total time where reference and hypothesis segments carry the same label.

    Args:
        ref_cover: Non-overlapping reference segments.
        hyp_cover: Non-overlapping hypothesis segments.
    """
    total = 0.0
    for r in ref_cover:
        for h in hyp_cover:
            if h.label == r.label:
                total += max(0.0, min(r.end, h.end) - max(r.start, h.start))
    return total


def _eder(ref_cover: Sequence[Interval], hyp_cover: Sequence[Interval], duration: float) -> float:
    value = 1.0 - matched_duration(ref_cover, hyp_cover) / duration
    return min(1.0, max(0.0, value))


def eder_from_intervals(
    ref_intervals: Sequence[Interval],
    hyp_intervals: Sequence[Interval],
    duration: float,
    background: str = NEUTRAL,
) -> float:
    """EDER of one utterance, both sides given as emotional intervals.

    Args:
        ref_intervals: Reference emotional intervals (rest = ``background``).
        hyp_intervals: Hypothesis emotional intervals (rest = ``background``).
        duration: Utterance duration in seconds (> 0).
        background: The no-emotion class.

    Returns:
        The fraction of ``[0, duration]`` where the labels differ, in [0, 1].
    """
    return _eder(
        fill_intervals(ref_intervals, duration, background),
        fill_intervals(hyp_intervals, duration, background),
        duration,
    )


def eder_from_frames(
    ref_intervals: Sequence[Interval],
    hyp_frames: Sequence[str],
    duration: float,
    frame_shift: float = FRAME_SHIFT,
    background: str = NEUTRAL,
    extend_last: bool = True,
) -> float:
    """EDER of one utterance with per-frame hypothesis labels (ZED's setting).

    Args:
        ref_intervals: Reference emotional intervals (rest = ``background``).
        hyp_frames: One hypothesis label per frame.
        duration: Utterance duration in seconds (> 0).
        frame_shift: Seconds per hypothesis frame (ZED: 0.02).
        background: The no-emotion class.
        extend_last: See :func:`frames_to_cover`.
    """
    return _eder(
        fill_intervals(ref_intervals, duration, background),
        frames_to_cover(hyp_frames, frame_shift, duration, extend_last),
        duration,
    )


def frame_accuracy(ref_frames: Sequence[Optional[str]], hyp_frames: Sequence[Optional[str]]) -> float:
    """Fraction of frames with equal labels (``None`` never matches).

    Raises:
        ValueError: On a length mismatch or no frames.
    """
    if len(ref_frames) != len(hyp_frames):
        raise ValueError(f"{len(ref_frames)} reference frames but {len(hyp_frames)} hypothesis frames")
    if not ref_frames:
        raise ValueError("no frames")
    return _count_equal(ref_frames, hyp_frames) / len(ref_frames)


def _count_equal(a: Sequence[Optional[str]], b: Sequence[Optional[str]]) -> int:
    return sum(1 for x, y in zip(a, b) if x is not None and x == y)


# ------------------------------------------------------------ test-set scores
@dataclass
class UttDiarization:
    """Diarization scores of one utterance.

    Attributes:
        utt: Utterance id.
        duration: Seconds.
        eder: Emotion diarization error rate in [0, 1].
        n_frames: Frames of the frame-accuracy grid.
        n_correct_frames: Frames with the right label.
        missing: True when the hypothesis had no line for it.
        class_frames: Reference class -> frames of the grid with that label.
        class_correct: Reference class -> those frames labelled right.
    """

    utt: str
    duration: float
    eder: float
    n_frames: int
    n_correct_frames: int
    missing: bool = False
    class_frames: Dict[str, int] = field(default_factory=dict)
    class_correct: Dict[str, int] = field(default_factory=dict)


@dataclass
class DiarizationScores:
    """Emotion diarization scores of a test set.

    Attributes:
        utts: Per-utterance scores in reference order.
        frame_shift: Frame-accuracy grid (seconds).
        hyp_format: ``"emo_segments"`` or ``"frame_emotions"``.
    """

    utts: List[UttDiarization]
    frame_shift: float = FRAME_SHIFT
    hyp_format: str = "emo_segments"
    missing: List[str] = field(default_factory=list)
    background: str = NEUTRAL

    @property
    def n_utts(self) -> int:
        """Number of scored utterances."""
        return len(self.utts)

    @property
    def n_missing(self) -> int:
        """Reference utterances without a hypothesis line."""
        return len(self.missing)

    @property
    def eder(self) -> float:
        """Mean per-utterance EDER (ZED)."""
        return sum(u.eder for u in self.utts) / len(self.utts) if self.utts else 0.0

    @property
    def frame_accuracy(self) -> float:
        """Correct frames / frames, pooled over utterances."""
        n = sum(u.n_frames for u in self.utts)
        return sum(u.n_correct_frames for u in self.utts) / n if n else 0.0

    def frame_recall(self) -> Dict[str, Tuple[int, int]]:
        """Per reference class, ``(correct, frames)`` on the grid, pooled over utterances.

        Besides the classes, ``"emotional"`` pools every class but the
        background: how many emotional frames got their own emotion.
        """
        out: Dict[str, List[int]] = {}
        for u in self.utts:
            for cls, n in u.class_frames.items():
                hit = u.class_correct.get(cls, 0)
                for key in (cls, "emotional") if cls != self.background else (cls,):
                    pair = out.setdefault(key, [0, 0])
                    pair[0] += hit
                    pair[1] += n
        return {k: (v[0], v[1]) for k, v in sorted(out.items(), key=lambda kv: (kv[0] != self.background,
                                                                              kv[0] == "emotional", kv[0]))}

    def to_dict(self) -> Dict[str, Any]:
        """Summary for ``scores.json`` (per-utterance EDERs included)."""
        return {
            "n_utts": self.n_utts,
            "eder": self.eder,
            "frame_accuracy": self.frame_accuracy,
            "frame_recall": {k: (c / n if n else 0.0) for k, (c, n) in self.frame_recall().items()},
            "class_frames": {k: n for k, (_, n) in self.frame_recall().items()},
            "n_frames": sum(u.n_frames for u in self.utts),
            "n_correct_frames": sum(u.n_correct_frames for u in self.utts),
            "frame_shift": self.frame_shift,
            "hyp_format": self.hyp_format,
            "n_missing": self.n_missing,
            "missing": list(self.missing),
            "utt_eder": {u.utt: u.eder for u in self.utts},
        }


def max_coverage_gap(frame_shift: float) -> float:
    """Largest accepted difference (seconds) between the end of the last
    hypothesis frame and the utterance duration: ``max(4 frames, 0.1 s)``
    (encoders drop a few frames at the end; more means a wrong frame shift
    or a wrong utterance)."""
    return max(4.0 * frame_shift, 0.1)


def score_diarization(
    ref_segments: Mapping[str, Sequence[Interval]],
    utt2dur: Mapping[str, float],
    hyp_segments: Optional[Mapping[str, Sequence[Interval]]] = None,
    hyp_frames: Optional[Mapping[str, FrameLabels]] = None,
    background: str = NEUTRAL,
    frame_shift: float = FRAME_SHIFT,
    extend_last: bool = True,
    hyp_path: Optional[PathLike] = None,
) -> DiarizationScores:
    """Score every utterance of ``utt2dur``.

    Args:
        ref_segments: utt -> reference emotional intervals (utterances
            without entry are all ``background``).
        utt2dur: utt -> duration (s); defines the test set and its order.
        hyp_segments: utt -> hypothesis emotional intervals (absent = all
            ``background``). Exactly one of ``hyp_segments``/``hyp_frames``.
        hyp_frames: utt -> per-frame hypothesis (absent = missing, fully
            wrong).
        background: The no-emotion class.
        frame_shift: Frame-accuracy grid (seconds).
        extend_last: See :func:`frames_to_cover`.
        hyp_path: Hypothesis file named in errors.

    Raises:
        DataError: If hypothesis ids are not in ``utt2dur`` or a frame
            hypothesis covers a very different duration
            (:func:`max_coverage_gap`).
        ValueError: On inconsistent arguments or reference ids not in
            ``utt2dur``.
    """
    if (hyp_segments is None) == (hyp_frames is None):
        raise ValueError("give exactly one of hyp_segments and hyp_frames")
    if not utt2dur:
        raise ValueError("no reference utterances")
    extra_ref = [u for u in ref_segments if u not in utt2dur]
    if extra_ref:
        raise ValueError(f"reference emo_segments has utterances without duration, e.g. '{extra_ref[0]}'")
    hyp_keys = list(hyp_segments if hyp_segments is not None else hyp_frames or {})
    for u in hyp_keys:
        if u not in utt2dur:
            line = hyp_frames[u].lineno if hyp_frames is not None else None
            raise DataError(hyp_path, line or None, f"utterance '{u}' is not in the reference")
    utts: List[UttDiarization] = []
    missing: List[str] = []
    for utt, dur in utt2dur.items():
        ref_cover = fill_intervals(ref_segments.get(utt, []), dur, background)
        grid = num_frames(dur, frame_shift)
        centres = [(i * frame_shift + min((i + 1) * frame_shift, dur)) / 2.0 for i in range(grid)]
        if hyp_frames is not None:
            frames = hyp_frames.get(utt)
            if frames is None:
                missing.append(utt)
                ref_labels = _labels_at(ref_cover, centres)
                utts.append(UttDiarization(utt, dur, 1.0, grid, 0, missing=True,
                                           class_frames=_class_counts(ref_labels, ref_labels)[0]))
                continue
            covered = len(frames.labels) * frames.frame_shift
            if abs(covered - dur) > max_coverage_gap(frames.frame_shift) + _EPS:
                raise DataError(
                    hyp_path, frames.lineno or None,
                    f"'{utt}': {len(frames.labels)} frames of {frames.frame_shift} s cover {covered:.3f} s "
                    f"but the utterance lasts {dur:.3f} s (wrong frame shift?)",
                )
            hyp_cover = frames_to_cover(frames.labels, frames.frame_shift, dur, extend_last)
        else:
            assert hyp_segments is not None
            hyp_cover = fill_intervals(hyp_segments.get(utt, []), dur, background)
        eder = _eder(ref_cover, hyp_cover, dur)
        ref_labels, hyp_labels = _labels_at(ref_cover, centres), _labels_at(hyp_cover, centres)
        class_frames, class_correct = _class_counts(ref_labels, hyp_labels)
        utts.append(UttDiarization(utt, dur, eder, grid, _count_equal(ref_labels, hyp_labels),
                                   class_frames=class_frames, class_correct=class_correct))
    if missing:
        logger.warning(
            "%d of %d reference utterances have no frame_emotions line (counted as EDER 1), e.g. '%s'",
            len(missing), len(utt2dur), missing[0],
        )
    fmt = "frame_emotions" if hyp_frames is not None else "emo_segments"
    return DiarizationScores(utts, frame_shift, fmt, missing, background)


def interval_labelled(
    utt2dur: Mapping[str, float],
    ref_segments: Mapping[str, Sequence[Interval]],
    utt2emo: Mapping[str, str],
    background: str = NEUTRAL,
) -> Tuple[Dict[str, float], List[str]]:
    """The utterances of a reference data dir whose emotion is known in time.

    An utterance with ``emo_segments`` lines is interval-labelled; one without
    is all ``background`` when its utterance label is ``background`` too.
    An utterance without lines whose ``utt2emo`` label is an emotion is
    labelled at utterance level only (e.g. the originals beside the mixes of
    :mod:`ent.data.mixing`): where its emotion lies is unknown, so it is left
    out of diarization scoring.

    Args:
        utt2dur: utt -> duration of every reference utterance.
        ref_segments: utt -> reference intervals (:func:`read_emo_segments`).
        utt2emo: utt -> utterance emotion (empty: every utterance is kept).
        background: The no-emotion class.

    Returns:
        The kept ``utt2dur`` entries (same order) and the ids left out.
    """
    kept: Dict[str, float] = {}
    left_out: List[str] = []
    for utt, dur in utt2dur.items():
        if utt in ref_segments or utt2emo.get(utt, background) == background:
            kept[utt] = dur
        else:
            left_out.append(utt)
    return kept, left_out


def _class_counts(
    ref_labels: Sequence[Optional[str]], hyp_labels: Sequence[Optional[str]]
) -> Tuple[Dict[str, int], Dict[str, int]]:
    """Frames per reference class, and how many of them the hypothesis labels the same."""
    frames: Dict[str, int] = {}
    correct: Dict[str, int] = {}
    for ref, hyp in zip(ref_labels, hyp_labels):
        if ref is None:
            continue
        frames[ref] = frames.get(ref, 0) + 1
        if hyp == ref:
            correct[ref] = correct.get(ref, 0) + 1
    return frames, correct


# --------------------------------------------------------------------- files
def read_utt2dur(path: PathLike) -> Dict[str, float]:
    """Read ``utt2dur`` (``<utt> <seconds>``, positive durations).

    Raises:
        DataError: On a malformed line, a repeated id or a non-positive
            duration (file:line).
    """
    out: Dict[str, float] = {}
    for utt, entry in read_keyed_table(path).items():
        out[utt] = parse_duration(path, entry.lineno, entry.value)
    return out


def durations_from_audio(data_dir: PathLike) -> Dict[str, float]:
    """Utterance durations of a data directory without ``utt2dur``.

    The utterances are those of ``segments`` when the directory has one,
    else the recordings of ``wav.scp`` (recording = utterance). A segment
    lasts ``end - start`` (a negative end, Kaldi's "to the end of the
    recording", takes the recording's length from its audio header); a
    whole recording lasts what its audio header says. Relative audio paths
    are taken from the current directory, as everywhere in ENT
    (:class:`~ent.data.datadir.DataDir`). Only headers are read, no audio
    is decoded.

    Args:
        data_dir: The reference data directory.

    Returns:
        utt -> duration (s) in C-locale order of the ids.

    Raises:
        DataError: If ``wav.scp`` or ``segments`` is malformed, an audio
            file is missing or unreadable, or a duration is not positive
            (naming the file and line).
    """
    from ent.data.audio import audio_info
    from ent.data.datadir import DataDir

    data = DataDir.load(data_dir, require=("wav.scp",), allow_empty_text=True)
    wav_lines = data.lines.get("wav.scp", {})
    headers: Dict[str, float] = {}

    def recording_duration(rec: str, utt: str) -> float:
        if rec not in headers:
            if rec not in data.wav_scp:
                line = data.lines.get("segments", {}).get(utt)
                raise DataError(data.path / "segments", line, f"recording '{rec}' is not in wav.scp")
            path = data.wav_scp[rec]
            try:
                headers[rec] = audio_info(path).duration
            except DataError as exc:
                raise DataError(data.path / "wav.scp", wav_lines.get(rec), f"{exc.message} ({path})") from None
        return headers[rec]

    out: Dict[str, float] = {}
    if data.segments is not None:
        for utt in sorted(data.segments):
            seg = data.segments[utt]
            end = seg.end if seg.end >= 0 else recording_duration(seg.recording, utt)
            dur = end - seg.start
            if dur <= 0:
                raise DataError(data.path / "segments", data.lines["segments"].get(utt),
                                f"'{utt}' starts at {seg.start} s, after the end of its recording ({end:.3f} s)")
            out[utt] = dur
    else:
        for utt in sorted(data.wav_scp):
            dur = recording_duration(utt, utt)
            if dur <= 0:
                raise DataError(data.path / "wav.scp", wav_lines.get(utt),
                                f"audio file is empty ({data.wav_scp[utt]})")
            out[utt] = dur
    if not out:
        raise DataError(data.path / "wav.scp", None, "file is empty")
    return out


def read_emo_segments(
    path: PathLike,
    emotions: Sequence[str] = DEFAULT_EMOTIONS,
    utt2dur: Optional[Mapping[str, float]] = None,
    tolerance: float = DURATION_TOLERANCE,
) -> Dict[str, List[Interval]]:
    """Read ``emo_segments`` (``<utt> <start> <end> <emotion>``, seconds).

    Several lines per utterance are allowed; an empty file is valid (every
    utterance neutral).

    Args:
        path: The file.
        emotions: Allowed labels.
        utt2dur: When given, every utterance must be in it and every
            interval must end at most ``tolerance`` s after the duration
            (it is then clipped to the duration).
        tolerance: See ``utt2dur``.

    Returns:
        utt -> intervals sorted by start time.

    Raises:
        DataError: On a malformed line, a bad interval, an unknown label, an
            unknown utterance, an interval past the end, or overlapping
            intervals of one utterance (file:line).
    """
    index = emotion_to_index(emotions)
    parsed: Dict[str, List[EmoInterval]] = {}
    for entry in read_table(path):
        iv = parse_emo_interval(path, entry.lineno, entry.value)
        if iv.emotion not in index:
            raise DataError(
                path, entry.lineno, f"unknown emotion '{iv.emotion}' (expected one of {', '.join(emotions)})"
            )
        if utt2dur is not None:
            if entry.key not in utt2dur:
                raise DataError(path, entry.lineno, f"utterance '{entry.key}' has no duration in utt2dur")
            dur = utt2dur[entry.key]
            if iv.end > dur + tolerance or iv.start >= dur:
                start_s, end_s = entry.value.split()[:2]
                raise DataError(
                    path, entry.lineno, f"interval {start_s}-{end_s} goes past the utterance end {dur}"
                )
            iv = replace(iv, end=min(iv.end, dur))
        parsed.setdefault(entry.key, []).append(iv)
    out: Dict[str, List[Interval]] = {}
    for utt, ivs in parsed.items():
        for a, b in overlapping_intervals(ivs, eps=_EPS)[:1]:
            raise DataError(path, b.lineno, f"interval of '{utt}' overlaps the one on line {a.lineno}")
        out[utt] = [Interval(iv.start, iv.end, iv.emotion) for iv in sorted(ivs, key=lambda iv: iv.start)]
    return out


def read_frame_emotions(path: PathLike, emotions: Sequence[str] = DEFAULT_EMOTIONS) -> Dict[str, FrameLabels]:
    """Read a ``frame_emotions`` file.

    Format, one utterance per line::

        <utt> <frame_shift_s> <emo_0> <emo_1> ... <emo_{N-1}>

    ``frame_shift_s`` is the time between encoder frames in seconds (e.g.
    ``0.04`` for 10 ms features subsampled 4 times); ``emo_i`` is the emotion
    name predicted for frame ``i``, which covers
    ``[i * frame_shift_s, (i + 1) * frame_shift_s)`` of the utterance.

    Raises:
        DataError: On a repeated id, a bad frame shift, no frame label, or
            an unknown label (file:line).
    """
    index = emotion_to_index(emotions)
    out: Dict[str, FrameLabels] = {}
    for utt, entry in read_keyed_table(path).items():
        fields = entry.value.split()
        shift = parse_float(path, entry.lineno, "frame shift", fields[0])
        if shift <= 0:
            raise DataError(path, entry.lineno, f"frame shift {fields[0]} is not positive")
        labels = fields[1:]
        if not labels:
            raise DataError(path, entry.lineno, "expected '<utt> <frame_shift_s> <emo_0> <emo_1> ...'")
        for label in labels:
            if label not in index:
                raise DataError(
                    path, entry.lineno, f"unknown emotion '{label}' (expected one of {', '.join(emotions)})"
                )
        out[utt] = FrameLabels(shift, labels, entry.lineno)
    return out


def format_diarization_report(scores: DiarizationScores) -> str:
    """Text report: EDER, frame accuracy and per-utterance EDER."""
    n = sum(u.n_frames for u in scores.utts)
    c = sum(u.n_correct_frames for u in scores.utts)
    lines = [
        f"EDER {100.0 * scores.eder:.2f} % (mean over {scores.n_utts} utterances)",
        f"frame accuracy {100.0 * scores.frame_accuracy:.2f} % ({c} / {n} frames of {scores.frame_shift} s)",
        f"hypothesis format: {scores.hyp_format}; {scores.n_missing} utterances without hypothesis",
        "frame recall: " + ", ".join(
            f"{cls} {100.0 * hit / total:.2f} % ({hit} / {total})"
            for cls, (hit, total) in scores.frame_recall().items() if total
        ),
        "",
        "Per-utterance EDER (%):",
    ]
    width = max(len(u.utt) for u in scores.utts) if scores.utts else 0
    for u in scores.utts:
        tag = " (missing hypothesis)" if u.missing else ""
        lines.append(f"{u.utt.ljust(width)}  {100.0 * u.eder:6.2f}{tag}")
    return "\n".join(lines) + "\n"
