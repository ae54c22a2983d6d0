"""Utterance prosody functionals: pitch, loudness and rhythm statistics of an utterance.

Speech emotion recognition has long described an utterance by *functionals*
of its frame-level prosody (means, spreads and percentiles of pitch and
energy, the share of voiced and silent time; e.g. the eGeMAPS set). A
mean-pooled encoder output holds the level of such contours but not easily
their spread, and on ``mini_emo`` the classes differ most in pitch range and
loudness (``ent/synth/prosody.py``). :func:`prosody_functionals` computes
:data:`PROSODY_FUNCTIONALS` from the frontend's fbank + pitch features (before
CMVN), batched and length masked; the utterance head can read them next to
its pooled encoder output (``head_prosody: true``, see
:class:`~ent.models.transducer.EmotionTransducer`).

Functionals are only comparable within a voice: a voice's pitch range and
loudness are its own. They are therefore z-normalized with the mean and
standard deviation of the functionals over the utterances of the same
speaker (:func:`normalize_prosody`), computed without labels together with
the per-speaker CMVN statistics (:func:`ent.features.cmvn.speaker_cmvn` with
``prosody=True``), or, without speaker statistics, with global ones.

Measured on ``mini_emo`` (egs/mini_emo/ent1/RESULTS.md, history): a logistic regression on these
13 speaker-normalized functionals of ``train`` reaches test UA 87.0 % alone,
and 87.5 % fused with the posteriors of an ENT head that reaches 85.0 %;
without the per-speaker normalization, 84.0 % fused. ENT and FENT with the
fitted prosody expert reach test UA 88.0 and 89.0 % (84.7 and 84.0 % without).

The frame features used (``F = n_mels + 2``): the log-mel bins ``[:n_mels]``
(their mean is the frame's log energy), log F0 ``[n_mels]`` and the NCCF
voicing strength ``[n_mels + 1]`` of :mod:`ent.features.pitch`.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor

PROSODY_FUNCTIONALS: Tuple[str, ...] = (
    "f0_mean",            # log F0 over voiced frames: mean,
    "f0_std",             # standard deviation,
    "f0_p10",             # 10th, 50th and 90th percentile,
    "f0_p50",
    "f0_p90",
    "f0_range",           # p90 - p10
    "energy_mean",        # frame log energy (mean log-mel bin): mean,
    "energy_std",         # standard deviation
    "voiced_fraction",    # share of voiced frames
    "nccf_mean",          # voicing strength: mean,
    "nccf_std",           # standard deviation
    "pause_fraction",     # share of frames 20 dB or more below the loud frames (p90)
    "voicing_onset_rate", # unvoiced -> voiced transitions per 100 frames (syllable rate)
)
"""The functionals of :func:`prosody_functionals`, in column order."""

NUM_PROSODY = len(PROSODY_FUNCTIONALS)

VOICED_NCCF = 0.6
"""NCCF above which a frame counts as voiced."""

MIN_VOICED = 3
"""With fewer voiced frames, every frame of the utterance counts as voiced
(the pitch functionals of a whispered or very short utterance)."""

PAUSE_DB = 20.0
"""A frame this far below the utterance's 90th energy percentile is a pause."""

Z_CLIP = 5.0
"""Normalized functionals are clipped to ``[-Z_CLIP, Z_CLIP]`` (a speaker
with few utterances has a tiny spread)."""

VAR_FLOOR = 1.0e-6
"""Variance floor of the normalization statistics."""


def _masked_quantiles(values: Tensor, mask: Tensor, qs: Tuple[float, ...]) -> Tensor:
    """Linear-interpolation quantiles (numpy's default) of the masked values of each row.

    Args:
        values: (B, T); mask: (B, T) bool with at least one True per row.

    Returns:
        (B, len(qs)).
    """
    big = torch.finfo(values.dtype).max
    ordered = values.masked_fill(~mask, big).sort(dim=1).values
    count = mask.sum(dim=1).to(values.dtype)  # (B,)
    out = []
    for q in qs:
        pos = q * (count - 1)
        low = pos.floor().long()
        high = pos.ceil().long()
        frac = pos - low.to(values.dtype)
        v_low = ordered.gather(1, low.unsqueeze(1)).squeeze(1)
        v_high = ordered.gather(1, high.unsqueeze(1)).squeeze(1)
        out.append(v_low + frac * (v_high - v_low))
    return torch.stack(out, dim=1)


def _masked_mean_std(values: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
    """Mean and population standard deviation of the masked values of each row. (B,), (B,)"""
    weight = mask.to(values.dtype)
    count = weight.sum(dim=1).clamp(min=1.0)
    mean = (values * weight).sum(dim=1) / count
    var = (((values - mean.unsqueeze(1)) ** 2) * weight).sum(dim=1) / count
    return mean, var.clamp(min=0.0).sqrt()


@torch.no_grad()
def prosody_functionals(feats: Tensor, feats_lens: Tensor, n_mels: int) -> Tensor:
    """The :data:`PROSODY_FUNCTIONALS` of each utterance of a padded batch.

    Padding never changes an utterance's functionals (each is computed over
    its first ``feats_lens[b]`` frames only). No gradient flows: the
    functionals describe the input.

    Args:
        feats: Frontend features before normalization: ``n_mels`` log-mel
            bins, log F0, NCCF. (B, T, n_mels + 2)
        feats_lens: Valid frames per utterance, each in ``[1, T]``. (B,)
        n_mels: Number of log-mel bins.

    Returns:
        Functionals. (B, K), K = :data:`NUM_PROSODY`, float32.

    Raises:
        ValueError: On a feature size other than ``n_mels + 2`` or an empty utterance.
    """
    if feats.dim() != 3 or feats.size(-1) != n_mels + 2:
        raise ValueError(
            f"prosody functionals need (B, T, n_mels + 2) = (B, T, {n_mels + 2}) fbank + pitch "
            f"features, got {tuple(feats.shape)}"
        )
    if feats.size(0) == 0:
        return feats.new_zeros(0, NUM_PROSODY, dtype=torch.float32)
    if int(feats_lens.min()) < 1 or int(feats_lens.max()) > feats.size(1):
        raise ValueError(f"feats_lens must lie in [1, {feats.size(1)}], got {feats_lens.tolist()}")
    x = feats.double()
    lens = feats_lens.to(x.device)
    valid = torch.arange(x.size(1), device=x.device).unsqueeze(0) < lens.unsqueeze(1)  # (B, T)
    energy = x[:, :, :n_mels].mean(dim=-1)
    log_f0 = x[:, :, n_mels]
    nccf = x[:, :, n_mels + 1]

    voiced = valid & (nccf > VOICED_NCCF)
    few = voiced.sum(dim=1) < MIN_VOICED
    pitch_frames = torch.where(few.unsqueeze(1), valid, voiced)
    f0_mean, f0_std = _masked_mean_std(log_f0, pitch_frames)
    f0_q = _masked_quantiles(log_f0, pitch_frames, (0.1, 0.5, 0.9))
    e_mean, e_std = _masked_mean_std(energy, valid)
    count = lens.to(x.dtype)
    voiced_fraction = voiced.sum(dim=1).to(x.dtype) / count
    n_mean, n_std = _masked_mean_std(nccf, valid)
    loud = _masked_quantiles(energy, valid, (0.9,)).squeeze(1)
    pause = valid & (energy < (loud - PAUSE_DB * math.log(10.0) / 10.0).unsqueeze(1))
    pause_fraction = pause.sum(dim=1).to(x.dtype) / count
    onsets = (voiced[:, 1:] & ~voiced[:, :-1]).sum(dim=1).to(x.dtype)
    onset_rate = 100.0 * onsets / count
    out = torch.stack(
        [f0_mean, f0_std, f0_q[:, 0], f0_q[:, 1], f0_q[:, 2], f0_q[:, 2] - f0_q[:, 0],
         e_mean, e_std, voiced_fraction, n_mean, n_std, pause_fraction, onset_rate],
        dim=1,
    )
    return out.float()


def normalize_prosody(functionals: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Z-normalize functionals with (speaker or global) statistics, clipped to ``±Z_CLIP``.

    Args:
        functionals: (B, K); mean, std: (B, K) or (K,).

    Returns:
        (B, K) ``clip((functionals - mean) / std)``.
    """
    z = (functionals - mean) / std.clamp(min=math.sqrt(VAR_FLOOR))
    return z.clamp(-Z_CLIP, Z_CLIP)
