"""Joint network of the transducer and the alignment-lattice mask.

The same class serves the ASR joint (``output_size = V`` tokens), FENT's blank
joint (one output) and the emotion joint (``output_size = C`` emotion classes,
giving the emotion lattice (B, T, U+1, C)). On the CPU, a whole lattice of a
joint with few outputs is computed by the fused kernels of
:mod:`ent.kernels.fused_joint`.
"""

from __future__ import annotations

from typing import Callable, Dict

import torch

from ent.kernels.availability import numba_available
from ent.kernels.fused_joint import FUSED_MAX_OUTPUTS, fused_joint_lattice

# Applied in place: the joint applies them to the fresh sum of its
# projections, so the (B, T, U+1, joint_dim) lattice is not written twice.
_ACTIVATIONS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh_,
    "relu": torch.relu_,
    "swish": lambda x: torch.nn.functional.silu(x, inplace=True),
}


class JointNetwork(torch.nn.Module):
    """``lin_out(act(lin_enc(enc) + lin_pred(pred)))``.

    Args:
        enc_dim: Encoder output size D_e.
        pred_dim: Predictor output size D_p.
        joint_dim: Size of the joint space.
        output_size: Number of outputs (vocabulary size V, or emotion classes C).
        activation: ``tanh``, ``relu`` or ``swish``.

    ``lin_enc`` has a bias, ``lin_pred`` has none (a second bias would be redundant).
    """

    def __init__(
        self,
        enc_dim: int,
        pred_dim: int,
        joint_dim: int,
        output_size: int,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown joint activation {activation!r}; valid: {sorted(_ACTIVATIONS)}"
            )
        self.lin_enc = torch.nn.Linear(enc_dim, joint_dim)
        self.lin_pred = torch.nn.Linear(pred_dim, joint_dim, bias=False)
        self.activation = activation
        self._activate_ = _ACTIVATIONS[activation]
        self.lin_out = torch.nn.Linear(joint_dim, output_size)
        self._output_size = output_size
        #: Whole-lattice CPU calls with few outputs go through the fused numba
        #: kernels (:mod:`ent.kernels.fused_joint`); False: always the plain path.
        self.fused = True

    def extra_repr(self) -> str:
        return f"activation={self.activation}"

    def output_size(self) -> int:
        """Number of outputs per lattice node (V or C)."""
        return self._output_size

    def project_encoder(self, enc_out: torch.Tensor) -> torch.Tensor:
        """Project encoder outputs into the joint space. (..., D_e) -> (..., joint_dim)"""
        return self.lin_enc(enc_out)

    def project_predictor(self, pred_out: torch.Tensor) -> torch.Tensor:
        """Project predictor outputs into the joint space. (..., D_p) -> (..., joint_dim)"""
        return self.lin_pred(pred_out)

    def joint_from_projected(self, enc_proj: torch.Tensor, pred_proj: torch.Tensor) -> torch.Tensor:
        """Combine already projected inputs (their leading dims broadcast).

        Args:
            enc_proj: Projected encoder outputs, e.g. (B, T, 1, joint_dim).
            pred_proj: Projected predictor outputs, e.g. (B, 1, U+1, joint_dim).

        Returns:
            Logits, e.g. (B, T, U+1, output_size).
        """
        if self._fusable(enc_proj, pred_proj):
            return fused_joint_lattice(
                enc_proj.squeeze(2), pred_proj.squeeze(1), self.lin_out.weight, self.lin_out.bias
            )
        return self.lin_out(self._activate_(enc_proj + pred_proj))

    def _fusable(self, enc_proj: torch.Tensor, pred_proj: torch.Tensor) -> bool:
        """Whether :func:`~ent.kernels.fused_joint.fused_joint_lattice` computes this call.

        It does for a whole lattice, (B, T, 1, J) with (B, 1, U+1, J), of a tanh
        joint with at most ``FUSED_MAX_OUTPUTS`` outputs on CPU tensors of one
        float32/float64 dtype, unless ``self.fused`` is False or numba is missing.
        """
        return (
            self.fused
            and self.activation == "tanh"
            and self._output_size <= FUSED_MAX_OUTPUTS
            and enc_proj.dim() == 4 and pred_proj.dim() == 4
            and enc_proj.size(2) == 1 and pred_proj.size(1) == 1
            and enc_proj.size(0) == pred_proj.size(0)
            and enc_proj.device.type == "cpu" and pred_proj.device.type == "cpu"
            and enc_proj.dtype == pred_proj.dtype == self.lin_out.weight.dtype
            and enc_proj.dtype in (torch.float32, torch.float64)
            and numba_available()
        )

    def forward(self, enc_out: torch.Tensor, pred_out: torch.Tensor) -> torch.Tensor:
        """Joint logits for every pair of encoder and predictor frames given.

        Leading dimensions broadcast, so the full lattice comes from
        ``enc_out.unsqueeze(2)`` and ``pred_out.unsqueeze(1)``, and one
        decoding step from ``(B, D_e)`` and ``(B, D_p)``.

        Args:
            enc_out: Encoder outputs, e.g. (B, T, 1, D_e).
            pred_out: Predictor outputs, e.g. (B, 1, U+1, D_p).

        Returns:
            Logits (unnormalised), e.g. (B, T, U+1, output_size).
        """
        return self.joint_from_projected(
            self.project_encoder(enc_out), self.project_predictor(pred_out)
        )


def lattice_mask(enc_lens: torch.Tensor, label_lens: torch.Tensor, T: int, U1: int) -> torch.Tensor:
    """Valid nodes of a padded batch of alignment lattices.

    Args:
        enc_lens: Encoder lengths T_b. (B,)
        label_lens: Label lengths U_b. (B,)
        T: Padded number of encoder frames.
        U1: Padded number of predictor positions (max U + 1).

    Returns:
        True where ``t < T_b`` and ``u <= U_b``. (B, T, U1) bool
    """
    t = torch.arange(T, device=enc_lens.device)
    u = torch.arange(U1, device=enc_lens.device)
    valid_t = t.unsqueeze(0) < enc_lens.unsqueeze(1)
    valid_u = u.unsqueeze(0) <= label_lens.to(enc_lens.device).unsqueeze(1)
    return valid_t.unsqueeze(2) & valid_u.unsqueeze(1)
