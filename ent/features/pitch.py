"""Frame-local pitch features: log F0 and voicing strength from the NCCF.

Emotional speech differs from neutral speech largely in its pitch level and
pitch movement, which log-mel filterbanks show only indirectly (in their
lowest bins; above about 1 kHz one of 80 mel bins spans several harmonics). :func:`nccf_pitch` adds two features per
frame, computed on the very frames the filterbank uses (Kaldi's
``snip_edges`` framing, so streaming stays exact):

* ``log_f0``: the natural log of the F0 candidate in Hz whose lag has the
  largest normalized cross-correlation function (NCCF) in the frame, less a
  small cost per octave of lag (:data:`OCTAVE_COST`) against period doubling,
* ``nccf``: that largest NCCF, in [-1, 1]; near 1 in voiced frames, low in
  silence, noise and fricatives, so the model can weigh ``log_f0`` by it.

For a frame ``x`` of ``W`` samples and a lag ``L``::

    nccf(L) = sum_{n < W-L} x[n] x[n+L] / sqrt(sum_{n < W-L} x[n]^2 * sum_{L <= n < W} x[n]^2 + ballast)

Unlike Kaldi's ``compute-kaldi-pitch-feats`` there is no Viterbi tracking
across frames, no interpolation through unvoiced frames and no moving-window
mean subtraction: each frame depends on its own samples only, and the voice's
pitch level is removed by (per-speaker) CMVN, which keeps the emotion's shift
of the pitch level relative to the speaker.

Measured on ``mini_emo`` (egs/mini_emo/ent1/RESULTS.md, history): a linear classifier on per-speaker
normalized utterance statistics reaches test UA 79.2 % from the fbank alone
and 88.0 % with these pitch features added.
"""

from __future__ import annotations

from typing import Tuple

import torch

PITCH_DIM = 2
"""Features per frame: log F0 and NCCF."""

BALLAST_DB = -55.0
"""Power floor per sample of the NCCF denominator, dB relative to full scale
(waveform in [-1, 1]): the NCCF of frames near or below it shrinks towards 0,
so that quiet background noise, whose correlation at short lags is high for
coloured noise, does not look voiced."""


OCTAVE_COST = 0.02
"""Penalty on the NCCF per octave of lag above the shortest lag searched."""


def lag_range(sample_rate: int, fmin: float, fmax: float, win: int) -> Tuple[int, int]:
    """The smallest and largest lag (samples) searched for F0 in [``fmin``, ``fmax``] Hz.

    Raises:
        ValueError: If the range is empty or its longest lag does not fit in a
            frame of ``win`` samples.
    """
    lmin, lmax = int(sample_rate // fmax), int(-(-sample_rate // fmin))
    if not 1 <= lmin < lmax < win:
        raise ValueError(
            f"pitch_fmin/pitch_fmax {fmin}/{fmax} Hz give lags {lmin}-{lmax} samples; they must lie in "
            f"[1, {win - 1}] (the frame length at {sample_rate} Hz)"
        )
    return lmin, lmax


def _fft_size(n: int) -> int:
    """The smallest multiple of 8 >= ``n`` whose other prime factors are 2, 3 and 5 (fast real FFT sizes)."""
    n = -(-n // 8) * 8
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 8


def nccf_pitch(frames: torch.Tensor, sample_rate: int, fmin: float, fmax: float) -> torch.Tensor:
    """Log F0 and voicing strength of every frame.

    Args:
        frames: (T, W) float waveform frames in [-1, 1] (not windowed).
        sample_rate: Sample rate in Hz.
        fmin: Lowest F0 searched, Hz; its lag must be shorter than ``W``.
        fmax: Highest F0 searched, Hz.

    Returns:
        (T, 2) float32: ``log_f0`` (natural log of Hz) and ``nccf`` of the best lag.

    Raises:
        ValueError: If the lag range is empty or does not fit in a frame.
    """
    num_frames, win = frames.shape
    lmin, lmax = lag_range(sample_rate, fmin, fmax, win)
    if num_frames == 0:
        return frames.new_zeros((0, PITCH_DIM), dtype=torch.float32)
    x = frames.to(torch.float32)
    x = x - x.mean(dim=1, keepdim=True)
    n_fft = _fft_size(win + lmax)  # no circular wrap-around for lags <= lmax
    spec = torch.fft.rfft(x, n_fft)
    corr = torch.fft.irfft(spec.real.square() + spec.imag.square(), n_fft)  # corr[:, L] = sum x[n] x[n+L]
    lags = torch.arange(lmin, lmax + 1, device=frames.device)
    energy = torch.cumsum(x.square(), dim=1)  # energy[:, k] = sum_{n <= k} x[n]^2
    total = energy[:, -1:]
    head = energy[:, win - 1 - lmax : win - lmin].flip(1)  # [:, L - lmin] = sum_{n < W-L} x[n]^2
    tail = total - energy[:, lmin - 1 : lmax]  # [:, L - lmin] = sum_{n >= L} x[n]^2
    ballast = (win * 10.0 ** (BALLAST_DB / 10.0)) ** 2
    nccf = corr[:, lmin : lmax + 1] / torch.sqrt(head * tail + ballast)
    # Praat's octave cost: a lag k times longer loses OCTAVE_COST * log2(k), so
    # that multiples of the period (whose NCCF is as high, and higher when
    # fewer samples overlap) do not win over the period itself.
    score = nccf - OCTAVE_COST * torch.log2(lags.to(torch.float32) / lmin)
    idx = score.argmax(dim=1)
    best = nccf.gather(1, idx.unsqueeze(1)).squeeze(1)
    log_f0 = torch.log(sample_rate / lags[idx].to(torch.float32))
    return torch.stack([log_f0, best], dim=1)
