"""Learned softmax-weighted sum of the hidden layers of a pretrained speech model.

``out = scale * sum_l softmax(w)_l * h_l`` over the L hidden states ``h_l``
(B, T, D) of a wav2vec 2.0 / HuBERT / WavLM model: the "weighted sum of
hidden layers" of SUPERB (Yang et al., Interspeech 2021) and of the ENT
paper's front end (Shen et al., ICASSP 2024), with ELMo's scalar
``scale`` (Peters et al., 2018, Eq. 1). The weights start uniform and the
scale at 1, so an untrained weighting is the plain mean of the layers.

With ``layer_norm`` every hidden state is normalized over its feature
dimension (no affine parameters) before the sum, as s3prl's featurizer does
optionally; layers of very different magnitudes then contribute by their
weights alone.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch.nn import functional as F


class LayerWeightedSum(torch.nn.Module):
    """``scale * sum_l softmax(weight_logits)_l * h_l``.

    Args:
        num_layers: L, the number of hidden states summed.
        layer_norm: Normalize each hidden state over its last dimension
            (without affine parameters) before weighting.
        init_scale: Initial value of the learned scalar scale.
    """

    def __init__(self, num_layers: int, layer_norm: bool = False, init_scale: float = 1.0) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.num_layers = num_layers
        self.layer_norm = layer_norm
        self.weight_logits = torch.nn.Parameter(torch.zeros(num_layers))
        self.scale = torch.nn.Parameter(torch.tensor(float(init_scale)))

    @property
    def weights(self) -> torch.Tensor:
        """Current layer weights, non-negative and summing to one. (L,)"""
        return torch.softmax(self.weight_logits, dim=0)

    def forward(self, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
        """Weighted sum of the hidden states.

        Args:
            hidden_states: L tensors of the same shape (B, T, D), any float
                dtype (computed in float32).

        Returns:
            The weighted sum, float32. (B, T, D)
        """
        if len(hidden_states) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} hidden states, got {len(hidden_states)}")
        weights = self.weights
        out = None
        for w, h in zip(weights, hidden_states):
            h = h.float()
            if self.layer_norm:
                h = F.layer_norm(h, h.shape[-1:])
            out = w * h if out is None else out + w * h
        return self.scale * out

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, layer_norm={self.layer_norm}"
