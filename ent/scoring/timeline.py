"""A timeline picture of one utterance: emotions over time, words, waveform.

:func:`plot_timeline` draws, from plain data, one PNG with (top to bottom)

* the waveform envelope (optional: when the samples are given),
* the **reference** emotion band: the reference emotional intervals coloured
  by emotion, the rest of the utterance in the neutral colour (optional),
* the **hypothesis** emotion band: the per-frame emotions (frame ``i``
  covering ``[i * frame_shift, (i + 1) * frame_shift)``, the last one
  extended to the end as in EDER scoring) or hypothesis intervals,
* the words at their times, with vertical ticks at the word boundaries
  drawn across the bands (when there are words),

one colour per emotion with a legend (neutral light grey, then a fixed
palette in the order of the emotion list, so that pictures of one run
compare). ``ent.bin.score --diarization`` draws it for a sample of
utterances and ``ent-transcribe --plot`` for the files it transcribes.

Matplotlib's Agg canvas is used directly (no pyplot, no global backend
change); the PNG is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from ent.scoring.diarization import Interval, fill_intervals, frames_to_cover
from ent.utils.fileio import atomic_write

PathLike = Union[str, Path]

#: Colour of the first (no-emotion) class.
NEUTRAL_COLOUR = "#d9d9d9"
#: Colours of the other classes, in the order of the emotion list.
PALETTE = ("#f2b701", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#ff7f0e")
#: Envelope resolution: at most this many (min, max) pairs.
_ENVELOPE_BINS = 2000


class TimedWord(NamedTuple):
    """A word with its time span in seconds."""

    text: str
    start: float
    end: float


def emotion_colours(emotions: Sequence[str]) -> List[str]:
    """Colour of each emotion (first: :data:`NEUTRAL_COLOUR`, then :data:`PALETTE`, cycled)."""
    return [NEUTRAL_COLOUR if i == 0 else PALETTE[(i - 1) % len(PALETTE)] for i in range(len(emotions))]


def _check_labels(intervals: Sequence[Interval], emotions: Sequence[str], what: str) -> None:
    for iv in intervals:
        if iv.label not in emotions:
            raise ValueError(f"{what} emotion '{iv.label}' is not one of {', '.join(emotions)}")


def _envelope(wave: np.ndarray, sample_rate: int, duration: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(times, lower, upper)`` of the waveform's min/max per bin, clipped to ``duration``."""
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)[: int(round(duration * sample_rate))]
    if wave.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    bins = min(_ENVELOPE_BINS, wave.size)
    edges = np.linspace(0, wave.size, bins + 1).astype(np.int64)
    lower = np.minimum.reduceat(wave, edges[:-1])
    upper = np.maximum.reduceat(wave, edges[:-1])
    times = (edges[:-1] + edges[1:]) / 2.0 / sample_rate
    return times, lower, upper


def plot_timeline(
    path: PathLike,
    duration: float,
    emotions: Sequence[str],
    ref_intervals: Optional[Sequence[Tuple[float, float, str]]] = None,
    hyp_frames: Optional[Sequence[str]] = None,
    frame_shift: Optional[float] = None,
    hyp_intervals: Optional[Sequence[Tuple[float, float, str]]] = None,
    words: Sequence[Tuple[str, float, float]] = (),
    title: Optional[str] = None,
    wave: Optional[np.ndarray] = None,
    sample_rate: int = 16000,
) -> None:
    """Draw the emotion timeline of one utterance into a PNG.

    Args:
        path: Output PNG (parent directories are created), written atomically.
        duration: Utterance duration in seconds (> 0): the time axis.
        emotions: Emotion classes; the first is the no-emotion class that
            fills the time outside intervals. Fixes the colours and the
            legend.
        ref_intervals: Reference emotional intervals ``(start, end,
            emotion)`` in seconds (the rest is neutral); ``None``: no
            reference band (an empty list is an all-neutral reference).
        hyp_frames: One hypothesis emotion per frame (with ``frame_shift``).
        frame_shift: Seconds per hypothesis frame.
        hyp_intervals: Hypothesis emotional intervals instead of frames (the
            rest neutral). At most one of ``hyp_frames``/``hyp_intervals``;
            neither: no hypothesis band.
        words: ``(word, start, end)`` (e.g. :class:`TimedWord`), seconds;
            empty: no word row.
        title: Figure title (e.g. utterance id and EDER).
        wave: (N,) samples for the envelope row (optional).
        sample_rate: Sample rate of ``wave``.

    Raises:
        ValueError: If ``duration`` is not positive, there is neither a
            reference nor a hypothesis, both hypothesis forms are given,
            ``hyp_frames`` comes without a positive ``frame_shift``, or a
            label is not in ``emotions``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    if not emotions:
        raise ValueError("no emotion classes")
    if hyp_frames is not None and hyp_intervals is not None:
        raise ValueError("give at most one of hyp_frames and hyp_intervals")
    if hyp_frames is not None and not (frame_shift is not None and frame_shift > 0):
        raise ValueError(f"hyp_frames need a positive frame_shift, got {frame_shift}")
    background = emotions[0]
    colour = dict(zip(emotions, emotion_colours(emotions)))

    bands: List[Tuple[str, List[Interval]]] = []
    if ref_intervals is not None:
        ref = fill_intervals([Interval(*iv) for iv in ref_intervals], duration, background)
        _check_labels(ref, emotions, "reference")
        bands.append(("reference", ref))
    if hyp_frames is not None:
        assert frame_shift is not None
        hyp = frames_to_cover(list(hyp_frames), frame_shift, duration) if len(hyp_frames) else []
        _check_labels(hyp, emotions, "hypothesis")
        bands.append(("hypothesis", hyp))
    elif hyp_intervals is not None:
        hyp = fill_intervals([Interval(*iv) for iv in hyp_intervals], duration, background)
        _check_labels(hyp, emotions, "hypothesis")
        bands.append(("hypothesis", hyp))
    if not bands:
        raise ValueError("nothing to draw: give reference intervals or a hypothesis")
    timed = [TimedWord(str(w[0]), float(w[1]), float(w[2])) for w in words]

    width = float(np.clip(2.0 + 1.1 * duration, 6.0, 20.0))
    rows: List[Tuple[str, float]] = []
    if wave is not None:
        rows.append(("wave", 0.9))
    rows.append(("bands", 0.45 * len(bands) + 0.1))
    if timed:
        rows.append(("words", 0.9))
    height = sum(h for _, h in rows) + 1.1
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(rows), 1, height_ratios=[h for _, h in rows], hspace=0.08)
    axes = {}
    first = None
    for i, (name, _) in enumerate(rows):
        ax = fig.add_subplot(grid[i, 0], sharex=first)
        first = first or ax
        axes[name] = ax
        ax.set_xlim(0.0, duration)
        if i < len(rows) - 1:
            ax.tick_params(axis="x", labelbottom=False)
    axes[rows[-1][0]].set_xlabel("time (s)")

    if wave is not None:
        ax = axes["wave"]
        times, lower, upper = _envelope(wave, sample_rate, duration)
        ax.fill_between(times, lower, upper, color="#555555", linewidth=0)
        peak = float(max(np.max(np.abs(lower), initial=0.0), np.max(np.abs(upper), initial=0.0)))
        ax.set_ylim(-1.05 * peak if peak > 0 else -1, 1.05 * peak if peak > 0 else 1)
        ax.set_yticks([])
        ax.set_ylabel("wave", rotation=0, ha="right", va="center", fontsize=8)

    ax = axes["bands"]
    for row, (name, cover) in enumerate(reversed(bands)):
        ax.broken_barh([(iv.start, iv.end - iv.start) for iv in cover], (row + 0.1, 0.8),
                       facecolors=[colour[iv.label] for iv in cover], edgecolor="none")
    ax.set_ylim(0.0, len(bands))
    ax.set_yticks([r + 0.5 for r in range(len(bands))])
    ax.set_yticklabels([name for name, _ in reversed(bands)], fontsize=8)
    ax.tick_params(axis="y", length=0)

    if timed:
        boundaries = sorted({t for w in timed for t in (w.start, w.end) if 0.0 <= t <= duration})
        for name in axes:
            if name != "wave":
                axes[name].vlines(boundaries, 0, 1, transform=axes[name].get_xaxis_transform(),
                                  colors="black", linewidth=0.6, alpha=0.6)
        ax = axes["words"]
        ax.set_yticks([])
        ax.set_ylim(0.0, 1.0)
        # Horizontal labels when every word fits its span (about 0.075 in per 8-point character).
        inches_per_s = width * 0.8 / duration
        fits = all(len(w.text) * 0.075 <= max(w.end - w.start, 0.0) * inches_per_s for w in timed)
        for w in timed:
            mid = min(max((w.start + w.end) / 2.0, 0.0), duration)
            ax.text(mid, 0.5, w.text, ha="center", va="center", fontsize=8, rotation=0 if fits else 90,
                    clip_on=True)

    handles = [Patch(facecolor=colour[e], edgecolor="none", label=e) for e in emotions]
    fig.legend(handles=handles, loc="upper right", ncol=len(emotions), frameon=False, fontsize=8)
    if title:
        fig.suptitle(title, x=0.01, ha="left", fontsize=9)
    fig.subplots_adjust(left=max(0.03, 0.8 / width), right=0.99, top=1.0 - 0.55 / height,
                        bottom=0.55 / height)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
