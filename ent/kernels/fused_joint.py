r"""The whole lattice of a tanh joint network with few outputs, without its activations.

A joint network over the full alignment lattice evaluates::

    z[b, t, u] = weight @ tanh(enc_proj[b, t] + pred_proj[b, u]) + bias      (C outputs)

PyTorch materializes the sum and the activations (B, T, U+1, J) in the forward
pass, keeps them for the backward pass and reduces the (B, T, U+1, J)
gradient twice (over U+1 for the encoder, over T for the predictor). When C is
small that memory traffic is nearly the whole cost: FENT's blank joint has
C = 1 and in a ``mini_emo`` training step its lattice took about as long as the
encoder's feed-forward layers; the character vocabulary's joint (C = 30) is
not much dearer (``python bench/joint_and_loss.py``).

:func:`fused_joint_lattice` computes the same ``z`` (B, T, U+1, C) with numba
CPU kernels that evaluate each node's activations on the fly (the vectorized
``tanh`` of :mod:`ent.kernels.lattice_numba`, within 3 ulp) and recompute them
in the backward pass, which accumulates the gradients of ``enc_proj``,
``pred_proj``, ``weight`` and ``bias`` directly and skips nodes whose output
gradient is zero (the padding a loss ignores). The kernels live in
:mod:`ent.kernels.lattice_numba` with the emotion lattice's, whose node
evaluation and backward they share (numba's on-disk cache is invalidated by a
change of the kernel's own source file only, so kernels that call each other
stay in one file). :class:`ent.nets.joint.JointNetwork`
uses it for lattice-shaped CPU inputs when ``output_size <= FUSED_MAX_OUTPUTS``.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

#: Largest output size for which the fused lattice pays. Measured with J = 192
#: on a (14, 107, 49) lattice, 2 threads, forward + backward
#: (``bench/joint_and_loss.py``): about 9x faster for C = 1, 2.4-3.6x for
#: C = 30 (mini_emo's characters), 1.7-2x for 64, even at 128; with many
#: outputs the output layer (a matrix product, best left to BLAS) dominates.
FUSED_MAX_OUTPUTS = 64


class _FusedJointLattice(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, enc: Tensor, pred: Tensor, weight: Tensor, bias: Tensor
    ) -> Tensor:
        from ent.kernels.lattice_numba import joint_forward_cpu  # numba is imported on first use

        enc, pred, weight, bias = (x.detach().contiguous() for x in (enc, pred, weight, bias))
        out = enc.new_empty(enc.size(0), enc.size(1), pred.size(1), weight.size(0))
        joint_forward_cpu(enc.numpy(), pred.numpy(), weight.numpy(), bias.numpy(), out.numpy())
        ctx.save_for_backward(enc, pred, weight)
        return out

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        from ent.kernels.lattice_numba import joint_backward_cpu, tiled_backward

        enc, pred, weight = ctx.saved_tensors  # contiguous, from the forward pass
        grad_out = grad_out.to(enc.dtype).contiguous()
        return tiled_backward(
            lambda tiles, *buffers: joint_backward_cpu(
                enc.numpy(), pred.numpy(), weight.numpy(), grad_out.numpy(), tiles, *buffers
            ),
            enc, pred.size(1), weight.size(0),
        )


def fused_joint_lattice(enc_proj: Tensor, pred_proj: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``weight @ tanh(enc_proj[:, :, None] + pred_proj[:, None]) + bias`` over the whole lattice.

    Differentiable in all four inputs; numba kernels, CPU tensors of one
    floating dtype (float32 or float64).

    Args:
        enc_proj: (B, T, J) projected encoder outputs.
        pred_proj: (B, U+1, J) projected predictor outputs.
        weight: (C, J) output layer weight.
        bias: (C,) output layer bias.

    Returns:
        (B, T, U+1, C) outputs.
    """
    if enc_proj.dim() != 3 or pred_proj.dim() != 3 or enc_proj.size(0) != pred_proj.size(0):
        raise ValueError(
            f"fused_joint_lattice: expected enc_proj (B, T, J) and pred_proj (B, U+1, J), got "
            f"{tuple(enc_proj.shape)} and {tuple(pred_proj.shape)}"
        )
    num_j = enc_proj.size(2)
    if pred_proj.size(2) != num_j or weight.dim() != 2 or weight.size(1) != num_j or bias.shape != weight.shape[:1]:
        raise ValueError(
            f"fused_joint_lattice: joint sizes disagree: enc_proj {tuple(enc_proj.shape)}, pred_proj "
            f"{tuple(pred_proj.shape)}, weight {tuple(weight.shape)}, bias {tuple(bias.shape)}"
        )
    tensors = (enc_proj, pred_proj, weight, bias)
    if any(x.device.type != "cpu" for x in tensors):
        raise ValueError("fused_joint_lattice runs on CPU tensors")
    if len({x.dtype for x in tensors}) != 1 or enc_proj.dtype not in (torch.float32, torch.float64):
        raise ValueError(
            f"fused_joint_lattice: needs float32 or float64 inputs of one dtype, got {[x.dtype for x in tensors]}"
        )
    return _FusedJointLattice.apply(enc_proj, pred_proj, weight, bias)
