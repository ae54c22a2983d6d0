"""Utterance-level emotion classifier on pooled encoder and predictor outputs."""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the first ``lengths[b]`` frames of each sequence.

    Args:
        x: Padded sequences. (B, N, D)
        lengths: Number of valid frames, each in ``[1, N]``. (B,)

    Returns:
        Means over the valid frames. (B, D)
    """
    valid = torch.arange(x.size(1), device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
    summed = x.masked_fill(~valid.unsqueeze(-1), 0.0).sum(dim=1)
    return summed / lengths.unsqueeze(1).to(x.dtype)


class UtteranceEmotionHead(torch.nn.Module):
    """``Linear(dropout(LayerNorm([mean(enc_out), mean(pred_out)])))`` -> (B, C).

    The encoder mean runs over the T_b real frames, the predictor mean over the
    U_b + 1 positions of the label prefix (start symbol included), so padding
    never affects the logits.

    Args:
        enc_dim: Encoder output size D_e.
        pred_dim: Predictor output size D_p.
        num_classes: Number of emotion classes C.
        dropout: Dropout before the output layer.
    """

    def __init__(self, enc_dim: int, pred_dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(enc_dim + pred_dim)
        self.dropout = torch.nn.Dropout(dropout)
        self.output = torch.nn.Linear(enc_dim + pred_dim, num_classes)

    def forward(
        self,
        enc_out: torch.Tensor,
        enc_lens: torch.Tensor,
        pred_out: torch.Tensor,
        label_lens: torch.Tensor,
    ) -> torch.Tensor:
        """Utterance emotion logits.

        Args:
            enc_out: Encoder outputs. (B, T, D_e)
            enc_lens: Encoder lengths T_b, in ``[1, T]``. (B,)
            pred_out: Predictor outputs, start position included. (B, U+1, D_p)
            label_lens: Label lengths U_b, in ``[0, U]``. (B,)

        Returns:
            Logits. (B, C)

        Raises:
            ValueError: If a length is out of range.
        """
        if int(enc_lens.min()) < 1 or int(enc_lens.max()) > enc_out.size(1):
            raise ValueError(
                f"enc_lens must lie in [1, {enc_out.size(1)}], got {enc_lens.tolist()}"
            )
        if int(label_lens.min()) < 0 or int(label_lens.max()) + 1 > pred_out.size(1):
            raise ValueError(
                f"label_lens must lie in [0, {pred_out.size(1) - 1}], got {label_lens.tolist()}"
            )
        pooled = torch.cat(
            [masked_mean(enc_out, enc_lens), masked_mean(pred_out, label_lens + 1)], dim=-1
        )
        return self.output(self.dropout(self.norm(pooled)))
