"""Utterance-level emotion classifier on pooled encoder and predictor outputs."""

from __future__ import annotations

from typing import Optional, Tuple

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


def combine_experts(logits: torch.Tensor, prosody_logits: Optional[torch.Tensor]) -> torch.Tensor:
    """The head's logits from its experts': ``logits`` alone, or the sum of both log-posteriors. (B, C)"""
    if prosody_logits is None:
        return logits
    return torch.log_softmax(logits, dim=-1) + torch.log_softmax(prosody_logits, dim=-1)


class UtteranceEmotionHead(torch.nn.Module):
    """``Linear(dropout(LayerNorm([mean(enc_out), mean(pred_out)])))`` -> (B, C).

    The encoder mean runs over the T_b real encoder frames (the ENT paper's
    head), the predictor mean over the U_b + 1 positions of the label prefix
    (start symbol included), so padding never affects the logits.

    With ``prosody_dim = K > 0`` a second expert, ``Linear(K, C)``, classifies
    the utterance's normalized prosody functionals
    (:mod:`ent.features.prosody`), and the head's logits are the sum of the
    two experts' log-posteriors (a product of experts). The two are trained
    with separate cross entropies (:meth:`forward_parts`): trained jointly,
    the encoder expert, which fits the training voices, would leave the
    prosody expert little gradient, and it is the prosody expert that carries
    over to unseen voices.

    Args:
        enc_dim: Encoder output size D_e.
        pred_dim: Predictor output size D_p.
        num_classes: Number of emotion classes C.
        dropout: Dropout before the output layer.
        prosody_dim: Number K of prosody functionals of the prosody expert
            (0: none).
    """

    def __init__(
        self,
        enc_dim: int,
        pred_dim: int,
        num_classes: int,
        dropout: float = 0.0,
        prosody_dim: int = 0,
    ) -> None:
        super().__init__()
        if prosody_dim < 0:
            raise ValueError(f"prosody_dim must be >= 0, got {prosody_dim}")
        in_dim = enc_dim + pred_dim
        self.norm = torch.nn.LayerNorm(in_dim)
        self.dropout = torch.nn.Dropout(dropout)
        self.output = torch.nn.Linear(in_dim, num_classes)
        self.prosody_dim = prosody_dim
        self.prosody = torch.nn.Linear(prosody_dim, num_classes) if prosody_dim > 0 else None

    def fit_prosody_expert(
        self, prosody: torch.Tensor, labels: torch.Tensor, l2: float = 1.0e-3, max_iter: int = 500
    ) -> float:
        """Fit the prosody expert as an L2-regularized logistic regression, then freeze it.

        The expert's inputs are fixed functionals of the audio, so its
        training is a convex problem of its own: full-batch L-BFGS (float64)
        solves it exactly, where the network's optimizer, at a learning rate
        and schedule chosen for the network, leaves it far from the optimum
        (on ``mini_emo``: train UA 77 % against 87 %, README). Minimizes
        ``mean CE(W z + b, y) + l2 / 2 * ||W||^2``.

        Args:
            prosody: Normalized functionals of the training utterances. (N, K)
            labels: Their emotion ids in ``[0, C)``. (N,)
            l2: Weight of the L2 penalty on ``W``.
            max_iter: L-BFGS iterations.

        Returns:
            The final objective.

        Raises:
            ValueError: Without a prosody expert or on mismatched inputs.
        """
        if self.prosody is None:
            raise ValueError("this head has no prosody expert")
        if prosody.dim() != 2 or prosody.size(1) != self.prosody_dim or labels.shape != (prosody.size(0),):
            raise ValueError(f"need prosody (N, {self.prosody_dim}) and labels (N,), got "
                             f"{tuple(prosody.shape)} and {tuple(labels.shape)}")
        if prosody.size(0) == 0:
            raise ValueError("no training utterances to fit the prosody expert on")
        x = prosody.detach().double().cpu()
        y = labels.detach().long().cpu()
        weight = torch.zeros_like(self.prosody.weight, dtype=torch.float64, device="cpu", requires_grad=True)
        bias = torch.zeros_like(self.prosody.bias, dtype=torch.float64, device="cpu", requires_grad=True)
        opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9,
                                tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

        def objective() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(x @ weight.T + bias, y) + 0.5 * l2 * weight.pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(objective)
            final = float(objective().detach())
        with torch.no_grad():
            self.prosody.weight.copy_(weight.detach())
            self.prosody.bias.copy_(bias.detach())
        self.prosody.requires_grad_(False)
        return final

    @property
    def prosody_trainable(self) -> bool:
        """Whether the prosody expert exists and learns with the network (not fitted and frozen)."""
        return self.prosody is not None and self.prosody.weight.requires_grad

    def forward(
        self,
        enc_out: torch.Tensor,
        enc_lens: torch.Tensor,
        pred_out: torch.Tensor,
        label_lens: torch.Tensor,
        prosody: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Utterance emotion logits (with a prosody expert: the sum of both experts' log-posteriors).

        Args:
            enc_out: Encoder outputs. (B, T, D_e)
            enc_lens: Encoder lengths T_b, in ``[1, T]``. (B,)
            pred_out: Predictor outputs, start position included. (B, U+1, D_p)
            label_lens: Label lengths U_b, in ``[0, U]``. (B,)
            prosody: Normalized prosody functionals; required with
                ``prosody_dim > 0``, else not allowed. (B, K)

        Returns:
            Logits. (B, C)

        Raises:
            ValueError: If a length is out of range or ``prosody`` does not fit.
        """
        return combine_experts(*self.forward_parts(enc_out, enc_lens, pred_out, label_lens, prosody))

    def forward_parts(
        self,
        enc_out: torch.Tensor,
        enc_lens: torch.Tensor,
        pred_out: torch.Tensor,
        label_lens: torch.Tensor,
        prosody: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The encoder expert's logits (B, C) and the prosody expert's (B, C), or None without one.

        Arguments as :meth:`forward`.
        """
        if (prosody is not None) != (self.prosody is not None):
            raise ValueError(
                f"this head has a prosody expert of {self.prosody_dim} functionals: prosody must be given"
                if self.prosody is not None else "this head has no prosody expert: prosody must be None"
            )
        if prosody is not None and tuple(prosody.shape) != (enc_out.size(0), self.prosody_dim):
            raise ValueError(f"prosody must have shape ({enc_out.size(0)}, {self.prosody_dim}), "
                             f"got {tuple(prosody.shape)}")
        if int(enc_lens.min()) < 1 or int(enc_lens.max()) > enc_out.size(1):
            raise ValueError(
                f"enc_lens must lie in [1, {enc_out.size(1)}], got {enc_lens.tolist()}"
            )
        if int(label_lens.min()) < 0 or int(label_lens.max()) + 1 > pred_out.size(1):
            raise ValueError(
                f"label_lens must lie in [0, {pred_out.size(1) - 1}], got {label_lens.tolist()}"
            )
        x = self.norm(torch.cat([masked_mean(enc_out, enc_lens), masked_mean(pred_out, label_lens + 1)], dim=-1))
        logits = self.output(self.dropout(x))
        if self.prosody is None:
            return logits, None
        return logits, self.prosody(prosody.to(logits.dtype))
