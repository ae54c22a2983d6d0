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

:func:`rnnt_loss` wraps ``torchaudio.functional.rnnt_loss`` (C++ on CPU, CUDA
on GPU); :func:`rnnt_loss_reference` is a slow, loop-based pure-PyTorch
implementation of the recursion above used to test it.
"""

from __future__ import annotations

from typing import List

import torch
import torchaudio.functional as taF
from torch import Tensor

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
) -> Tensor:
    """Transducer loss via ``torchaudio.functional.rnnt_loss``, computed in float32.

    Padding is handled here: the lattice is cut to ``max(enc_lens)`` frames and
    ``max(label_lens) + 1`` positions (torchaudio requires the maxima to match
    the tensor sizes), label padding (e.g. -1) is replaced, and lengths/labels
    are passed as int32 on the logits' device; the logits are made
    contiguous (torchaudio requires it). Half, bfloat16 and float64
    logits are cast to float32 (the gradient flows back in their dtype).

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
        clamp: gradient clamp passed to torchaudio (-1 = none).

    Returns:
        float32 scalar, or (B,) for ``reduction="none"``.
    """
    _check_rnnt_inputs(logits, labels, enc_lens, label_lens, blank_id, reduction)
    device = logits.device
    enc_lens = enc_lens.to(device=device, dtype=torch.int32)
    label_lens = label_lens.to(device=device, dtype=torch.int32)
    max_t = int(enc_lens.max())
    max_u = int(label_lens.max())
    logits = logits[:, :max_t, : max_u + 1].to(torch.float32).contiguous()
    labels = labels[:, :max_u].to(device=device)
    padding = torch.arange(max_u, device=device)[None, :] >= label_lens[:, None]
    labels = torch.where(padding, torch.full_like(labels, blank_id), labels).to(torch.int32)
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
