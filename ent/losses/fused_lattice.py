r"""Fused lattice max pooling: ENT's emotion losses without the emotion lattice.

The plain emotion branch materializes the joint activations (B, T, U+1, J)
and the logits (B, T, U+1, C) before pooling them
(:mod:`ent.losses.lattice_max_pool`, the reference and ground truth). The
functions here take the *projected* encoder and predictor outputs and the
output layer of the emotion joint network (:class:`ent.nets.joint.JointNetwork`
with ``tanh``)::

    z[b, t, u] = weight @ tanh(enc_proj[b, t] + pred_proj[b, u]) + bias

and compute the same losses and gradients with O(B T (U+1)) work memory
besides the inputs and their gradients (the CUDA backward adds a (B, T, U+1,
C) buffer of dL/dz): a kernel evaluates every node on the fly and keeps only
per-node log-probabilities of the classes involved.

* Lattice max pooling (:func:`fused_lattice_max_pool_loss`, modes ``one``,
  ``full_t``, ``full_u``): the forward pass gets ``log p(y)`` and
  ``log p(neutral)`` at every valid node, selects the arg-max / arg-min with
  the reference's rule (first node in row-major ``(t, u)`` order on ties) and
  keeps the selected node, row or column; the backward pass recomputes only
  those nodes.
* The supervised interval loss (:func:`fused_supervised_lattice_loss`): every
  labelled node takes part, so the backward pass is a kernel too, recomputing
  each node's ``tanh`` instead of storing it.

Back ends (``backend=``), chosen by :func:`ent.kernels.backends.resolve_backend`:

* ``"numba"``: parallel numba kernels on CPU tensors (:mod:`ent.kernels.lattice_numba`).
* ``"cuda"``: the CUDA C++ kernels of ``ent/csrc``, built with
  ``torch.utils.cpp_extension`` on first use and cached
  (:mod:`ent.kernels.extension`).
* ``"numba_cuda"``: numba CUDA kernels, for CUDA tensors where the C++
  extension cannot be built (and, under ``NUMBA_ENABLE_CUDASIM=1``, for CPU
  tensors in numba's CUDA simulator).
* ``"torch"``: the plain path (materialized lattice + the reference functions).
* ``"auto"``: ``numba`` on CPU; ``cuda``, else ``numba_cuda``, else ``torch``
  on GPU.

Half and bfloat16 inputs are computed in float32, like the reference.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.nn import functional as F

from ent.kernels.backends import lattice_kernels, resolve_backend
from ent.kernels.lattice_types import JointInputs, LatticeKernels, NodeRuns
from ent.losses.lattice_max_pool import (
    RANKED_MODES,
    IntervalRuns,
    check_lattice_lengths,
    check_reduction,
    check_topk,
    first_extreme_node,
    interval_runs,
    lattice_max_pool_loss,
    node_mean,
    normalize_lattice_mode,
    pooled_node_mask,
    ranked_node_counts,
    ranked_selection,
    reduce_losses,
    supervised_lattice_loss,
    valid_node_mask,
)

# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


def emotion_lattice(enc_proj: Tensor, pred_proj: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """The materialized emotion lattice (the plain path, for reference and the torch back end).

    Args:
        enc_proj: (B, T, J) projected encoder outputs.
        pred_proj: (B, U+1, J) projected predictor outputs.
        weight: (C, J) output layer weight; bias: (C,) its bias.

    Returns:
        (B, T, U+1, C) logits ``weight @ tanh(enc_proj[:, t] + pred_proj[:, u]) + bias``.
    """
    return F.linear(torch.tanh(enc_proj.unsqueeze(2) + pred_proj.unsqueeze(1)), weight, bias)


def _check_joint_inputs(enc_proj: Tensor, pred_proj: Tensor, weight: Tensor, bias: Tensor) -> None:
    """Shapes: enc_proj (B, T, J), pred_proj (B, U+1, J), weight (C, J), bias (C,)."""
    named = (("enc_proj", enc_proj, 3), ("pred_proj", pred_proj, 3), ("weight", weight, 2), ("bias", bias, 1))
    for name, x, dim in named:
        if x.dim() != dim or not x.is_floating_point():
            raise ValueError(
                f"{name} must be a {dim}-d floating point tensor, got {x.dtype} {tuple(x.shape)}"
            )
    batch, _, joint = enc_proj.shape
    if pred_proj.size(0) != batch or pred_proj.size(2) != joint:
        raise ValueError(
            f"pred_proj must be (B={batch}, U+1, J={joint}), got {tuple(pred_proj.shape)}"
        )
    if weight.size(1) != joint or bias.shape != (weight.size(0),):
        raise ValueError(
            f"weight must be (C, J={joint}) and bias (C,), got {tuple(weight.shape)} and {tuple(bias.shape)}"
        )
    devices = {x.device for x in (enc_proj, pred_proj, weight, bias)}
    if len(devices) > 1:
        raise ValueError(
            f"enc_proj, pred_proj, weight and bias must be on one device, got {sorted(map(str, devices))}"
        )


def _prepare(
    enc_proj: Tensor, pred_proj: Tensor, weight: Tensor, bias: Tensor, enc_lens: Tensor, label_lens: Tensor
) -> Tuple[JointInputs, Tensor, Tensor]:
    """Check the inputs; cast them to one compute dtype (float32 for half/bfloat16).

    Returns:
        ``((enc, pred, weight, bias), enc_lens, label_lens)`` with int64 lengths.
    """
    _check_joint_inputs(enc_proj, pred_proj, weight, bias)
    batch, max_t, _ = enc_proj.shape
    shape = (batch, max_t, pred_proj.size(1), weight.size(0))
    # The reference's length checks on a lattice-shaped view of a single element (no memory).
    enc_lens, label_lens = check_lattice_lengths(enc_proj.new_empty(()).expand(shape), enc_lens, label_lens)
    dtype = enc_proj.dtype
    for x in (pred_proj, weight, bias):
        dtype = torch.promote_types(dtype, x.dtype)
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    joint = JointInputs(*(x.to(dtype) for x in (enc_proj, pred_proj, weight, bias)))
    return joint, enc_lens, label_lens


# --------------------------------------------------------------------------
# Lattice max pooling
# --------------------------------------------------------------------------


def _pool_runs(
    enc_lens: Tensor,
    label_lens: Tensor,
    keep: Tensor,
    mode: str,
    index: Optional[Tensor],
    max_t: int,
    max_u1: int,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Node labelling of the valid region (``index`` None) or of the nodes pooled for ``index``.

    Args:
        enc_lens, label_lens: (B,) int64 lengths.
        keep: (B,) bool, utterances that take part.
        mode: "one", "full_t" or "full_u".
        index: optional (B,) flat index ``t * (U+1) + u`` of the selected node.
        max_t, max_u1: T and U+1.

    Returns:
        ``frame_run`` (B, T) and ``token_run`` (B, U+1) (0: taking part, -1:
        not), and the number of nodes taking part (B,).
    """
    rows = torch.arange(max_t, device=enc_lens.device)[None, :]
    cols = torch.arange(max_u1, device=enc_lens.device)[None, :]
    row_ok = rows < enc_lens[:, None]
    col_ok = cols <= label_lens[:, None]
    if index is not None and mode in ("one", "full_t"):
        row_ok = rows == (index // max_u1)[:, None]
    if index is not None and mode in ("one", "full_u"):
        col_ok = cols == (index % max_u1)[:, None]
    row_ok = row_ok & keep[:, None]
    size = row_ok.sum(dim=1) * col_ok.sum(dim=1)
    return torch.where(row_ok, 0, -1), torch.where(col_ok, 0, -1), size


class _LatticeMaxPool(torch.autograd.Function):
    """Per-utterance lattice max pooling losses (B,) from the fused kernels."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        enc: Tensor,
        pred: Tensor,
        weight: Tensor,
        bias: Tensor,
        enc_lens: Tensor,
        label_lens: Tensor,
        target: Tensor,
        keep: Tensor,
        mode: str,
        neutral_id: int,
        kernels: LatticeKernels,
    ) -> Tensor:
        max_t, max_u1 = enc.size(1), pred.size(1)
        frame_run, token_run, _ = _pool_runs(enc_lens, label_lens, keep, mode, None, max_t, max_u1)
        joint = JointInputs(enc, pred, weight, bias)
        target_lp, neutral_lp = kernels.log_probs(
            joint, NodeRuns(frame_run, token_run, target[:, None].contiguous()), neutral_id
        )
        valid = valid_node_mask(enc_lens, label_lens, max_t, max_u1)
        # Ignored utterances were not computed: let them select node (0, 0), weighted 0 later.
        valid[~keep] = False
        valid[~keep, 0, 0] = True
        best = first_extreme_node(target_lp, valid, largest=True)
        least_neutral = first_extreme_node(neutral_lp, valid, largest=False)
        per_utt = -node_mean(target_lp, pooled_node_mask(best, valid, mode)) - node_mean(
            neutral_lp, pooled_node_mask(least_neutral, valid, mode)
        )
        per_utt = torch.where(keep, per_utt, torch.zeros_like(per_utt))
        ctx.save_for_backward(
            enc, pred, weight, bias, enc_lens, label_lens, target, keep, best, least_neutral
        )
        ctx.mode = mode
        ctx.neutral_id = neutral_id
        ctx.kernels = kernels
        return per_utt

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        """Recompute only the selected nodes, rows or columns (one kernel call per selection)."""
        enc, pred, weight, bias, enc_lens, label_lens, target, keep, best, least = ctx.saved_tensors
        joint = JointInputs(enc, pred, weight, bias)
        grads: Tuple[Tensor, ...] = ()
        for index, classes in ((best, target), (least, torch.full_like(target, ctx.neutral_id))):
            frame_run, token_run, size = _pool_runs(
                enc_lens, label_lens, keep, ctx.mode, index, enc.size(1), pred.size(1)
            )
            run_weight = (grad.to(enc.dtype) / size.clamp(min=1).to(enc.dtype))[:, None]
            runs = NodeRuns(frame_run, token_run, classes[:, None].contiguous())
            part = ctx.kernels.backward(joint, runs, run_weight)
            grads = tuple(part) if not grads else tuple(a + b for a, b in zip(grads, part))
        return grads + (None,) * 7


class _RankedPool(torch.autograd.Function):
    """Per-utterance losses (B,) of the ranked modes ``mil`` / ``topk`` from the numba CPU kernels.

    The forward pass gets ``log p(c_b)`` of every valid node (``c_b``: the
    utterance's class) from the log-probability kernel and ranks them in
    PyTorch; the backward pass recomputes only the selected nodes
    (:func:`ent.kernels.lattice_numba.node_weight_backward_cpu`).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        enc: Tensor,
        pred: Tensor,
        weight: Tensor,
        bias: Tensor,
        enc_lens: Tensor,
        label_lens: Tensor,
        target: Tensor,
        keep: Tensor,
        mode: str,
        neutral_id: int,
        topk: float,
    ) -> Tensor:
        from ent.kernels import lattice_numba  # numba is imported on first use

        max_t, max_u1 = enc.size(1), pred.size(1)
        frame_run, token_run, _ = _pool_runs(enc_lens, label_lens, keep, mode, None, max_t, max_u1)
        emotional = keep & (target != neutral_id)
        cls = torch.where(emotional, target, torch.full_like(target, neutral_id))
        joint = JointInputs(enc, pred, weight, bias)
        score, _ = lattice_numba.log_probs_cpu(joint, NodeRuns(frame_run, token_run, cls[:, None].contiguous()), -1)
        valid = valid_node_mask(enc_lens, label_lens, max_t, max_u1)
        # Ignored utterances were not computed: let them select node (0, 0), weighted 0 later.
        valid[~keep] = False
        valid[~keep, 0, 0] = True
        selected = ranked_selection(score, valid, emotional, ranked_node_counts(valid, mode, topk))
        per_utt = -node_mean(score, selected)
        per_utt = torch.where(keep, per_utt, torch.zeros_like(per_utt))
        ctx.save_for_backward(enc, pred, weight, bias, cls, keep, selected)
        return per_utt

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        from ent.kernels import lattice_numba  # numba is imported on first use

        enc, pred, weight, bias, cls, keep, selected = ctx.saved_tensors
        count = selected.sum(dim=(1, 2)).clamp(min=1).to(enc.dtype)
        per_node = torch.where(keep, grad.to(enc.dtype), torch.zeros_like(grad, dtype=enc.dtype)) / count
        node_weight = selected.to(enc.dtype) * per_node[:, None, None]
        grads = lattice_numba.node_weight_backward_cpu(JointInputs(enc, pred, weight, bias), cls, node_weight)
        return tuple(grads) + (None,) * 7


def _check_emo_labels(
    emo_labels: Tensor, batch: int, num_classes: int, neutral_id: int, ignore_index: int
) -> None:
    """The reference's checks of ``emo_labels`` (B,) and ``neutral_id``."""
    if not 0 <= neutral_id < num_classes:
        raise ValueError(f"neutral_id={neutral_id} outside [0, C={num_classes})")
    if emo_labels.dim() != 1 or emo_labels.size(0) != batch:
        raise ValueError(f"emo_labels must have shape ({batch},), got {tuple(emo_labels.shape)}")
    if emo_labels.is_floating_point() or emo_labels.dtype == torch.bool:
        raise ValueError(f"emo_labels must be an integer tensor, got {emo_labels.dtype}")
    bad = (emo_labels != ignore_index) & ((emo_labels < 0) | (emo_labels >= num_classes))
    if bool(bad.any()):
        raise ValueError(
            f"emo_labels must lie in [0, C={num_classes}) or equal ignore_index={ignore_index}, "
            f"got {emo_labels.tolist()}"
        )


def fused_lattice_max_pool_loss(
    enc_proj: Tensor,
    pred_proj: Tensor,
    weight: Tensor,
    bias: Tensor,
    enc_lens: Tensor,
    label_lens: Tensor,
    emo_labels: Tensor,
    mode: str = "one",
    neutral_id: int = 0,
    reduction: str = "mean",
    ignore_index: int = -1,
    backend: str = "auto",
    topk: float = 0.5,
) -> Tensor:
    """Lattice max pooling loss of ENT without materializing the emotion lattice.

    Equal to ``lattice_max_pool_loss(emotion_lattice(enc_proj, pred_proj,
    weight, bias), ...)`` (:mod:`ent.losses.lattice_max_pool`: formulas, tie
    rule, valid region, reductions) in value and gradients.

    Args:
        enc_proj: (B, T, J) projected encoder outputs (``lin_enc(enc_out)``).
        pred_proj: (B, U+1, J) projected predictor outputs (``lin_pred(pred_out)``).
        weight: (C, J) weight of the emotion joint's output layer.
        bias: (C,) its bias.
        enc_lens: (B,) integer encoder lengths, 1 <= enc_lens[b] <= T.
        label_lens: (B,) integer token counts, 0 <= label_lens[b] <= U.
        emo_labels: (B,) utterance emotions in [0, C), or ``ignore_index``.
        mode: "one", "full_t" or "full_u" (or "One", "FullT", "FullU"), or a
            ranked mode "mil" or "topk". The ranked modes are fused on the
            CPU (numba); on a GPU they take the ``torch`` path.
        neutral_id: Index of the neutral class.
        reduction: "mean" (over non-ignored utterances), "sum" or "none".
        ignore_index: Label value of utterances left out.
        backend: One of :data:`ent.kernels.backends.LATTICE_BACKENDS` (see
            :func:`~ent.kernels.backends.resolve_backend`).
        topk: Share of the nodes pooled by mode "topk", in (0, 1].

    Returns:
        Scalar loss, or (B,) for ``reduction="none"``; float32 for half or
        bfloat16 inputs, the inputs' dtype otherwise.
    """
    mode = normalize_lattice_mode(mode)
    check_reduction(reduction)
    topk = check_topk(topk)
    chosen = resolve_backend(backend, enc_proj.device)
    if chosen == "torch" or (mode in RANKED_MODES and chosen != "numba"):
        _check_joint_inputs(enc_proj, pred_proj, weight, bias)
        return lattice_max_pool_loss(
            emotion_lattice(enc_proj, pred_proj, weight, bias), enc_lens, label_lens, emo_labels,
            mode=mode, neutral_id=neutral_id, reduction=reduction, ignore_index=ignore_index, topk=topk,
        )
    joint, enc_lens, label_lens = _prepare(enc_proj, pred_proj, weight, bias, enc_lens, label_lens)
    batch = enc_proj.size(0)
    _check_emo_labels(emo_labels, batch, weight.size(0), neutral_id, ignore_index)
    emo_labels = emo_labels.to(device=enc_proj.device, dtype=torch.long)
    keep = emo_labels != ignore_index
    target = torch.where(keep, emo_labels, torch.zeros_like(emo_labels))
    if mode in RANKED_MODES:
        per_utt = _RankedPool.apply(*joint, enc_lens, label_lens, target, keep, mode, neutral_id, topk)
    else:
        per_utt = _LatticeMaxPool.apply(
            *joint, enc_lens, label_lens, target, keep, mode, neutral_id, lattice_kernels(chosen)
        )
    return reduce_losses(per_utt, keep, reduction)


# --------------------------------------------------------------------------
# Supervised interval loss
# --------------------------------------------------------------------------


def _run_node_counts(runs: IntervalRuns) -> Tensor:
    """(B, T) number of lattice nodes of each run (0 past the last run).

    A node belongs to run ``max(kf, ku)``, so the nodes of runs ``<= k`` form
    the rectangle (frames of runs <= k) x (positions of runs <= k).
    """
    batch, max_t = runs.frame_run.shape
    frames = torch.zeros(batch, max_t + 1, dtype=torch.long, device=runs.frame_run.device)
    frames.scatter_add_(1, runs.frame_run + 1, torch.ones_like(runs.frame_run))
    width = max(max_t, runs.token_run.size(1)) + 1
    tokens = torch.zeros(batch, width, dtype=torch.long, device=frames.device)
    tokens.scatter_add_(1, runs.token_run + 1, torch.ones_like(runs.token_run))
    # Column 0 counted the -1 entries; drop it.
    rect = frames[:, 1:].cumsum(1) * tokens[:, 1 : max_t + 1].cumsum(1)
    return rect - F.pad(rect[:, :-1], (1, 0))


class _SupervisedLattice(torch.autograd.Function):
    """Per-utterance supervised interval losses (B,) from the fused kernels."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        enc: Tensor,
        pred: Tensor,
        weight: Tensor,
        bias: Tensor,
        frame_run: Tensor,
        token_run: Tensor,
        run_label: Tensor,
        counts: Tensor,
        kernels: LatticeKernels,
    ) -> Tensor:
        runs = NodeRuns(frame_run, token_run, run_label)
        log_probs, _ = kernels.log_probs(JointInputs(enc, pred, weight, bias), runs, -1)
        batch = enc.size(0)
        node_ok = (frame_run >= 0)[:, :, None] & (token_run >= 0)[:, None, :]
        node_run = torch.maximum(frame_run[:, :, None], token_run[:, None, :]).clamp(min=0)
        sums = torch.zeros(batch, frame_run.size(1), dtype=log_probs.dtype, device=enc.device)
        nll = torch.where(node_ok, -log_probs, torch.zeros_like(log_probs))
        sums.scatter_add_(1, node_run.reshape(batch, -1), nll.reshape(batch, -1))
        ctx.save_for_backward(enc, pred, weight, bias, frame_run, token_run, run_label, counts)
        ctx.kernels = kernels
        return (sums / counts.clamp(min=1).to(sums.dtype)).sum(dim=1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        enc, pred, weight, bias, frame_run, token_run, run_label, counts = ctx.saved_tensors
        # counts == 0 only past the last run, where no node is: the weight is never read.
        run_weight = grad[:, None].to(enc.dtype) / counts.clamp(min=1).to(enc.dtype)
        grads = ctx.kernels.backward(
            JointInputs(enc, pred, weight, bias), NodeRuns(frame_run, token_run, run_label), run_weight
        )
        return tuple(grads) + (None,) * 5


def fused_supervised_lattice_loss(
    enc_proj: Tensor,
    pred_proj: Tensor,
    weight: Tensor,
    bias: Tensor,
    enc_lens: Tensor,
    label_lens: Tensor,
    frame_labels: Tensor,
    token_labels: Optional[Tensor] = None,
    reduction: str = "mean",
    ignore_index: int = -1,
    backend: str = "auto",
) -> Tensor:
    """Supervised interval loss without materializing the emotion lattice.

    Equal to ``supervised_lattice_loss(emotion_lattice(enc_proj, pred_proj,
    weight, bias), ...)`` in value and gradients.

    Args:
        enc_proj: (B, T, J) projected encoder outputs.
        pred_proj: (B, U+1, J) projected predictor outputs.
        weight: (C, J) and bias: (C,) of the emotion joint's output layer.
        enc_lens: (B,) encoder lengths; label_lens: (B,) token counts.
        frame_labels: (B, T) integer frame emotions (``ignore_index`` = unlabelled).
        token_labels: optional (B, U+1) integer position emotions.
        reduction: "mean" (over utterances with an interval), "sum" or "none".
        ignore_index: Label value meaning "not labelled".
        backend: One of :data:`ent.kernels.backends.LATTICE_BACKENDS`.

    Returns:
        Scalar loss, or (B,) for ``reduction="none"``.
    """
    check_reduction(reduction)
    chosen = resolve_backend(backend, enc_proj.device)
    if chosen == "torch":
        _check_joint_inputs(enc_proj, pred_proj, weight, bias)
        return supervised_lattice_loss(
            emotion_lattice(enc_proj, pred_proj, weight, bias), enc_lens, label_lens, frame_labels,
            token_labels, reduction=reduction, ignore_index=ignore_index,
        )
    joint, enc_lens, label_lens = _prepare(enc_proj, pred_proj, weight, bias, enc_lens, label_lens)
    runs = interval_runs(
        frame_labels, token_labels, enc_lens, label_lens, weight.size(0), enc_proj.size(1),
        pred_proj.size(1), ignore_index,
    )
    per_utt = _SupervisedLattice.apply(
        *joint, runs.frame_run, runs.token_run, runs.run_label, _run_node_counts(runs), lattice_kernels(chosen)
    )
    return reduce_losses(per_utt, runs.num_runs > 0, reduction)
