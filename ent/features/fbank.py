"""Kaldi-compatible log-mel filterbank features, computed on the fly.

:class:`Fbank` is ENT's model frontend (an ESPnet ``AbsFrontend``): it turns a
padded batch of 16 kHz waveforms into padded 80-dim log-mel features with
``torchaudio.compliance.kaldi.fbank`` (Kaldi's ``compute-fbank-feats``: povey
window, pre-emphasis 0.97, DC offset removal, power spectrum, mel bins from
20 Hz to Nyquist, ``snip_edges``).

Waveforms in ENT are floats in [-1, 1]; they are scaled by 32768 before the
transform so that features (and the dither amount) are on Kaldi's 16-bit
integer scale, as in Kaldi, WeNet and icefall.

With ``pitch: true`` two pitch features of the same frames follow the mel bins
(:mod:`ent.features.pitch`: log F0 and NCCF voicing strength; Kaldi's
``fbank_pitch`` feature type has three, computed across frames).

With ``vtlp_range: [lo, hi]`` each training utterance gets its own random
vocal tract length perturbation (VTLP, Jaitly and Hinton 2013): Kaldi's VTLN
warp of the mel filterbank's frequency axis with a factor drawn uniformly from
``[lo, hi]``, which mimics a longer or shorter vocal tract, i.e. another
speaker's formants; each factor's filterbank is computed once. Evaluation mode
never warps. The pitch features read the waveform and are not warped.

The pipeline is Kaldi's, step by step as in ``torchaudio.compliance.kaldi.fbank``
(tested equal to it), split in two: the power spectrum of the frames, then the
mel projection. Mel filterbanks are computed once per warp factor (VTLP
factors are drawn on a grid of 0.001). Each utterance is transformed on its
own, so padding never changes an utterance's features; padded frames are
zero.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torchaudio.compliance.kaldi as kaldi
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from torch import Tensor

from ent.features.pitch import PITCH_DIM, lag_range, nccf_pitch

SAMPLE_RATE = 16000
INT16_SCALE = 32768.0
PREEMPHASIS = 0.97  # Kaldi's --preemphasis-coefficient
LOW_FREQ, HIGH_FREQ = 20.0, 0.0  # mel bins from 20 Hz to Nyquist (0: Nyquist)
VTLN_LOW, VTLN_HIGH = 100.0, -500.0  # Kaldi's --vtln-low/--vtln-high (negative: offset from Nyquist)
WARP_STEP = 0.001  # VTLP warp factors are drawn on this grid (one cached filterbank each)


class Fbank(AbsFrontend):
    """Log-mel filterbank frontend.

    Args:
        n_mels: Number of mel bins (feature dimension).
        frame_length_ms: Window length in milliseconds.
        frame_shift_ms: Frame shift in milliseconds.
        dither: Dither amount (16-bit scale) added in training mode only;
            evaluation mode always uses 0, so features are deterministic.
        energy_floor: Kaldi's ``--energy-floor`` (only used for the frame
            energy, which plain fbank features do not include).
        sample_rate: Sample rate of the input waveforms.
        scale: Factor applied to the waveform before the transform (32768
            maps [-1, 1] floats to the 16-bit scale Kaldi expects).
        pitch: Append log F0 and NCCF voicing strength of each frame
            (:func:`ent.features.pitch.nccf_pitch`); the feature dimension
            becomes ``n_mels + 2``.
        pitch_fmin: Lowest F0 searched, Hz (its period must fit in a frame).
        pitch_fmax: Highest F0 searched, Hz.
        vtlp_range: ``[lo, hi]`` warp factors of vocal tract length
            perturbation, drawn per utterance in training mode only (Kaldi's
            ``--vtln-warp``; 1.0 is no warp, ``[0.9, 1.1]`` is usual); None:
            no perturbation.
    """

    def __init__(
        self,
        n_mels: int = 80,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
        dither: float = 0.0,
        energy_floor: float = 0.0,
        sample_rate: int = SAMPLE_RATE,
        scale: float = INT16_SCALE,
        pitch: bool = False,
        pitch_fmin: float = 60.0,
        pitch_fmax: float = 450.0,
        vtlp_range: Optional[Sequence[float]] = None,
    ) -> None:
        super().__init__()
        if n_mels <= 0 or frame_length_ms <= 0 or frame_shift_ms <= 0 or dither < 0:
            raise ValueError("n_mels, frame_length_ms and frame_shift_ms must be positive and dither >= 0")
        self.n_mels = n_mels
        self.frame_length_ms = frame_length_ms
        self.frame_shift_ms = frame_shift_ms
        self.dither = dither
        self.energy_floor = energy_floor
        self.sample_rate = sample_rate
        self.scale = scale
        # Same rounding as torchaudio/Kaldi: int(sample_rate * ms * 0.001).
        self.window_size = int(sample_rate * frame_length_ms * 0.001)
        self.window_shift = int(sample_rate * frame_shift_ms * 0.001)
        self.padded_window_size = 1 << (self.window_size - 1).bit_length()  # Kaldi's round_to_power_of_two
        self._banks: Dict[Tuple[float, str], Tensor] = {}
        self.pitch = bool(pitch)
        self.pitch_fmin = float(pitch_fmin)
        self.pitch_fmax = float(pitch_fmax)
        if self.pitch:  # refuse a bad range now rather than at the first utterance
            lag_range(sample_rate, self.pitch_fmin, self.pitch_fmax, self.window_size)
        self.vtlp_range: Optional[Tuple[float, float]] = None
        if vtlp_range is not None:
            if len(vtlp_range) != 2:
                raise ValueError(f"vtlp_range must be [lo, hi], got {vtlp_range!r}")
            lo, hi = float(vtlp_range[0]), float(vtlp_range[1])
            # Kaldi's piecewise-linear warp stays monotonic for moderate factors only.
            if not 0.5 <= lo <= hi <= 2.0:
                raise ValueError(f"vtlp_range must satisfy 0.5 <= lo <= hi <= 2.0, got [{lo}, {hi}]")
            self.vtlp_range = (lo, hi)

    def output_size(self) -> int:
        """Feature dimension: ``n_mels``, plus 2 with ``pitch``."""
        return self.n_mels + (PITCH_DIM if self.pitch else 0)

    def num_frames(self, num_samples: Union[int, torch.Tensor]) -> Union[int, torch.Tensor]:
        """Kaldi's frame count with ``snip_edges``: ``1 + (N - window) // shift``, 0 when ``N < window``.

        Args:
            num_samples: An int or an integer tensor of any shape.
        """
        if isinstance(num_samples, torch.Tensor):
            n = num_samples.long()
            frames = torch.div(n - self.window_size, self.window_shift, rounding_mode="floor") + 1
            return torch.where(n < self.window_size, torch.zeros_like(frames), frames)
        n = int(num_samples)
        if n < self.window_size:
            return 0
        return 1 + (n - self.window_size) // self.window_shift

    def draw_warp(self) -> float:
        """The VTLP warp factor of the next utterance: 1.0 unless training with ``vtlp_range``.

        Uniform in the range, rounded to a multiple of 0.001; drawn from
        torch's global generator, so seeded training is reproducible.
        """
        if not self.training or self.vtlp_range is None:
            return 1.0
        lo, hi = self.vtlp_range
        return round((lo + (hi - lo) * float(torch.rand(()))) / WARP_STEP) * WARP_STEP

    def mel_banks(self, warp: float, device: torch.device) -> Tensor:
        """Kaldi's mel filterbank for a VTLN warp factor, with its zero Nyquist column (cached).

        Returns:
            (n_mels, padded_window_size // 2 + 1) float32.
        """
        key = (round(float(warp), 6), str(device))
        banks = self._banks.get(key)
        if banks is None:
            banks, _ = kaldi.get_mel_banks(
                self.n_mels, self.padded_window_size, float(self.sample_rate),
                LOW_FREQ, HIGH_FREQ, VTLN_LOW, VTLN_HIGH, float(warp),
            )
            banks = torch.nn.functional.pad(banks.to(device=device, dtype=torch.float32), (0, 1))
            self._banks[key] = banks
        return banks

    def _spectrum_and_pitch(self, wave: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """Power spectrum (T, padded_window_size // 2 + 1) and pitch (T, 2) or None of a waveform."""
        frames = wave.to(torch.float32).unfold(0, self.window_size, self.window_shift)  # (T, window)
        x = frames * self.scale
        if self.training and self.dither > 0:
            x = x + torch.randn_like(x) * self.dither
        x = x - x.mean(dim=1, keepdim=True)  # DC offset
        x = x - PREEMPHASIS * torch.cat([x[:, :1], x[:, :-1]], dim=1)  # Kaldi's replicate padding
        window = torch.hann_window(self.window_size, periodic=False, device=x.device).pow(0.85)  # povey
        power = torch.fft.rfft(x * window, n=self.padded_window_size).abs().pow(2.0)
        pitch = nccf_pitch(frames, self.sample_rate, self.pitch_fmin, self.pitch_fmax) if self.pitch else None
        return power, pitch

    def extract(self, wave: torch.Tensor, warp: Optional[float] = None) -> torch.Tensor:
        """Features of one utterance.

        Args:
            wave: (N,) waveform in [-1, 1].
            warp: VTLN warp factor of the mel bins; None: :meth:`draw_warp`.

        Returns:
            feats: (num_frames(N), output_size()) float32.
        """
        if int(wave.shape[0]) < self.window_size:
            return wave.new_zeros((0, self.output_size()), dtype=torch.float32)
        power, pitch = self._spectrum_and_pitch(wave)
        banks = self.mel_banks(self.draw_warp() if warp is None else warp, power.device)
        feats = torch.clamp(power @ banks.T, min=torch.finfo(torch.float32).eps).log()
        if pitch is None:
            return feats
        return torch.cat([feats, pitch.to(feats.device)], dim=1)

    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Compute features for a padded batch.

        Args:
            input: (B, N) waveforms, padded at the end.
            input_lengths: (B,) number of valid samples of each waveform.

        Returns:
            feats: (B, T, output_size()) float32, zero beyond each utterance's frames,
                with ``T = max(feats_lens)``.
            feats_lens: (B,) int64 frame counts (``num_frames(input_lengths)``).
        """
        if input.dim() != 2 or input_lengths.dim() != 1 or input_lengths.shape[0] != input.shape[0]:
            raise ValueError(
                f"expected input (B, N) and input_lengths (B,), got {tuple(input.shape)} and "
                f"{tuple(input_lengths.shape)}"
            )
        lengths = input_lengths.tolist()
        if any(n > input.shape[1] or n < 0 for n in lengths):
            raise ValueError(f"input_lengths {lengths} out of range for {input.shape[1]} samples")
        feats = [self.extract(input[i, : int(n)]) for i, n in enumerate(lengths)]
        feats_lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.long, device=input.device)
        t_max = int(feats_lens.max()) if feats else 0
        out = input.new_zeros((len(feats), t_max, self.output_size()), dtype=torch.float32)
        for i, f in enumerate(feats):
            out[i, : f.shape[0]] = f
        return out, feats_lens

    def extra_repr(self) -> str:
        return (
            f"n_mels={self.n_mels}, frame_length_ms={self.frame_length_ms}, "
            f"frame_shift_ms={self.frame_shift_ms}, dither={self.dither}"
            + (f", pitch=True, pitch_fmin={self.pitch_fmin}, pitch_fmax={self.pitch_fmax}" if self.pitch else "")
            + (f", vtlp_range={list(self.vtlp_range)}" if self.vtlp_range is not None else "")
        )
