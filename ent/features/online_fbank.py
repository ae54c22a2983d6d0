"""Fbank features of a stream of audio pieces, equal to the offline features.

With Kaldi's ``snip_edges`` framing (see :class:`~ent.features.fbank.Fbank`)
frame ``i`` covers samples ``[i * shift, i * shift + window)`` and depends on
nothing else (DC removal, pre-emphasis and windowing are done per frame), so
a stream can be cut anywhere: :class:`OnlineFbank` keeps the samples from the
start of the first frame not computed yet (at most ``window - 1`` samples
plus what arrives between frames), computes every frame once, as soon as its
last sample has arrived, and gives the same frames as ``Fbank.extract`` of
the whole audio.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

from ent.features.fbank import Fbank


class OnlineFbank:
    """Incremental fbank: audio pieces of any size in, the newly complete frames out.

    Args:
        fbank: The offline frontend whose features are reproduced. It is used
            as is: put it in eval mode for deterministic features (no dither).

    Example::

        online = OnlineFbank(model.frontend)
        for piece in pieces:
            feats = online.accept(piece)   # (n, output_size()), n >= 0
    """

    def __init__(self, fbank: Fbank) -> None:
        self.fbank = fbank
        self._buffer = torch.zeros(0, dtype=torch.float32)
        #: Samples received so far.
        self.num_samples = 0
        #: Frames output so far.
        self.num_frames = 0

    @property
    def pending_samples(self) -> int:
        """Samples kept for frames that are not complete yet."""
        return int(self._buffer.numel())

    def accept(self, samples: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
        """Add samples; return the frames they complete.

        Args:
            samples: The next samples, 16 kHz mono floats in [-1, 1]. (N,)

        Returns:
            The new frames, in order. (n, output_size()) float32, n >= 0

        Raises:
            ValueError: If ``samples`` is not one-dimensional, not floating
                point, or holds a NaN or infinite sample. The piece is then
                refused whole and the stream is left as it was (the caller
                may drop the piece, or repair it and pass it again).
        """
        piece = samples.detach().cpu() if isinstance(samples, torch.Tensor) else torch.from_numpy(np.asarray(samples))
        if piece.dim() != 1:
            raise ValueError(f"samples must have shape (N,), got {tuple(piece.shape)}")
        if not piece.is_floating_point():
            raise ValueError(f"samples must be floats in [-1, 1], got {piece.dtype} (scale integer PCM first)")
        finite = torch.isfinite(piece)
        if not bool(finite.all()):
            first = int(torch.argmin(finite.to(torch.int8)))
            raise ValueError(f"samples hold {int((~finite).sum())} NaN/Inf values (first: sample {first} of this "
                             f"piece, {(self.num_samples + first) / self.fbank.sample_rate:.3f} s into the stream)")
        piece = piece.to(torch.float32)
        self.num_samples += int(piece.numel())
        buf = torch.cat([self._buffer, piece]) if self._buffer.numel() else piece
        fb = self.fbank
        ready = int(fb.num_frames(int(buf.numel())))
        if ready == 0:
            self._buffer = buf
            return torch.zeros(0, fb.output_size(), dtype=torch.float32)
        feats = fb.extract(buf[: (ready - 1) * fb.window_shift + fb.window_size])
        self._buffer = buf[ready * fb.window_shift :].clone()
        self.num_frames += ready
        return feats
