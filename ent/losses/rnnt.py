r"""Transducer (RNN-T) loss of ENT's ASR branch.

For utterance ``b`` with ``T_b = enc_lens[b]`` frames, tokens
``y_1 .. y_{U_b}`` (``U_b = label_lens[b]``) and joint log-probabilities
``lp[t, u, v]`` (``log_softmax`` of ``logits[b, t, u, :]`` over the vocabulary,
or ``logits`` itself when ``fused_log_softmax=False``), the forward variables are::

    alpha(0, 0) = 0
    alpha(t, u) = logaddexp( alpha(t-1, u) + lp[t-1, u, blank],
                             alpha(t, u-1) + lp[t, u-1, y_u] )
    loss_b      = -( alpha(T_b - 1, U_b) + lp[T_b - 1, U_b, blank] )

(Graves, "Sequence Transduction with Recurrent Neural Networks", 2012).
``reduction="mean"`` averages ``loss_b`` over the batch (no normalisation by
the number of tokens), ``"sum"`` sums, ``"none"`` returns ``(B,)``.

:func:`rnnt_loss` computes it with one of two back ends (``backend=``):

* ``"torchaudio"``: ``torchaudio.functional.rnnt_loss`` (C++ on CPU, CUDA on GPU).
* ``"numba"`` (CPU tensors only): ``log_softmax`` and the gathers of the
  blank and label log-probabilities in PyTorch, the two recursions in a
  parallel numba kernel (:mod:`ent.kernels.rnnt_numba`), one utterance per thread, in float64 (so the
  log-likelihoods of long utterances keep their precision in float32 training).
  The kernel returns ``ll_b`` and the occupancies of every blank and label
  transition, ``gamma(t, u) = exp(alpha + lp + beta - ll)``, from which the
  gradient is assembled with whole-tensor operations::

      d loss_b / d logits[t, u, v] = p(v | t, u) (gamma_blank + gamma_label)(t, u)
                                     - [v = blank] gamma_blank(t, u) - [v = y_{u+1}] gamma_label(t, u)

  On the 2-core CPU, forward + backward, it is 10 to 14 times faster than
  torchaudio's CPU kernel (``python bench/joint_and_loss.py``).
* ``"auto"`` (default): ``numba`` for CPU tensors (``torchaudio`` without the
  numba package), ``torchaudio`` for CUDA ones.

Both keep the whole gradient (B, T, U+1, V) from the forward pass, as
torchaudio does. :func:`rnnt_loss_reference` is a slow, loop-based
pure-PyTorch implementation of the recursion above used to test them.
"""

from __future__ import annotations

from typing import List

import torch
import torchaudio.functional as taF
from torch import Tensor

from ent.kernels.backends import RNNT_BACKENDS, resolve_rnnt_backend  # noqa: F401 (RNNT_BACKENDS: the names of ``backend=``)

_REDUCTIONS = ("mean", "sum", "none")


def _check_rnnt_inputs(
    logits: Tensor, labels: Tensor, enc_lens: Tensor, label_lens: Tensor, blank_id: int, reduction: str
) -> None:
    """Raise ValueError with a clear message when the inputs do not fit together.

    Args:
        logits: (B, T, U+1, V) joint network outputs.
        labels: (B, U) token ids.
        enc_lens: (B,) encoder lengths.
        label_lens: (B,) token counts.
        blank_id: blank index.
        reduction: "mean", "sum" or "none".
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}: expected one of {list(_REDUCTIONS)}")
    if logits.dim() != 4:
        raise ValueError(f"logits must be (B, T, U+1, V), got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    batch, max_t, max_u1, vocab = logits.shape
    if batch == 0 or max_t == 0 or vocab == 0:
        raise ValueError(f"logits has an empty dimension: shape {tuple(logits.shape)}")
    if labels.dim() != 2 or labels.size(0) != batch:
        raise ValueError(f"labels must be (B={batch}, U), got shape {tuple(labels.shape)}")
    if max_u1 != labels.size(1) + 1:
        raise ValueError(
            f"logits dim 2 must be labels.size(1) + 1 = {labels.size(1) + 1}, got {max_u1} "
            f"(logits {tuple(logits.shape)}, labels {tuple(labels.shape)})"
        )
    for name, tensor in (("labels", labels), ("enc_lens", enc_lens), ("label_lens", label_lens)):
        if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
            raise ValueError(f"{name} must be an integer tensor, got {tensor.dtype}")
    for name, lens in (("enc_lens", enc_lens), ("label_lens", label_lens)):
        if lens.dim() != 1 or lens.size(0) != batch:
            raise ValueError(f"{name} must have shape ({batch},), got {tuple(lens.shape)}")
    if not 0 <= blank_id < vocab:
        raise ValueError(f"blank_id={blank_id} outside [0, V={vocab})")
    if bool(((enc_lens < 1) | (enc_lens > max_t)).any()):
        raise ValueError(f"enc_lens must lie in [1, T={max_t}], got {enc_lens.tolist()}")
    if bool(((label_lens < 0) | (label_lens > max_u1 - 1)).any()):
        raise ValueError(f"label_lens must lie in [0, U={max_u1 - 1}], got {label_lens.tolist()}")
    in_range = torch.arange(labels.size(1), device=labels.device)[None, :] < label_lens.to(labels.device)[:, None]
    bad = in_range & ((labels < 0) | (labels >= vocab) | (labels == blank_id))
    if bool(bad.any()):
        raise ValueError(
            f"labels within label_lens must lie in [0, V={vocab}) and differ from blank_id={blank_id}"
        )


def rnnt_loss(
    logits: Tensor,
    labels: Tensor,
    enc_lens: Tensor,
    label_lens: Tensor,
    blank_id: int = 0,
    reduction: str = "mean",
    fused_log_softmax: bool = True,
    clamp: float = -1.0,
    backend: str = "auto",
) -> Tensor:
    """Transducer loss, computed in float32 (float64 stays float64 with ``numba``).

    Padding is handled here: the lattice is cut to ``max(enc_lens)`` frames and
    ``max(label_lens) + 1`` positions (torchaudio requires the maxima to match
    the tensor sizes), label padding (e.g. -1) is replaced, and lengths/labels
    are passed as int32 on the logits' device; the logits are made
    contiguous (torchaudio requires it). Half and bfloat16 logits are cast to
    float32, and so is float64 for torchaudio (the gradient flows back in
    their dtype).

    Args:
        logits: (B, T, U+1, V) joint network outputs (log-probabilities when
            ``fused_log_softmax=False``).
        labels: (B, U) integer token ids; positions >= label_lens[b] are padding.
        enc_lens: (B,) integer encoder lengths, 1 <= enc_lens[b] <= T.
        label_lens: (B,) integer token counts, 0 <= label_lens[b] <= U.
        blank_id: blank index in [0, V).
        reduction: "mean" (over the batch), "sum" or "none".
        fused_log_softmax: apply log_softmax inside the loss (True) or treat
            ``logits`` as log-probabilities (False).
        clamp: clamp the gradient of each logit to [-clamp, clamp] (-1 = none).
        backend: ``auto``, ``torchaudio`` or ``numba`` (module docstring).

    Returns:
        float32 scalar, or (B,) for ``reduction="none"``.
    """
    _check_rnnt_inputs(logits, labels, enc_lens, label_lens, blank_id, reduction)
    backend = resolve_rnnt_backend(backend, logits.device)
    device = logits.device
    enc_lens = enc_lens.to(device=device, dtype=torch.int32)
    label_lens = label_lens.to(device=device, dtype=torch.int32)
    max_t = int(enc_lens.max())
    max_u = int(label_lens.max())
    keep64 = backend == "numba" and logits.dtype == torch.float64
    logits = logits[:, :max_t, : max_u + 1].to(torch.float64 if keep64 else torch.float32).contiguous()
    labels = labels[:, :max_u].to(device=device)
    padding = torch.arange(max_u, device=device)[None, :] >= label_lens[:, None]
    labels = torch.where(padding, torch.full_like(labels, blank_id), labels).to(torch.int32)
    if backend == "numba":
        per_utt = _NumbaRNNTLoss.apply(logits, labels, enc_lens, label_lens, blank_id, fused_log_softmax, clamp)
        if reduction == "none":
            return per_utt
        return per_utt.sum() if reduction == "sum" else per_utt.mean()
    return taF.rnnt_loss(
        logits,
        labels.contiguous(),
        enc_lens,
        label_lens,
        blank=blank_id,
        clamp=clamp,
        reduction=reduction,
        fused_log_softmax=fused_log_softmax,
    )


class _NumbaRNNTLoss(torch.autograd.Function):
    """Per-utterance transducer loss whose gradient is built in the forward pass."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        logits: Tensor,
        labels: Tensor,
        enc_lens: Tensor,
        label_lens: Tensor,
        blank_id: int,
        fused_log_softmax: bool,
        clamp: float,
    ) -> Tensor:
        """logits (B, T, U+1, V) float32/64 cut to the lattice; labels (B, U) int32 (padding = blank).

        Returns:
            (B,) losses ``-ll_b`` in the logits' dtype.
        """
        batch, max_t, max_u1, _ = logits.shape
        log_probs = logits.log_softmax(-1) if fused_log_softmax else logits
        next_label = torch.cat([labels.long(), labels.new_full((batch, 1), blank_id).long()], dim=1)
        next_label = next_label[:, None, :, None].expand(batch, max_t, max_u1, 1)
        blank_lp = log_probs[..., blank_id]
        emit_lp = log_probs.gather(-1, next_label).squeeze(-1)
        from ent.kernels.rnnt_numba import rnnt_occupancies  # numba is imported on first use

        log_like, occ_blank, occ_emit = rnnt_occupancies(blank_lp, emit_lp, enc_lens, label_lens)
        if fused_log_softmax:
            grad = log_probs.exp_().mul_((occ_blank + occ_emit).unsqueeze(-1))  # log_probs is ours
        else:
            grad = torch.zeros_like(logits)
        grad[..., blank_id] -= occ_blank
        grad.scatter_add_(-1, next_label, -occ_emit.unsqueeze(-1))
        if clamp > 0:
            grad.clamp_(-clamp, clamp)
        ctx.save_for_backward(grad)
        return (-log_like).to(logits.dtype)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_out[:, None, None, None], None, None, None, None, None, None


def rnnt_loss_reference(
    logits: Tensor,
    labels: Tensor,
    enc_lens: Tensor,
    label_lens: Tensor,
    blank_id: int = 0,
    reduction: str = "mean",
    fused_log_softmax: bool = True,
) -> Tensor:
    """Pure-PyTorch transducer loss by the forward recursion (slow; for tests).

    Computed in the logits' dtype (use float64 for gradient checks);
    differentiable by autograd.

    Args:
        logits: (B, T, U+1, V) joint network outputs (log-probabilities when
            ``fused_log_softmax=False``).
        labels: (B, U) integer token ids.
        enc_lens: (B,) integer encoder lengths.
        label_lens: (B,) integer token counts.
        blank_id: blank index.
        reduction: "mean", "sum" or "none".
        fused_log_softmax: apply log_softmax over V first.

    Returns:
        Scalar, or (B,) for ``reduction="none"``.
    """
    _check_rnnt_inputs(logits, labels, enc_lens, label_lens, blank_id, reduction)
    losses: List[Tensor] = []
    for b in range(logits.size(0)):
        num_t, num_u = int(enc_lens[b]), int(label_lens[b])
        lp = logits[b, :num_t, : num_u + 1]
        if fused_log_softmax:
            lp = torch.log_softmax(lp, dim=-1)
        ys = [int(y) for y in labels[b, :num_u]]
        alpha: List[List[Tensor]] = [[lp.new_zeros(())] * (num_u + 1) for _ in range(num_t)]
        for t in range(num_t):
            for u in range(num_u + 1):
                if t == 0 and u == 0:
                    continue
                paths = []
                if t > 0:
                    paths.append(alpha[t - 1][u] + lp[t - 1, u, blank_id])
                if u > 0:
                    paths.append(alpha[t][u - 1] + lp[t, u - 1, ys[u - 1]])
                alpha[t][u] = torch.logsumexp(torch.stack(paths), dim=0)
        losses.append(-(alpha[num_t - 1][num_u] + lp[num_t - 1, num_u, blank_id]))
    per_utt = torch.stack(losses)
    if reduction == "none":
        return per_utt
    return per_utt.sum() if reduction == "sum" else per_utt.mean()
