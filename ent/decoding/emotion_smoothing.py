"""Smoothing of frame emotions: the best piecewise-constant emotion path.

The emotion of each encoder frame (ENT: the emotion joint network at the node
where the decoded path leaves the frame; FENT: the blank branch) is a
per-frame decision, so it flickers between classes where the posteriors are
close, and every flicker is a false emotion segment for diarization (EDER).
Emotions change slowly. :func:`smooth_frame_emotions` finds the label
sequence ``y`` that maximizes::

    sum_t log p_t(y_t) - switch_penalty * #{t : y_t != y_(t-1)}

by Viterbi search (a hidden Markov model whose states are the emotions, with
the frame posteriors as scores and a constant cost per change of emotion).
``switch_penalty`` is in nats: an emotion change must be paid for by that much
log posterior. 0 gives the frame-wise arg-max back.

The search needs the whole utterance, so it is applied in offline decoding
(``frame_switch_penalty`` in the decoding config); streaming outputs keep the
per-frame decisions.
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch

from ent.decoding.hypothesis import Hypothesis, with_frame_emotions

EPS = 1e-8
"""Floor of the posteriors before the log."""


def smooth_frame_emotions(posteriors: torch.Tensor, switch_penalty: float) -> List[int]:
    """The emotion path with the best total log posterior less the switch penalties.

    Args:
        posteriors: (T, C) emotion posteriors of each frame (rows sum to 1).
        switch_penalty: Cost in nats of each change of emotion between
            consecutive frames, >= 0.

    Returns:
        The T emotion ids. Ties go to the lower class id for the last frame and
        to staying in the same emotion along the path.

    Raises:
        ValueError: On a negative penalty or posteriors that are not (T, C).
    """
    if switch_penalty < 0:
        raise ValueError(f"switch_penalty must be >= 0, got {switch_penalty}")
    if posteriors.dim() != 2:
        raise ValueError(f"posteriors must have shape (T, C), got {tuple(posteriors.shape)}")
    num_frames, num_classes = posteriors.shape
    if num_frames == 0:
        return []
    scores = np.log(np.clip(posteriors.detach().cpu().double().numpy(), EPS, None))
    if switch_penalty == 0:
        return scores.argmax(axis=1).tolist()
    back = np.zeros((num_frames, num_classes), dtype=np.int64)
    stay = np.arange(num_classes)
    delta = scores[0].copy()
    for t in range(1, num_frames):
        best_prev = int(delta.argmax())
        switch = delta[best_prev] - switch_penalty
        keep = delta >= switch  # staying wins ties
        back[t] = np.where(keep, stay, best_prev)
        delta = np.where(keep, delta, switch) + scores[t]
    path = [int(delta.argmax())]
    for t in range(num_frames - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    path.reverse()
    return path


def smooth_hypothesis(hyp: Hypothesis, switch_penalty: float) -> Hypothesis:
    """``hyp`` with smoothed frame emotions; each token takes the smoothed emotion of its frame.

    Args:
        hyp: A decoded hypothesis (its ``frame_posteriors`` are used).
        switch_penalty: See :func:`smooth_frame_emotions`.

    Returns:
        A new hypothesis; posteriors, tokens, frames and score are unchanged.
    """
    return with_frame_emotions(hyp, smooth_frame_emotions(hyp.frame_posteriors, switch_penalty))
