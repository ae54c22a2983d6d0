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
``tanh`` of :mod:`ent.losses.lattice_numba`, within 3 ulp) and recompute them
in the backward pass, which accumulates the gradients of ``enc_proj``,
``pred_proj``, ``weight`` and ``bias`` directly and skips nodes whose output
gradient is zero (the padding a loss ignores). :class:`ent.nets.joint.JointNetwork`
uses it for lattice-shaped CPU inputs when ``output_size <= FUSED_MAX_OUTPUTS``.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from ent.losses.lattice_numba import FASTMATH, fast_tanh, node_backward, tiled_backward

#: Largest output size for which the fused lattice pays. Measured with J = 192
#: on a (14, 107, 49) lattice, 2 threads, forward + backward: 10x faster for
#: C = 1, 3.6x for C = 30 (mini_emo's characters), 2x for 64, even at 128; with
#: many outputs the output layer (a matrix product, best left to BLAS) dominates.
FUSED_MAX_OUTPUTS = 64


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _forward_cpu(enc, pred, weight, bias, out):  # pragma: no cover - numba
    """out[b, t, u, c] = weight[c] @ tanh(enc[b, t] + pred[b, u]) + bias[c]; one row (b, t) per iteration."""
    batch, max_t, num_j = enc.shape
    max_u1 = pred.shape[1]
    num_c = weight.shape[0]
    for row in prange(batch * max_t):
        b = row // max_t
        t = row % max_t
        h = np.empty(num_j, dtype=enc.dtype)
        for u in range(max_u1):
            for j in range(num_j):
                h[j] = fast_tanh(enc[b, t, j] + pred[b, u, j])
            for c in range(num_c):
                acc = bias[c]
                for j in range(num_j):
                    acc += weight[c, j] * h[j]
                out[b, t, u, c] = acc


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _backward_cpu(
    enc, pred, weight, grad_out, tiles_per_utt, grad_enc, pred_part, weight_part, bias_part
):  # pragma: no cover - numba
    """The tiles and partial sums of :func:`ent.losses.lattice_numba.tiled_backward`.

    Nodes whose ``grad_out`` is zero for every output are skipped.
    """
    batch, max_t, num_j = enc.shape
    max_u1 = pred.shape[1]
    num_c = weight.shape[0]
    for tile in prange(batch * tiles_per_utt):
        b = tile // tiles_per_utt
        s = tile % tiles_per_utt
        h = np.empty(num_j, dtype=enc.dtype)
        g = np.empty(num_j, dtype=enc.dtype)
        for t in range(s * max_t // tiles_per_utt, (s + 1) * max_t // tiles_per_utt):
            for u in range(max_u1):
                live = False
                for c in range(num_c):
                    live = live or grad_out[b, t, u, c] != 0
                if live:
                    for j in range(num_j):
                        h[j] = fast_tanh(enc[b, t, j] + pred[b, u, j])
                    node_backward(
                        grad_out[b, t, u], h, g, weight, grad_enc[b, t], pred_part[tile, u],
                        weight_part[tile], bias_part[tile],
                    )


def _np(x: Tensor) -> np.ndarray:
    """A contiguous numpy view (or copy) of a CPU tensor."""
    return x.detach().contiguous().numpy()


class _FusedJointLattice(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, enc: Tensor, pred: Tensor, weight: Tensor, bias: Tensor
    ) -> Tensor:
        enc, pred, weight, bias = (x.detach().contiguous() for x in (enc, pred, weight, bias))
        out = enc.new_empty(enc.size(0), enc.size(1), pred.size(1), weight.size(0))
        _forward_cpu(_np(enc), _np(pred), _np(weight), _np(bias), out.numpy())
        ctx.save_for_backward(enc, pred, weight)
        return out

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        enc, pred, weight = ctx.saved_tensors
        return tiled_backward(
            lambda tiles, *buffers: _backward_cpu(
                _np(enc), _np(pred), _np(weight), _np(grad_out.to(enc.dtype)), tiles, *buffers
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
