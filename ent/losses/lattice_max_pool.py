r"""Lattice max pooling: the emotion losses of the Emotion Neural Transducer.

Reference: S. Shen, Y. Gao, F. Liu, H. Wang, A. Zhou, "Emotion Neural
Transducer for Fine-Grained Speech Emotion Recognition", ICASSP 2024,
arXiv:2403.19224, Sec. 2 (the emotion joint network builds an *emotion
lattice* over the transducer alignment lattice; *lattice max pooling* trains it
from utterance-level labels), ablation of the pooling variants in Sec. 3. The
exact formula below was established from the authors' public code
(ECNU-Cross-Innovation-Lab/ENT: ``models/loss.py`` classes ``LatticeLoss`` and
``LatticeLossMix``, called from ``models/transducer.py``) and from our issue's
specification, which agree; this is an independent implementation.

Notation
--------
``emo_logits`` ``z`` has shape ``(B, T, U+1, C)``: node ``(t, u)`` of utterance
``b`` pairs encoder frame ``t`` with predictor position ``u`` (``u`` tokens
emitted so far; ``u = 0`` is the start position). Let
``lp[b, t, u, c] = log_softmax_c z[b, t, u, :]`` and let the *valid region* be
``V_b = {(t, u) : 0 <= t < T_b, 0 <= u <= L_b}`` with ``T_b = enc_lens[b]`` and
``L_b = label_lens[b]``. Nodes outside ``V_b`` (padding) never take part: they
are never selected, never averaged, and get exactly zero gradient.

Lattice max pooling (:func:`lattice_max_pool_loss`)
---------------------------------------------------
For an utterance with label ``y = emo_labels[b]`` and neutral class ``n``::

    (t+, u+) = argmax_{(t,u) in V_b} lp[b, t, u, y]     # most emotional node
    (t-, u-) = argmin_{(t,u) in V_b} lp[b, t, u, n]     # least neutral node

    loss_b = - mean_{(t,u) in S+} lp[b, t, u, y]  - mean_{(t,u) in S-} lp[b, t, u, n]

with the selections ``S+`` / ``S-`` given by ``mode`` (authors' names in
brackets)::

    "one"    ("One"):   S+ = {(t+, u+)}                    S- = {(t-, u-)}
    "full_t" ("FullT"): S+ = {(t+, u) : 0 <= u <= L_b}     S- = {(t-, u) : 0 <= u <= L_b}
    "full_u" ("FullU"): S+ = {(t, u+) : 0 <= t <  T_b}     S- = {(t, u-) : 0 <= t <  T_b}

So in ``"one"`` mode ``loss_b = -log max_V p(y) - log min_V p(n)``.
``"full_t"`` takes the whole *time row* of the selected node: every predictor
position ``u`` at the selected frame ``t+`` (the authors index
``prob[t_index, :]``, "all nodes within the timestamp ..., namely the entire
row"). ``"full_u"`` takes the whole *token column*: every valid frame ``t`` at
the selected position ``u+`` (``prob[:, u_index]``). This matches our spec
("``FullT`` (the whole time row of the selected node) and ``FullU`` (the whole
token column)").

* The same formula applies to every utterance. For an emotional utterance the
  most ``y``-like node is pulled towards ``y`` while the least neutral node has
  its neutral probability raised. For a neutral utterance (``y == n``) both
  terms are on the neutral class: the most neutral and the least neutral
  node(s) are both pulled towards neutral.
* Max and min are taken on the probabilities (equivalently on ``lp``, the log
  being monotone); the selected indices are constants (like max pooling): the
  gradient flows only into the logits of the selected nodes (all ``C`` classes
  of those nodes, through the softmax); every other node gets exactly zero.
* Ties (``exactly`` equal ``lp`` values, as computed by ``torch.log_softmax``
  in the compute dtype) are broken by the first node in row-major ``(t, u)``
  order: smallest ``t``, then smallest ``u`` (what ``torch.argmax`` documents;
  enforced explicitly here so it holds on every device).
* Utterances with ``emo_labels[b] == ignore_index`` (default -1) contribute 0
  and are left out of the ``"mean"``.
* Reduction: ``"mean"`` averages ``loss_b`` over the non-ignored utterances (the
  authors' code sums over the batch and divides by ``B``; identical without
  ignored utterances); ``"sum"`` sums; ``"none"`` returns ``(B,)``.
* Half/bfloat16 logits are computed in float32; float32/float64 stay as they
  are. The result has the compute dtype.

Why ``one`` collapses, and the ranked modes
-------------------------------------------
For an emotional utterance the two terms of the authors' objective pull in
opposite directions: the least neutral node is, in a trained model, the most
emotional one, and it is pushed back towards neutral while the most ``y``-like
node is pushed towards ``y``; every neutral utterance pushes its nodes towards
neutral too. Trained on utterance labels alone, the lattice ends all-neutral
(``mini_emo``: every frame of ``test_sed`` neutral, EDER 36.3 %). The
*ranked* modes keep the multiple-instance reading of the labels (an emotional
utterance holds frames of its emotion; a neutral utterance holds only neutral
frames) and drop the neutral term of emotional utterances. With the
utterance's class ``c = y`` and ``N_b = |V_b|`` valid nodes::

    emotional (y != n):  S = the m_b nodes of V_b with the largest  lp[b, t, u, y]
    neutral   (y == n):  S = the m_b nodes of V_b with the smallest lp[b, t, u, n]

    loss_b = - mean_{(t,u) in S} lp[b, t, u, c]

    "mil":   m_b = 1                               (-log max p(y), resp. -log min p(n))
    "topk":  m_b = max(1, ceil(topk * N_b))        (0 < topk <= 1)

So ``mil`` is the classic multiple-instance max pooling, with the neutral
term of the authors' objective kept for neutral utterances only, and
``topk`` pools the ``topk`` share of the nodes: the most ``y``-like ones of an
emotional utterance, the least neutral ones of a neutral utterance (its
hardest negatives); ``topk: 1`` trains every node with the utterance label.
Ranks are taken on the detached log-probabilities; exact ties go to the
first node in row-major ``(t, u)`` order (a stable sort), as in ``one``.

Deliberate differences from the authors' code: (1) ``-log`` uses
``log_softmax`` instead of ``log(clamp(softmax, 1e-8, 1))``: identical wherever
``p >= 1e-8`` but without the clamp's zero gradient below it. (2) In
``FullT``/``FullU`` the authors average over the *padded* row/column (padded
target nodes count ``-log 1e-8``, padded neutral nodes 0), so their loss depends
on the batch padding; here the means run over the valid nodes only. (3) The
neutral class is configurable (the authors hard-code index 3 of their
``hap ang sad neu`` map; ENT's default is 0, see
:data:`ent.data.emotions.DEFAULT_EMOTIONS`).

Supervised variant (:func:`supervised_lattice_loss`)
----------------------------------------------------
For utterances that carry ``emo_segments`` (and for concatenated training
utterances as in the paper's mixing experiment). ``frame_labels[b, t]`` is the
emotion of encoder frame ``t`` (``ignore_index`` = not labelled); an *interval*
is a maximal run of consecutive labelled frames ``t < T_b`` with the same label.
Intervals ``k = 0, 1, ...`` have emotion ``e_k`` and frame range ``[s_k, f_k)``.
Each interval's emotion is trained on its lattice region ``R_k``::

    loss_b = sum_k  mean_{(t,u) in R_k}  -lp[b, t, u, e_k]

* Without ``token_labels`` (token times unknown, the usual case for
  ``emo_segments``): ``R_k = {(t, u) : s_k <= t < f_k, 0 <= u <= L_b}``: the
  interval's frame rows, across every valid predictor position.
* With ``token_labels`` ``(B, U+1)`` (the emotion of each predictor position,
  e.g. known from how an utterance was concatenated), token intervals are the
  runs of ``token_labels[b, :L_b+1]`` and must match the frame intervals one to
  one (same count, same emotions); token interval ``k`` spans ``[p_k, q_k)``.
  Then, as in the authors' ``LatticeLossMix``,
  ``R_k = {(t, u) : t < f_k, u < q_k, (t >= s_k or u >= p_k)}``: the
  interval's rows and columns clipped to the rectangle that ends where the
  interval ends. Equivalently each labelled node belongs to interval
  ``max(kf(t), ku(u))`` (``kf``/``ku``: interval index of its frame/token), so
  the regions partition the lattice. Nodes whose frame or token is unlabelled
  are left out.
* The loss is a sum over intervals of per-interval means (as the authors).
  ``"mean"`` averages over utterances that have at least one interval; ``"sum"``
  sums; ``"none"`` returns ``(B,)`` (0 for utterances without intervals).

:func:`frame_labels_from_segments` turns ``emo_segments`` intervals (seconds)
into frame labels: frame ``t`` gets the emotion of the segment containing its
centre ``(t + 0.5) * frame_shift_s``, neutral elsewhere.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

LATTICE_MODES: Tuple[str, ...] = ("one", "full_t", "full_u", "mil", "topk")
#: The authors' modes (fused kernels of :mod:`ent.losses.fused_lattice`); the
#: others rank the nodes (module docstring).
MAX_POOL_MODES: Tuple[str, ...] = ("one", "full_t", "full_u")
RANKED_MODES: Tuple[str, ...] = ("mil", "topk")
_MODE_ALIASES: Dict[str, str] = {"One": "one", "FullT": "full_t", "FullU": "full_u"}
_REDUCTIONS: Tuple[str, ...] = ("mean", "sum", "none")


def normalize_lattice_mode(mode: str) -> str:
    """Map a mode name (ours or the authors' ``One``/``FullT``/``FullU``) to ours; ValueError if unknown."""
    mode = _MODE_ALIASES.get(mode, mode)
    if mode not in LATTICE_MODES:
        raise ValueError(
            f"unknown lattice max pooling mode {mode!r}: expected one of {list(LATTICE_MODES)} "
            f"(or {list(_MODE_ALIASES)})"
        )
    return mode


def check_topk(topk: float) -> float:
    """Validate the ``topk`` share of the ranked mode: a number in (0, 1]."""
    if isinstance(topk, bool) or not isinstance(topk, (int, float)) or not 0.0 < float(topk) <= 1.0:
        raise ValueError(f"lattice topk must be a share of the lattice nodes in (0, 1], got {topk!r}")
    return float(topk)


def check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}: expected one of {list(_REDUCTIONS)}")


def _compute_dtype(x: Tensor) -> torch.dtype:
    """float32 for half/bfloat16 inputs, the input's own dtype otherwise."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def check_lattice_lengths(
    emo_logits: Tensor, enc_lens: Tensor, label_lens: Tensor
) -> Tuple[Tensor, Tensor]:
    """Validate the lattice and its lengths; return the lengths as long on the logits' device.

    Args:
        emo_logits: (B, T, U+1, C) emotion lattice logits.
        enc_lens: (B,) encoder lengths, 1 <= enc_lens[b] <= T.
        label_lens: (B,) token counts, 0 <= label_lens[b] <= U.

    Returns:
        ``(enc_lens, label_lens)`` as int64 tensors on ``emo_logits.device``.
    """
    if emo_logits.dim() != 4:
        raise ValueError(f"emo_logits must be (B, T, U+1, C), got shape {tuple(emo_logits.shape)}")
    if not emo_logits.is_floating_point():
        raise ValueError(f"emo_logits must be floating point, got {emo_logits.dtype}")
    batch, max_t, max_u1, num_classes = emo_logits.shape
    if batch == 0 or max_t == 0 or max_u1 == 0 or num_classes == 0:
        raise ValueError(f"emo_logits has an empty dimension: shape {tuple(emo_logits.shape)}")
    for name, lens in (("enc_lens", enc_lens), ("label_lens", label_lens)):
        if lens.dim() != 1 or lens.size(0) != batch:
            raise ValueError(f"{name} must have shape ({batch},), got {tuple(lens.shape)}")
        if lens.is_floating_point() or lens.is_complex() or lens.dtype == torch.bool:
            raise ValueError(f"{name} must be an integer tensor, got {lens.dtype}")
    enc_lens = enc_lens.to(device=emo_logits.device, dtype=torch.long)
    label_lens = label_lens.to(device=emo_logits.device, dtype=torch.long)
    if bool(((enc_lens < 1) | (enc_lens > max_t)).any()):
        raise ValueError(f"enc_lens must lie in [1, T={max_t}], got {enc_lens.tolist()}")
    if bool(((label_lens < 0) | (label_lens > max_u1 - 1)).any()):
        raise ValueError(f"label_lens must lie in [0, U={max_u1 - 1}], got {label_lens.tolist()}")
    return enc_lens, label_lens


def valid_node_mask(enc_lens: Tensor, label_lens: Tensor, max_t: int, max_u1: int) -> Tensor:
    """(B, T, U+1) bool: node (t, u) of utterance b is inside the valid lattice region."""
    t_idx = torch.arange(max_t, device=enc_lens.device)
    u_idx = torch.arange(max_u1, device=enc_lens.device)
    t_ok = t_idx[None, :] < enc_lens[:, None]  # (B, T)
    u_ok = u_idx[None, :] <= label_lens[:, None]  # (B, U+1)
    return t_ok[:, :, None] & u_ok[:, None, :]


def first_extreme_node(values: Tensor, valid: Tensor, largest: bool) -> Tensor:
    """Flat index of the first maximum (or minimum) over the valid nodes.

    Args:
        values: (B, T, U+1) scores (not differentiated through).
        valid: (B, T, U+1) bool, at least one True per utterance.
        largest: max if True, min if False.

    Returns:
        (B,) long: ``t * (U+1) + u`` of the extreme valid node; exact ties go to
        the smallest flat index, i.e. the first node in row-major (t, u) order.
    """
    batch = values.size(0)
    flat = values.detach().reshape(batch, -1)
    ok = valid.reshape(batch, -1)
    fill = float("-inf") if largest else float("inf")
    masked = flat.masked_fill(~ok, fill)
    extreme = masked.amax(dim=1, keepdim=True) if largest else masked.amin(dim=1, keepdim=True)
    hit = (masked == extreme) & ok
    num_nodes = flat.size(1)
    positions = torch.arange(num_nodes, device=flat.device).expand_as(flat)
    index = torch.where(hit, positions, torch.full_like(positions, num_nodes)).amin(dim=1)
    if bool((index >= num_nodes).any()):
        raise ValueError("emotion lattice log-probabilities contain NaN in the valid region")
    return index


def pooled_node_mask(index: Tensor, valid: Tensor, mode: str) -> Tensor:
    """(B, T, U+1) bool: the nodes pooled for the selected flat node ``index`` (B,)."""
    _, max_t, max_u1 = valid.shape
    sel_t = (index // max_u1)[:, None, None]
    sel_u = (index % max_u1)[:, None, None]
    t_idx = torch.arange(max_t, device=valid.device)[None, :, None]
    u_idx = torch.arange(max_u1, device=valid.device)[None, None, :]
    if mode == "one":
        return (t_idx == sel_t) & (u_idx == sel_u)
    if mode == "full_t":
        return (t_idx == sel_t) & valid
    return (u_idx == sel_u) & valid


def ranked_selection(values: Tensor, valid: Tensor, largest: Tensor, count: Tensor) -> Tensor:
    """(B, T, U+1) bool: the ``count[b]`` valid nodes of largest (or smallest) value.

    Args:
        values: (B, T, U+1) scores (not differentiated through).
        valid: (B, T, U+1) bool, at least ``count[b]`` True per utterance.
        largest: (B,) bool, rank by the largest values (else the smallest).
        count: (B,) long, nodes to select (>= 1).

    Exact ties go to the first node in row-major (t, u) order (stable sort).
    """
    batch = values.size(0)
    flat = values.detach().reshape(batch, -1)
    ok = valid.reshape(batch, -1)
    if bool(torch.isnan(flat[ok]).any()):
        raise ValueError("emotion lattice log-probabilities contain NaN in the valid region")
    key = torch.where(largest[:, None], flat, -flat).masked_fill(~ok, float("-inf"))
    order = torch.sort(key, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(flat.size(1), device=flat.device).expand_as(order))
    return ((rank < count[:, None]) & ok).reshape(valid.shape)


def ranked_node_counts(valid: Tensor, mode: str, topk: float) -> Tensor:
    """(B,) nodes pooled per utterance by a ranked mode: 1 (``mil``) or ``ceil(topk * N_b)``."""
    num_valid = valid.sum(dim=(1, 2))
    if mode == "mil":
        return torch.ones_like(num_valid)
    share = torch.ceil(num_valid.double() * check_topk(topk)).long()
    return share.clamp(min=1)


def _ranked_pool(
    log_probs: Tensor, valid: Tensor, target: Tensor, keep: Tensor, mode: str, neutral_id: int, topk: float
) -> Tensor:
    """(B,) losses of the ranked modes (module docstring) from (B, T, U+1, C) log-probabilities."""
    emotional = keep & (target != neutral_id)
    cls = torch.where(emotional, target, torch.full_like(target, neutral_id))
    batch, max_t, max_u1, _ = log_probs.shape
    score = log_probs.gather(-1, cls[:, None, None, None].expand(batch, max_t, max_u1, 1)).squeeze(-1)
    selected = ranked_selection(score, valid, emotional, ranked_node_counts(valid, mode, topk))
    return -node_mean(score, selected)


def node_mean(values: Tensor, mask: Tensor) -> Tensor:
    """(B,) mean of ``values`` (B, T, U+1) over ``mask`` (non-empty per utterance)."""
    total = torch.where(mask, values, torch.zeros_like(values)).sum(dim=(1, 2))
    return total / mask.sum(dim=(1, 2)).to(values.dtype)


def reduce_losses(per_utt: Tensor, counted: Tensor, reduction: str) -> Tensor:
    """Apply ``reduction`` to ``per_utt`` (B,); ``counted`` (B,) bool marks the utterances of the mean."""
    if reduction == "none":
        return per_utt
    total = per_utt.sum()
    if reduction == "sum":
        return total
    return total / counted.sum().clamp(min=1).to(per_utt.dtype)


def lattice_max_pool_loss(
    emo_logits: Tensor,
    enc_lens: Tensor,
    label_lens: Tensor,
    emo_labels: Tensor,
    mode: str = "one",
    neutral_id: int = 0,
    reduction: str = "mean",
    ignore_index: int = -1,
    topk: float = 0.5,
) -> Tensor:
    """Lattice max pooling loss of ENT (see the module docstring for the formula).

    Args:
        emo_logits: (B, T, U+1, C) emotion lattice logits (before softmax).
        enc_lens: (B,) integer encoder lengths, 1 <= enc_lens[b] <= T.
        label_lens: (B,) integer token counts, 0 <= label_lens[b] <= U; the
            valid predictor positions are u = 0 .. label_lens[b].
        emo_labels: (B,) integer utterance emotion in [0, C), or
            ``ignore_index`` to leave the utterance out.
        mode: "one", "full_t" (whole time row of the selected node) or
            "full_u" (whole token column); the authors' "One", "FullT", "FullU"
            are accepted too; or a ranked mode, "mil" or "topk" (module
            docstring), which never push an emotional utterance's nodes
            towards neutral.
        neutral_id: index of the neutral class in [0, C).
        reduction: "mean" (over non-ignored utterances), "sum" or "none".
        ignore_index: label value marking utterances without emotion label.
        topk: share of the valid nodes pooled by mode "topk", in (0, 1].

    Returns:
        Scalar loss, or (B,) per-utterance losses for ``reduction="none"``
        (0 for ignored utterances), in float32 for half/bfloat16 inputs and in
        the input dtype otherwise.
    """
    mode = normalize_lattice_mode(mode)
    check_reduction(reduction)
    enc_lens, label_lens = check_lattice_lengths(emo_logits, enc_lens, label_lens)
    batch, max_t, max_u1, num_classes = emo_logits.shape
    if not 0 <= neutral_id < num_classes:
        raise ValueError(f"neutral_id={neutral_id} outside [0, C={num_classes})")
    if emo_labels.dim() != 1 or emo_labels.size(0) != batch:
        raise ValueError(f"emo_labels must have shape ({batch},), got {tuple(emo_labels.shape)}")
    if emo_labels.is_floating_point() or emo_labels.dtype == torch.bool:
        raise ValueError(f"emo_labels must be an integer tensor, got {emo_labels.dtype}")
    emo_labels = emo_labels.to(device=emo_logits.device, dtype=torch.long)
    keep = emo_labels != ignore_index
    if bool((keep & ((emo_labels < 0) | (emo_labels >= num_classes))).any()):
        raise ValueError(
            f"emo_labels must lie in [0, C={num_classes}) or equal ignore_index={ignore_index}, "
            f"got {emo_labels.tolist()}"
        )

    log_probs = torch.log_softmax(emo_logits.to(_compute_dtype(emo_logits)), dim=-1)
    valid = valid_node_mask(enc_lens, label_lens, max_t, max_u1)
    target = torch.where(keep, emo_labels, torch.zeros_like(emo_labels))
    if mode in RANKED_MODES:
        per_utt = _ranked_pool(log_probs, valid, target, keep, mode, neutral_id, topk)
        per_utt = torch.where(keep, per_utt, torch.zeros_like(per_utt))
        return reduce_losses(per_utt, keep, reduction)
    index = target[:, None, None, None].expand(batch, max_t, max_u1, 1)
    target_lp = log_probs.gather(-1, index).squeeze(-1)  # (B, T, U+1)
    neutral_lp = log_probs[..., neutral_id]  # (B, T, U+1)

    best = first_extreme_node(target_lp, valid, largest=True)
    least_neutral = first_extreme_node(neutral_lp, valid, largest=False)
    target_sel = pooled_node_mask(best, valid, mode)
    neutral_sel = pooled_node_mask(least_neutral, valid, mode)
    per_utt = -node_mean(target_lp, target_sel) - node_mean(neutral_lp, neutral_sel)
    per_utt = torch.where(keep, per_utt, torch.zeros_like(per_utt))
    return reduce_losses(per_utt, keep, reduction)


class LatticeMaxPoolLoss(nn.Module):
    """Module form of :func:`lattice_max_pool_loss` holding its configuration.

    Args:
        mode: "one", "full_t" or "full_u" (or the authors' "One", "FullT",
            "FullU"), or a ranked mode "mil" or "topk".
        neutral_id: index of the neutral class.
        reduction: "mean", "sum" or "none".
        ignore_index: utterance label value meaning "no emotion label".
        topk: share of the nodes pooled by mode "topk".
    """

    def __init__(
        self,
        mode: str = "one",
        neutral_id: int = 0,
        reduction: str = "mean",
        ignore_index: int = -1,
        topk: float = 0.5,
    ) -> None:
        super().__init__()
        self.mode = normalize_lattice_mode(mode)
        self.topk = check_topk(topk)
        check_reduction(reduction)
        if neutral_id < 0:
            raise ValueError(f"neutral_id must be >= 0, got {neutral_id}")
        self.neutral_id = neutral_id
        self.reduction = reduction
        self.ignore_index = ignore_index

    def forward(
        self, emo_logits: Tensor, enc_lens: Tensor, label_lens: Tensor, emo_labels: Tensor
    ) -> Tensor:
        """Compute the loss.

        Args:
            emo_logits: (B, T, U+1, C) emotion lattice logits.
            enc_lens: (B,) encoder lengths.
            label_lens: (B,) token counts (valid u = 0 .. label_lens[b]).
            emo_labels: (B,) utterance emotions (or ``ignore_index``).

        Returns:
            Scalar loss, or (B,) for ``reduction="none"``.
        """
        return lattice_max_pool_loss(
            emo_logits,
            enc_lens,
            label_lens,
            emo_labels,
            mode=self.mode,
            neutral_id=self.neutral_id,
            reduction=self.reduction,
            ignore_index=self.ignore_index,
            topk=self.topk,
        )

    def extra_repr(self) -> str:
        extra = f", topk={self.topk}" if self.mode == "topk" else ""
        return f"mode={self.mode!r}, neutral_id={self.neutral_id}, reduction={self.reduction!r}{extra}"


def _runs(labels: Tensor, labelled: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Number the runs of equal labels along the last dimension.

    Args:
        labels: (B, N) long labels.
        labelled: (B, N) bool, positions that take part (a False position ends a run).

    Returns:
        ``run_index`` (B, N) long (-1 where not labelled), ``run_label`` (B, N)
        long (label of run k at column k, -1 past the last run) and
        ``num_runs`` (B,) long.
    """
    prev_labelled = torch.zeros_like(labelled)
    prev_labelled[:, 1:] = labelled[:, :-1]
    changed = torch.ones_like(labelled)
    changed[:, 1:] = labels[:, 1:] != labels[:, :-1]
    starts = labelled & (~prev_labelled | changed)
    run_index = torch.cumsum(starts.long(), dim=1) - 1
    run_index = torch.where(labelled, run_index, torch.full_like(run_index, -1))
    num_runs = starts.long().sum(dim=1)
    start_pos = torch.where(starts, run_index, torch.full_like(run_index, labels.size(1)))
    # Scatter each run's label to column `run k`; non-starts go to a spare column.
    padded = torch.full((labels.size(0), labels.size(1) + 1), -1, dtype=labels.dtype, device=labels.device)
    padded.scatter_(1, start_pos, torch.where(starts, labels, torch.full_like(labels, -1)))
    run_label = padded[:, : labels.size(1)]
    return run_index, run_label, num_runs


class IntervalRuns(NamedTuple):
    """Interval structure of a batch in the kernels' node labelling.

    frame_run: (B, T) run of each frame (-1: not labelled or t >= T_b).
    token_run: (B, U+1) run of each predictor position (-1: not taking part);
        0 for every valid position when there are no token labels.
    run_label: (B, T) class of run k at column k (0 past the last run).
    num_runs: (B,) number of intervals.
    """

    frame_run: Tensor
    token_run: Tensor
    run_label: Tensor
    num_runs: Tensor


def interval_runs(
    frame_labels: Tensor,
    token_labels: Optional[Tensor],
    enc_lens: Tensor,
    label_lens: Tensor,
    num_classes: int,
    max_t: int,
    max_u1: int,
    ignore_index: int,
) -> IntervalRuns:
    """Runs of the frame (and token) labels, checked like the reference does.

    Args:
        frame_labels: (B, T) integer frame emotions or ``ignore_index``.
        token_labels: optional (B, U+1) integer position emotions.
        enc_lens, label_lens: (B,) int64 lengths (checked).
        num_classes: C.
        max_t: T.
        max_u1: U+1.
        ignore_index: Label value meaning "not labelled".
    """
    batch, device = enc_lens.size(0), enc_lens.device
    if frame_labels.shape != (batch, max_t):
        raise ValueError(f"frame_labels must have shape ({batch}, {max_t}), got {tuple(frame_labels.shape)}")
    if frame_labels.is_floating_point() or frame_labels.dtype == torch.bool:
        raise ValueError(f"frame_labels must be an integer tensor, got {frame_labels.dtype}")
    frame_labels = frame_labels.to(device=device, dtype=torch.long)
    t_ok = torch.arange(max_t, device=device)[None, :] < enc_lens[:, None]
    frame_ok = t_ok & (frame_labels != ignore_index)
    if bool((frame_ok & ((frame_labels < 0) | (frame_labels >= num_classes))).any()):
        raise ValueError(
            f"frame_labels must lie in [0, C={num_classes}) or equal ignore_index={ignore_index}"
        )
    frame_run, run_label, num_runs = _runs(frame_labels, frame_ok)
    u_ok = torch.arange(max_u1, device=device)[None, :] <= label_lens[:, None]
    if token_labels is None:
        token_run = torch.where(u_ok, 0, -1)
    else:
        if token_labels.shape != (batch, max_u1):
            raise ValueError(
                f"token_labels must have shape ({batch}, {max_u1}), got {tuple(token_labels.shape)}"
            )
        if token_labels.is_floating_point() or token_labels.dtype == torch.bool:
            raise ValueError(f"token_labels must be an integer tensor, got {token_labels.dtype}")
        token_labels = token_labels.to(device=device, dtype=torch.long)
        token_ok = u_ok & (token_labels != ignore_index)
        token_run, token_run_label, token_num_runs = _runs(token_labels, token_ok)
        width = max(max_t, max_u1)
        frame_seq = F.pad(run_label, (0, width - max_t), value=-1)
        token_seq = F.pad(token_run_label, (0, width - max_u1), value=-1)
        mismatch = (token_num_runs != num_runs) | (token_seq != frame_seq).any(dim=1)
        if bool(mismatch.any()):
            bad = torch.nonzero(mismatch).flatten().tolist()
            raise ValueError(
                f"token_labels intervals do not match the frame_labels intervals (same emotions in the "
                f"same order) for batch entries {bad}"
            )
    return IntervalRuns(frame_run, token_run, run_label.clamp(min=0), num_runs)


def supervised_lattice_loss(
    emo_logits: Tensor,
    enc_lens: Tensor,
    label_lens: Tensor,
    frame_labels: Tensor,
    token_labels: Optional[Tensor] = None,
    reduction: str = "mean",
    ignore_index: int = -1,
) -> Tensor:
    """Supervised lattice loss for utterances with emotion intervals (module docstring).

    Args:
        emo_logits: (B, T, U+1, C) emotion lattice logits.
        enc_lens: (B,) integer encoder lengths, 1 <= enc_lens[b] <= T.
        label_lens: (B,) integer token counts, 0 <= label_lens[b] <= U.
        frame_labels: (B, T) integer emotion of each encoder frame, in [0, C)
            or ``ignore_index``; frames t >= enc_lens[b] are ignored whatever
            their value. Runs of equal labels are the intervals.
        token_labels: optional (B, U+1) integer emotion of each predictor
            position u (``ignore_index`` = unlabelled; u > label_lens[b]
            ignored). Its runs must match the frame runs one to one. When
            None, each interval covers every valid predictor position.
        reduction: "mean" (over utterances with at least one interval), "sum"
            or "none".
        ignore_index: label value meaning "not labelled".

    Returns:
        Scalar loss, or (B,) per-utterance losses for ``reduction="none"``.
    """
    check_reduction(reduction)
    enc_lens, label_lens = check_lattice_lengths(emo_logits, enc_lens, label_lens)
    batch, max_t, max_u1, num_classes = emo_logits.shape
    device = emo_logits.device
    runs = interval_runs(
        frame_labels, token_labels, enc_lens, label_lens, num_classes, max_t, max_u1, ignore_index
    )
    run_label, num_runs = runs.run_label, runs.num_runs
    # A node belongs to the later of its frame's and its position's interval.
    node_run = torch.maximum(runs.frame_run[:, :, None], runs.token_run[:, None, :])
    node_ok = (runs.frame_run[:, :, None] >= 0) & (runs.token_run[:, None, :] >= 0)

    log_probs = torch.log_softmax(emo_logits.to(_compute_dtype(emo_logits)), dim=-1)
    node_run = torch.where(node_ok, node_run, torch.zeros_like(node_run))
    node_target = run_label.gather(1, node_run.reshape(batch, -1)).reshape(batch, max_t, max_u1)
    node_target = torch.where(node_ok, node_target, torch.zeros_like(node_target))
    nll = -log_probs.gather(-1, node_target[..., None]).squeeze(-1)  # (B, T, U+1)
    nll = torch.where(node_ok, nll, torch.zeros_like(nll))

    # Per-interval sums and node counts, then the sum of per-interval means.
    flat_run = node_run.reshape(batch, -1)
    sums = torch.zeros(batch, max_t, dtype=nll.dtype, device=device)
    sums = sums.scatter_add(1, flat_run, nll.reshape(batch, -1))
    counts = torch.zeros(batch, max_t, dtype=torch.long, device=device)
    counts = counts.scatter_add(1, flat_run, node_ok.reshape(batch, -1).long())
    per_utt = (sums / counts.clamp(min=1).to(nll.dtype)).sum(dim=1)
    return reduce_losses(per_utt, num_runs > 0, reduction)


def frame_labels_from_segments(
    segments: Sequence[Tuple[float, float, int]],
    num_frames: int,
    frame_shift_s: float,
    neutral_id: int = 0,
) -> Tensor:
    """Frame-level emotion labels from emotion intervals (``emo_segments``).

    Frame ``t`` gets the emotion of the segment ``[start, end)`` that contains
    its centre ``(t + 0.5) * frame_shift_s``; frames outside every segment are
    neutral. A segment shorter than a frame may therefore cover no frame;
    segments past the last frame are clipped.

    Args:
        segments: (start_s, end_s, emo_id) intervals in seconds, any order,
            0 <= start_s < end_s, not overlapping.
        num_frames: number of (encoder) frames T >= 0.
        frame_shift_s: frame shift in seconds (> 0), e.g. 0.04 after 4x
            subsampling of 10 ms features.
        neutral_id: label of frames outside every segment.

    Returns:
        (T,) int64 frame labels.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if not frame_shift_s > 0:
        raise ValueError(f"frame_shift_s must be > 0, got {frame_shift_s}")
    ordered = sorted((float(s), float(e), int(k)) for s, e, k in segments)
    for start, end, emo in ordered:
        if not 0.0 <= start < end:
            raise ValueError(f"emotion segment ({start}, {end}) must satisfy 0 <= start < end")
        if emo < 0:
            raise ValueError(f"emotion segment ({start}, {end}) has a negative emotion id {emo}")
    for (s0, e0, _), (s1, e1, _) in zip(ordered, ordered[1:]):
        if s1 < e0:
            raise ValueError(f"emotion segments ({s0}, {e0}) and ({s1}, {e1}) overlap")
    labels = torch.full((num_frames,), neutral_id, dtype=torch.long)
    centres = (torch.arange(num_frames, dtype=torch.float64) + 0.5) * frame_shift_s
    for start, end, emo in ordered:
        labels[(centres >= start) & (centres < end)] = emo
    return labels
