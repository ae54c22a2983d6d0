"""FENT's blank/emotion branch reading a second layer weighting of a pretrained front end.

In the published FENT setup the frozen wav2vec 2.0 model's hidden layers are
summed twice with independent learned weights: one sum feeds the encoder
(and through it the vocabulary branch), the other the blank/emotion branch
(Shen et al., ICASSP 2024, experimental setup). Here the second sum
``s2`` (B, T0, F), at the front end's frame rate, is brought to the encoder's
frame rate by averaging each encoder frame's receptive field
(:meth:`BlankBranchInput.pool`, the same kernel/stride arithmetic as the
encoder's subsampling convolutions, so the lengths agree exactly and padding
never leaks into real frames), projected to the encoder size and added to
the encoder output::

    enc_blank = enc_out + Linear(pool(s2))          (B, T, D_e)

The blank joint, the emotion joint and the utterance head read ``enc_blank``;
the vocabulary joint and the auxiliary CTC layer read ``enc_out``.

:meth:`EmotionTransducer.encode` returns both streams, ``enc`` and
``enc_blank``, in an :class:`~ent.models.encoder_output.EncoderOutput`; searches
and the training losses hand each branch its stream.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch.nn import functional as F


class BlankBranchInput(torch.nn.Module):
    """``enc_out + Linear(pool(s2))``: the blank/emotion branch's encoder output.

    Args:
        feat_dim: F, the size of the front end's second weighted sum.
        enc_dim: D_e, the encoder output size.
        kernel: Frames of ``s2`` averaged per encoder frame (the encoder
            subsampling's receptive field).
        stride: The encoder's subsampling factor.
    """

    def __init__(self, feat_dim: int, enc_dim: int, kernel: int, stride: int) -> None:
        super().__init__()
        if kernel < stride or stride < 1:
            raise ValueError(f"need kernel >= stride >= 1, got kernel {kernel}, stride {stride}")
        self.kernel = kernel
        self.stride = stride
        self.proj = torch.nn.Linear(feat_dim, enc_dim)

    @classmethod
    def for_encoder(cls, feat_dim: int, encoder: torch.nn.Module) -> "BlankBranchInput":
        """Pooling matched to a :class:`~ent.nets.encoder.ConformerEncoder`'s subsampling."""
        stride = getattr(encoder, "subsampling_factor", None)
        lookahead = getattr(encoder, "frontend_lookahead", None)
        if stride is None or lookahead is None:
            raise ValueError(f"{type(encoder).__name__} does not describe its subsampling "
                             "(subsampling_factor, frontend_lookahead)")
        return cls(feat_dim, encoder.output_size(), kernel=stride + lookahead, stride=stride)

    def pooled_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """``floor((L - kernel) / stride) + 1``, at least 0. (B,)"""
        out = torch.div(lengths - self.kernel, self.stride, rounding_mode="floor") + 1
        return out.clamp(min=0)

    def pool(self, feats: torch.Tensor, feats_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Average each encoder frame's receptive field.

        Args:
            feats: (B, T0, F); feats_lens: (B,).

        Returns:
            pooled: (B, T, F) with ``T = pooled_lengths(T0)``; lens: (B,).
        """
        if feats.size(1) < self.kernel:
            return feats.new_zeros((feats.size(0), 0, feats.size(2))), self.pooled_lengths(feats_lens)
        pooled = F.avg_pool1d(feats.transpose(1, 2), self.kernel, self.stride).transpose(1, 2)
        return pooled, self.pooled_lengths(feats_lens)

    def forward(
        self, enc_out: torch.Tensor, enc_lens: torch.Tensor, feats: torch.Tensor, feats_lens: torch.Tensor
    ) -> torch.Tensor:
        """The blank branch's encoder output.

        Args:
            enc_out: (B, T, D_e) encoder outputs (zero at padding); enc_lens: (B,).
            feats: (B, T0, F) the front end's second weighted sum; feats_lens: (B,).

        Returns:
            (B, T, D_e), zero beyond each ``enc_lens``.

        Raises:
            RuntimeError: If the pooled lengths differ from the encoder's.
        """
        pooled, lens = self.pool(feats, feats_lens)
        if pooled.size(1) != enc_out.size(1) or not torch.equal(lens.to(enc_lens.device), enc_lens):
            raise RuntimeError(
                f"blank-branch pooling gives {lens.tolist()} frames (padded {pooled.size(1)}), the encoder "
                f"{enc_lens.tolist()} (padded {enc_out.size(1)}): kernel {self.kernel}, stride {self.stride}"
            )
        valid = torch.arange(enc_out.size(1), device=enc_out.device)[None, :, None] < enc_lens[:, None, None]
        return (enc_out + self.proj(pooled)).masked_fill(~valid, 0.0)
