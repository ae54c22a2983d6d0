"""Frame emotions by pieces: cut utterances at pauses and find each piece's emotions on its own.

A model trained on single-sentence utterances with full-context attention
reads an emotion from the whole utterance: on a recording where one emotional
sentence sits between neutral ones, every frame sees mostly neutral speech and
the emotional frames come out neutral too (``mini_emo`` test_sed, README).
Cutting the recording at its pauses and decoding each piece on its own gives
each frame the context of its piece only, so the emotion timeline follows the
pieces. The words still come from the whole utterance (cutting a sentence at
a pause inside it costs words: README).

:func:`split_at_pauses` finds the pauses from the frame energy of the
waveform: a frame (25 ms, hop 10 ms) is a pause frame when its energy is at
least ``pause_db`` below the utterance's 90th percentile of frame energy (the
threshold of the ``pause_fraction`` prosody functional,
:data:`ent.features.prosody.PAUSE_DB`, which measures energy on the log-mel
features instead). Every run of pause frames between the
first and the last speech frame that lasts at least ``min_pause`` seconds is
cut in its middle, at a multiple of the encoder frame (so the pieces' frames
line up with the whole utterance's). Pieces shorter than ``min_duration`` are
merged into a neighbour.

:func:`stitch_frames` joins the pieces' frame emotions into those of the whole
utterance and :func:`~ent.decoding.hypothesis.with_frame_emotions` puts them
into the utterance's hypothesis; :class:`~ent.decoding.recognizer.EmotionRecognizer` does all this
when ``frame_emotion_pause`` is set in the decoding options.
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np
import torch

from ent.data.audio import TARGET_SAMPLE_RATE
from ent.decoding.hypothesis import Hypothesis
from ent.features.prosody import PAUSE_DB

LOUD_QUANTILE = 0.9
"""The utterance's loud level: this quantile of its frame energies (dB)."""

WINDOW_S = 0.025
HOP_S = 0.010
_POWER_FLOOR = 1e-10


def frame_energy_db(wave: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Energy of 25 ms frames every 10 ms in dB (10 log10 of the mean square).

    Args:
        wave: (N,) waveform.

    Returns:
        (M,) frame energies, M = 1 + (N - window) // hop (one frame when N is
        shorter than a window).
    """
    win, hop = int(round(WINDOW_S * sample_rate)), int(round(HOP_S * sample_rate))
    x = np.asarray(wave, dtype=np.float64)
    if len(x) < win:
        x = np.pad(x, (0, win - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]
    return 10.0 * np.log10(np.mean(frames * frames, axis=1) + _POWER_FLOOR)


def pause_runs(energy_db: np.ndarray, min_frames: int, pause_db: float = PAUSE_DB) -> List[Tuple[int, int]]:
    """Interior runs of pause frames of at least ``min_frames`` frames.

    Args:
        energy_db: (M,) frame energies (:func:`frame_energy_db`).
        min_frames: Shortest run that counts, >= 1.
        pause_db: A frame is a pause frame when its energy is at least this
            far below the :data:`LOUD_QUANTILE` of the utterance's.

    Returns:
        ``[start, end)`` frame ranges, in order, strictly between the first
        and the last non-pause frame (leading and trailing silence is not a
        pause).
    """
    if len(energy_db) == 0:
        return []
    loud = float(np.quantile(energy_db, LOUD_QUANTILE))
    pause = energy_db <= loud - pause_db
    speech = np.flatnonzero(~pause)
    if len(speech) < 2:
        return []
    inner = pause[speech[0]: speech[-1] + 1]
    # run boundaries of the pause mask inside the speech span
    edges = np.flatnonzero(np.diff(np.concatenate([[0], inner.astype(np.int8), [0]])))
    runs = []
    for start, end in zip(edges[0::2], edges[1::2]):
        if end - start >= min_frames:
            runs.append((int(start + speech[0]), int(end + speech[0])))
    return runs


def split_at_pauses(
    wave: np.ndarray,
    min_pause: float,
    min_duration: float,
    align: int,
    pause_db: float = PAUSE_DB,
    sample_rate: int = TARGET_SAMPLE_RATE,
) -> List[Tuple[int, int]]:
    """Cut a waveform in the middle of its pauses.

    Args:
        wave: (N,) waveform.
        min_pause: Shortest pause that is cut, in seconds (> 0).
        min_duration: Shortest piece in seconds; a shorter piece is merged
            into the piece before it (the first one into the next).
        align: Cuts fall on multiples of this many samples (the encoder frame).
        pause_db: See :func:`pause_runs`.

    Returns:
        ``[start, end)`` sample ranges covering ``[0, N)`` without gaps or
        overlaps, in order; ``[(0, N)]`` when no pause is cut.
    """
    if min_pause <= 0 or align < 1:
        raise ValueError(f"min_pause must be > 0 and align >= 1, got {min_pause} and {align}")
    n = len(wave)
    hop = int(round(HOP_S * sample_rate))
    win = int(round(WINDOW_S * sample_rate))
    runs = pause_runs(frame_energy_db(wave, sample_rate), max(1, math.ceil(min_pause / HOP_S - 1e-9)), pause_db)
    cuts: List[int] = []
    for start, end in runs:
        # frame i covers samples [i * hop, i * hop + win): the run's middle sample
        middle = ((start * hop) + ((end - 1) * hop + win)) / 2.0
        cut = int(round(middle / align)) * align
        if 0 < cut < n and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    bounds = [0] + cuts + [n]
    shortest = min_duration * sample_rate
    pieces: List[Tuple[int, int]] = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        if pieces and (end - start < shortest or pieces[-1][1] - pieces[-1][0] < shortest):
            pieces[-1] = (pieces[-1][0], end)
        else:
            pieces.append((start, end))
    return pieces


def piece_frames(spans: Sequence[Tuple[int, int]], align: int, total: int) -> List[int]:
    """Encoder frames of the whole utterance that each piece covers.

    Args:
        spans: Pieces from :func:`split_at_pauses` (cut at multiples of ``align``).
        align: Samples per encoder frame.
        total: Encoder frames of the whole utterance.

    Returns:
        One count per piece: ``(end - start) / align`` for all but the last,
        which takes the rest of ``total``.

    Raises:
        ValueError: If the cuts leave the last piece no frame (the encoder
            gives far fewer frames than ``align`` implies: a model whose
            ``frame_shift`` does not match its encoder).
    """
    counts = [(end - start) // align for start, end in spans[:-1]]
    last = total - sum(counts)
    if last < 1:
        raise ValueError(f"pieces {list(spans)} at {align} samples per frame need more than the {total} "
                         "encoder frames of the utterance (does the model's frame_shift match its encoder?)")
    return counts + [last]


def _fit_frames(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``x`` (T, ...) cut or padded (repeating its last row) to ``num_frames`` rows."""
    if x.size(0) >= num_frames:
        return x[:num_frames]
    return torch.cat([x, x[-1:].expand(num_frames - x.size(0), *x.shape[1:])])


def stitch_frames(pieces: Sequence[Hypothesis], num_frames: Sequence[int]) -> Tuple[List[int], torch.Tensor]:
    """Frame emotions of a whole utterance from those of its consecutive pieces.

    Piece ``k`` takes exactly ``num_frames[k]`` frames of the whole
    utterance: its frame emotions and posteriors are cut, or padded with
    those of its last frame, to that length (the encoder of a piece may give
    a frame more or less than its share).

    Args:
        pieces: Hypotheses of the pieces in time order (each with >= 1 frame).
        num_frames: Frames of the whole utterance that each piece covers
            (>= 1 each; :func:`piece_frames`).

    Returns:
        The emotion id of every frame (sum(num_frames)) and the frame
        posteriors (sum(num_frames), C).
    """
    if len(pieces) != len(num_frames) or not pieces:
        raise ValueError(f"{len(pieces)} pieces for {len(num_frames)} frame counts")
    if min(num_frames) < 1 or min(h.num_frames for h in pieces) < 1:
        raise ValueError("every piece needs at least one frame")
    emotions: List[int] = []
    posteriors = []
    for hyp, count in zip(pieces, num_frames):
        emotions += _fit_frames(torch.tensor(hyp.frame_emotions), count).tolist()
        posteriors.append(_fit_frames(hyp.frame_posteriors, count))
    return emotions, torch.cat(posteriors)
