"""Sequence operations of the SER baselines that ignore padding: masks, softmax, pooling, RNNs.

Every function takes the valid lengths of a padded batch and gives each
utterance the result it has alone, so that an utterance's posteriors do not
depend on the batch it is in (the contract of
:class:`~ent.models.ser.abs_ser_model.AbsSERModel`).
"""

from __future__ import annotations

from typing import Optional

import torch


def length_mask(lengths: torch.Tensor, max_len: Optional[int] = None) -> torch.Tensor:
    """True at the valid positions.

    Args:
        lengths: (B,) valid lengths.
        max_len: T (default ``lengths.max()``).

    Returns:
        (B, T) bool.
    """
    t = int(lengths.max()) if max_len is None else int(max_len)
    return torch.arange(t, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over the positions where ``mask`` is True; 0 elsewhere.

    A row without any valid position gives all zeros (not NaN).

    Args:
        scores: (..., T, ...) scores; mask: broadcastable to ``scores``, bool.

    Returns:
        Weights of the shape of ``scores``, summing to one over ``dim`` on valid rows.
    """
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=dim)
    return torch.nan_to_num(weights, nan=0.0)


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the valid frames.

    Args:
        x: (B, T, D); lengths: (B,) (at least 1 for a non-zero mean).

    Returns:
        (B, D).
    """
    mask = length_mask(lengths, x.size(1)).unsqueeze(-1).to(x.dtype)
    return (x * mask).sum(dim=1) / lengths.clamp(min=1).unsqueeze(-1).to(x.dtype)


def utterance_cmvn(feats: torch.Tensor, lengths: torch.Tensor, eps: float = 1.0e-5) -> torch.Tensor:
    """Normalize each utterance's features to zero mean and unit variance over its frames.

    Args:
        feats: (B, T, F); lengths: (B,).

    Returns:
        (B, T, F), zero at padding frames.
    """
    mask = length_mask(lengths, feats.size(1)).unsqueeze(-1)
    mean = masked_mean(feats, lengths).unsqueeze(1)
    var = masked_mean((feats - mean).pow(2), lengths).unsqueeze(1)
    return ((feats - mean) / (var + eps).sqrt()).masked_fill(~mask, 0.0)


class AttentivePooling(torch.nn.Module):
    """Additive attention pooling over time: ``a_t = softmax_t(v^T tanh(W h_t))``, ``sum_t a_t h_t``.

    Args:
        input_size: D.
        attention_size: Size of the hidden layer of the scorer.
    """

    def __init__(self, input_size: int, attention_size: int) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(input_size, attention_size)
        self.score = torch.nn.Linear(attention_size, 1, bias=False)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple:
        """Pool a padded batch.

        Args:
            x: (B, T, D); lengths: (B,).

        Returns:
            pooled (B, D) and the weights (B, T) (zero at padding, summing to one).
        """
        scores = self.score(torch.tanh(self.proj(x))).squeeze(-1)
        weights = masked_softmax(scores, length_mask(lengths, x.size(1)))
        return torch.bmm(weights.unsqueeze(1), x).squeeze(1), weights


class PackedLSTM(torch.nn.Module):
    """``torch.nn.LSTM`` (batch first) run on packed sequences, so that padding never enters a state.

    Args:
        input_size: Input dimension.
        hidden_size: Hidden units per direction.
        num_layers: Stacked layers.
        bidirectional: Run both directions (output ``2 * hidden_size``).
        dropout: Dropout between layers.
    """

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                                  bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.hidden_size = hidden_size * (2 if bidirectional else 1)

    def output_size(self) -> int:
        """Output dimension."""
        return self.hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Run a padded batch.

        Args:
            x: (B, T, D_in); lengths: (B,) >= 1.

        Returns:
            (B, T, output_size()), zero at padding frames.
        """
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.lstm(packed)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return out
