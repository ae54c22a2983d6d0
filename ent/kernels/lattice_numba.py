r"""Numba kernels of the fused emotion lattice: CPU (parallel) and numba CUDA.

The kernels evaluate the emotion joint network ``lin_out(tanh(enc + pred))``
node by node and never hold the lattice in memory. They serve
:mod:`ent.losses.fused_lattice`, which owns validation, selection and
autograd; the formulas are those of :mod:`ent.losses.lattice_max_pool`.
The CPU kernels of a whole joint lattice's outputs and their backward
(:func:`joint_forward_cpu`, :func:`joint_backward_cpu`) serve
:mod:`ent.kernels.fused_joint` and share the node evaluation and backward of the
lattice kernels; they stay in this file because numba's on-disk cache only
notices a change of the file a cached kernel is defined in.

Node labelling (shared with the CUDA C++ kernels of ``ent/csrc``)
----------------------------------------------------------------
``frame_run`` (B, T) and ``token_run`` (B, U+1) hold int64 run indices, ``-1``
for frames / predictor positions that do not take part. Node ``(t, u)`` of
utterance ``b`` takes part when both are ``>= 0``; it then belongs to run
``k = max(frame_run[b, t], token_run[b, u])`` (the interval rule of the
supervised loss), whose class is ``run_class[b, k]`` and whose loss weight is
``run_weight[b, k]``. Lattice max pooling uses a single run (``k = 0``,
``run_class[b, 0]`` = the utterance's emotion).

* ``log_probs``: ``out_cls[b, t, u] = log p(run_class[b, k])`` and, when
  ``neutral >= 0``, ``out_neu[b, t, u] = log p(neutral)``; 0 for nodes that
  do not take part.
* ``backward``: the gradients of ``sum_nodes -run_weight[b, k] * log p(run_class[b, k])``
  with respect to ``enc`` (B, T, J), ``pred`` (B, U+1, J), ``weight`` (C, J)
  and ``bias`` (C,).

CPU tanh
--------
The CPU kernels do not call ``libm``'s ``tanh`` (a scalar call that stops
LLVM from vectorizing the loop over the joint dimension, the inner loop of the
whole computation). They evaluate ``tanh`` with plain arithmetic that
vectorizes: ``|x|`` is clamped where ``tanh`` rounds to 1, divided by 4, a
truncated Lambert continued fraction ``tanh y = y / (1 + y^2 / (3 + y^2 / (5 + ...)))``
gives ``tanh(y) = n / d``, and two doublings
``(n, d) <- (2 n d, n^2 + d^2)`` (``tanh 2y = 2 tanh y / (1 + tanh^2 y)``, a
map whose relative condition number is at most 1) return to ``x`` with a single
division. Measured against 40-digit ``mpmath``: at most 3 ulp (float64, 11
levels) and 3 ulp (float32, 4 levels) over the whole real line.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from typing import Any, Callable, List, Optional, Tuple

import numba
import numpy as np
import torch
from numba import cuda, njit, prange, types
from numba.extending import overload
from torch import Tensor

from ent.kernels.lattice_types import JointInputs, NodeRuns

#: LLVM fast-math flags of the CPU kernels: reassociation (vectorized sums),
#: contraction (FMA), reciprocal division and signed zeros. NaN and infinity
#: semantics are kept, so a NaN input still reaches the NaN check of the loss.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

#: Most emotion classes the numba CUDA kernels accept (per-thread logits array).
MAX_CLASSES_CUDA = 64

_TANH_DOUBLINGS = 2


def lambert_tanh_coefficients(levels: int) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Coefficients of the ``levels``-level convergent of Lambert's continued fraction.

    ``tanh y ~= y * P(y^2) / Q(y^2)`` with ``Q(0) = 1``, from the convergent of
    ``1 + s / (3 + s / (5 + ... + s / (2 levels - 1)))`` with ``s = y^2``.

    Args:
        levels: Number of partial denominators 1, 3, 5, ... (>= 1).

    Returns:
        ``(P, Q)`` coefficient tuples, lowest degree first.
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    # Convergents A_n / B_n of b_0 + s/(b_1 + s/(b_2 + ...)), polynomials in s.
    a_prev: List[Fraction] = [Fraction(1)]
    a_cur: List[Fraction] = [Fraction(1)]
    b_prev: List[Fraction] = [Fraction(0)]
    b_cur: List[Fraction] = [Fraction(1)]

    def step(cur: List[Fraction], prev: List[Fraction], b_n: int) -> List[Fraction]:
        size = max(len(cur), len(prev) + 1)
        out = [Fraction(0)] * size
        for i, c in enumerate(cur):
            out[i] += b_n * c
        for i, c in enumerate(prev):
            out[i + 1] += c
        return out

    for n in range(1, levels):
        a_prev, a_cur = a_cur, step(a_cur, a_prev, 2 * n + 1)
        b_prev, b_cur = b_cur, step(b_cur, b_prev, 2 * n + 1)
    scale = a_cur[0]
    while len(b_cur) > 1 and b_cur[-1] == 0:
        b_cur.pop()
    return tuple(float(c / scale) for c in b_cur), tuple(float(c / scale) for c in a_cur)


def _tanh_constants(dtype: Any, levels: int, clamp: float) -> Tuple[Any, ...]:
    num, den = lambert_tanh_coefficients(levels)
    return (
        tuple(dtype(c) for c in num),
        tuple(dtype(c) for c in den),
        dtype(clamp),
        dtype(2.0**-_TANH_DOUBLINGS),
        dtype(2.0),
    )


# tanh(x) rounds to 1 above 19.1 (float64) and 9.01 (float32).
_TANH64 = _tanh_constants(np.float64, 11, 19.5)
_TANH32 = _tanh_constants(np.float32, 4, 9.5)


def fast_tanh(x: float) -> float:
    """Vectorizable tanh for numba kernels (module docstring); stub for numba's overload."""
    return float(np.tanh(x))


@overload(fast_tanh, inline="always")
def _fast_tanh_impl(x: Any) -> Any:
    if not isinstance(x, types.Float):
        return None
    num, den, clamp, scale, two = _TANH32 if x.bitwidth == 32 else _TANH64
    n_num = len(num)
    n_den = len(den)

    def impl(x: Any) -> Any:  # pragma: no cover - compiled by numba
        a = abs(x)
        a = clamp if a > clamp else a  # NaN stays NaN
        y = a * scale
        s = y * y
        n = num[n_num - 1]
        for i in range(n_num - 2, -1, -1):
            n = n * s + num[i]
        d = den[n_den - 1]
        for i in range(n_den - 2, -1, -1):
            d = d * s + den[i]
        n = n * y
        for _ in range(_TANH_DOUBLINGS):
            n, d = two * n * d, n * n + d * d
        r = n / d
        return -r if x < 0 else r

    return impl


def typed(like: float, value: float) -> float:
    """``value`` in the float type of ``like`` (keeps float32 kernels in float32); numba stub."""
    return type(like)(value)


@overload(typed, inline="always")
def _typed_impl(like: Any, value: Any) -> Any:
    if not isinstance(like, types.Float):
        return None
    cast = np.float32 if like.bitwidth == 32 else np.float64

    def impl(like: Any, value: Any) -> Any:  # pragma: no cover - compiled by numba
        return cast(value)

    return impl


# ---------------------------------------------------------------------------
# CPU kernels
# ---------------------------------------------------------------------------


@njit(inline="always", fastmath=FASTMATH)
def _node_logits(enc_row, pred_row, weight, bias, h, z):  # pragma: no cover - numba
    """h[j] = tanh(enc_row[j] + pred_row[j]); z = weight @ h + bias; returns logsumexp(z)."""
    num_j = h.shape[0]
    for j in range(num_j):
        h[j] = fast_tanh(enc_row[j] + pred_row[j])
    for c in range(z.shape[0]):
        acc = weight[c, 0] * h[0]
        for j in range(1, num_j):
            acc += weight[c, j] * h[j]
        z[c] = acc + bias[c]
    top = z[0]
    for c in range(1, z.shape[0]):
        top = z[c] if z[c] > top else top
    total = np.exp(z[0] - top)
    for c in range(1, z.shape[0]):
        total += np.exp(z[c] - top)
    return top + np.log(total)


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _log_probs_cpu(
    enc, pred, weight, bias, frame_run, token_run, run_class, neutral, out_cls, out_neu
):  # pragma: no cover - numba
    """One parallel iteration per lattice row (b, t); see :func:`log_probs_cpu`."""
    batch, max_t, num_j = enc.shape
    max_u1 = pred.shape[1]
    num_c = weight.shape[0]
    for row in prange(batch * max_t):
        b = row // max_t
        t = row % max_t
        kf = frame_run[b, t]
        h = np.empty(num_j, dtype=enc.dtype)
        z = np.empty(num_c, dtype=enc.dtype)
        for u in range(max_u1):
            ku = token_run[b, u]
            if kf < 0 or ku < 0:
                out_cls[b, t, u] = 0.0
                if neutral >= 0:
                    out_neu[b, t, u] = 0.0
                continue
            lse = _node_logits(enc[b, t], pred[b, u], weight, bias, h, z)
            out_cls[b, t, u] = z[run_class[b, max(kf, ku)]] - lse
            if neutral >= 0:
                out_neu[b, t, u] = z[neutral] - lse


@njit(inline="always", fastmath=FASTMATH)
def node_backward(dz, h, g, weight, grad_enc_row, pred_part_row, weight_part, bias_part):  # pragma: no cover - numba
    """Backpropagate ``dz = dL/dz`` (C,) of one node with activations ``h`` (J,).

    Adds the node's share to ``grad_enc_row`` (J,) and ``pred_part_row`` (J,)
    (its encoder frame and predictor position) and to ``weight_part`` (C, J)
    and ``bias_part`` (C,); ``g`` (J,) is scratch.
    """
    num_j = h.shape[0]
    one = typed(h[0], 1.0)
    for j in range(num_j):
        g[j] = dz[0] * weight[0, j]
        weight_part[0, j] += dz[0] * h[j]
    bias_part[0] += dz[0]
    for c in range(1, dz.shape[0]):
        d = dz[c]
        bias_part[c] += d
        for j in range(num_j):
            g[j] += d * weight[c, j]
            weight_part[c, j] += d * h[j]
    for j in range(num_j):
        d = g[j] * (one - h[j] * h[j])
        grad_enc_row[j] += d
        pred_part_row[j] += d


@njit(inline="always", fastmath=FASTMATH)
def weighted_node_backward(
    enc_row, pred_row, weight, bias, cls, w, h, g, z, grad_enc_row, pred_part_row, weight_part, bias_part
):  # pragma: no cover - numba
    """Backpropagate ``-w * log p(cls)`` of one node (encoder row, predictor row).

    Its logits go into ``z`` (C,), which becomes ``dL/dz``; then
    :func:`node_backward` with the same outputs; ``h`` (J,) and ``g`` (J,)
    are scratch.
    """
    lse = _node_logits(enc_row, pred_row, weight, bias, h, z)
    one = typed(w, 1.0)
    for c in range(z.shape[0]):
        z[c] = w * (np.exp(z[c] - lse) - (one if c == cls else one - one))
    node_backward(z, h, g, weight, grad_enc_row, pred_part_row, weight_part, bias_part)


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _backward_cpu(
    enc, pred, weight, bias, frame_run, token_run, run_class, run_weight, tiles_per_utt,
    grad_enc, pred_part, weight_part, bias_part,
):  # pragma: no cover - numba
    """Tile ``i`` covers frames [s T / S, (s+1) T / S) of utterance ``i // S`` (s = i % S).

    ``grad_enc`` (B, T, J) is written directly (each row belongs to one tile);
    ``pred_part`` (B*S, U+1, J), ``weight_part`` (B*S, C, J) and
    ``bias_part`` (B*S, C) are per-tile partial sums (zero-initialized).
    """
    batch, max_t, num_j = enc.shape
    max_u1 = pred.shape[1]
    num_c = weight.shape[0]
    for tile in prange(batch * tiles_per_utt):
        b = tile // tiles_per_utt
        s = tile % tiles_per_utt
        h = np.empty(num_j, dtype=enc.dtype)
        g = np.empty(num_j, dtype=enc.dtype)
        z = np.empty(num_c, dtype=enc.dtype)
        for t in range(s * max_t // tiles_per_utt, (s + 1) * max_t // tiles_per_utt):
            kf = frame_run[b, t]
            if kf < 0:
                continue
            for u in range(max_u1):
                ku = token_run[b, u]
                if ku < 0:
                    continue
                k = max(kf, ku)
                w = run_weight[b, k]
                if w == 0:
                    continue
                weighted_node_backward(
                    enc[b, t], pred[b, u], weight, bias, run_class[b, k], w, h, g, z,
                    grad_enc[b, t], pred_part[tile, u], weight_part[tile], bias_part[tile],
                )


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def _node_weight_backward_cpu(
    enc, pred, weight, bias, node_class, node_weight, tiles_per_utt,
    grad_enc, pred_part, weight_part, bias_part,
):  # pragma: no cover - numba
    """Backward of ``sum_nodes -node_weight[b, t, u] * log p(node_class[b])``; tiles as
    :func:`_backward_cpu`. Nodes of weight 0 are skipped."""
    batch, max_t, num_j = enc.shape
    max_u1 = pred.shape[1]
    num_c = weight.shape[0]
    for tile in prange(batch * tiles_per_utt):
        b = tile // tiles_per_utt
        s = tile % tiles_per_utt
        h = np.empty(num_j, dtype=enc.dtype)
        g = np.empty(num_j, dtype=enc.dtype)
        z = np.empty(num_c, dtype=enc.dtype)
        cls = node_class[b]
        for t in range(s * max_t // tiles_per_utt, (s + 1) * max_t // tiles_per_utt):
            for u in range(max_u1):
                w = node_weight[b, t, u]
                if w == 0:
                    continue
                weighted_node_backward(
                    enc[b, t], pred[b, u], weight, bias, cls, w, h, g, z,
                    grad_enc[b, t], pred_part[tile, u], weight_part[tile], bias_part[tile],
                )


@njit(parallel=True, fastmath=FASTMATH, cache=True)
def joint_forward_cpu(enc, pred, weight, bias, out):  # pragma: no cover - numba
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
def joint_backward_cpu(
    enc, pred, weight, grad_out, tiles_per_utt, grad_enc, pred_part, weight_part, bias_part
):  # pragma: no cover - numba
    """Backward of :func:`joint_forward_cpu` given ``grad_out`` (B, T, U+1, C); the tiles
    and partial sums of :func:`tiled_backward`.

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


def log_probs_cpu(joint: JointInputs, runs: NodeRuns, neutral: int) -> Tuple[Tensor, Optional[Tensor]]:
    """Per-node log-probabilities of the run class (and of ``neutral``), numba CPU.

    Args:
        joint: float32 or float64 CPU tensors ``enc`` (B, T, J), ``pred``
            (B, U+1, J), ``weight`` (C, J), ``bias`` (C,).
        runs: int64 ``frame_run`` (B, T), ``token_run`` (B, U+1), ``run_class`` (B, R).
        neutral: Class of the second output, or -1 for none.

    Returns:
        ``out_cls`` (B, T, U+1) and ``out_neu`` (B, T, U+1) or None.
    """
    batch, max_t, _ = joint.enc.shape
    out_cls = torch.empty(batch, max_t, joint.pred.size(1), dtype=joint.enc.dtype)
    out_neu = torch.empty_like(out_cls) if neutral >= 0 else out_cls.new_empty(1, 1, 1)
    _log_probs_cpu(*map(_np, joint), *map(_np, runs), int(neutral), out_cls.numpy(), out_neu.numpy())
    return out_cls, (out_neu if neutral >= 0 else None)


def backward_cpu(
    joint: JointInputs, runs: NodeRuns, run_weight: Tensor
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of ``sum_nodes -run_weight * log p(run_class)``, numba CPU.

    Args:
        joint, runs: as :func:`log_probs_cpu`.
        run_weight: (B, R) loss weight of each run.

    Returns:
        Gradients for ``enc`` (B, T, J), ``pred`` (B, U+1, J), ``weight``
        (C, J) and ``bias`` (C,).
    """
    return tiled_backward(
        lambda tiles, *buffers: _backward_cpu(
            *map(_np, joint), *map(_np, runs), _np(run_weight.to(joint.enc.dtype)), tiles, *buffers
        ),
        joint.enc, joint.pred.size(1), joint.weight.size(0),
    )


def node_weight_backward_cpu(
    joint: JointInputs, node_class: Tensor, node_weight: Tensor
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of ``sum_nodes -node_weight[b, t, u] * log p(node_class[b])``, numba CPU.

    The backward of the ranked pooling modes, whose selected nodes form no
    rectangle of runs.

    Args:
        joint: as :func:`log_probs_cpu`.
        node_class: (B,) int64 class of each utterance's nodes.
        node_weight: (B, T, U+1) loss weight of every node (0: not taking part).

    Returns:
        Gradients for ``enc`` (B, T, J), ``pred`` (B, U+1, J), ``weight``
        (C, J) and ``bias`` (C,).
    """
    return tiled_backward(
        lambda tiles, *buffers: _node_weight_backward_cpu(
            *map(_np, joint), _np(node_class), _np(node_weight.to(joint.enc.dtype)), tiles, *buffers
        ),
        joint.enc, joint.pred.size(1), joint.weight.size(0),
    )


def tiled_backward(
    launch: Callable[..., None], enc: Tensor, max_u1: int, num_c: int
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run a tiled CPU backward kernel and sum its per-tile partial gradients.

    Each utterance's frames are split into S tiles, enough to keep every
    thread busy (the partial sums cost S * B (U+1) J); tile ``i`` covers
    frames [s T / S, (s+1) T / S) of utterance ``i // S`` (s = i % S).

    Args:
        launch: Called as ``launch(S, grad_enc, pred_part, weight_part,
            bias_part)`` with zeroed numpy arrays (B, T, J), (B*S, U+1, J),
            (B*S, C, J) and (B*S, C) to accumulate into.
        enc: (B, T, J) encoder input (shape and dtype).
        max_u1: U+1; num_c: C.

    Returns:
        Gradients for ``enc`` (B, T, J), ``pred`` (B, U+1, J), ``weight``
        (C, J) and ``bias`` (C,).
    """
    batch, max_t, num_j = enc.shape
    tiles = max(1, min(max_t, -(-2 * numba.get_num_threads() // batch)))
    grad_enc = enc.new_zeros(batch, max_t, num_j)
    pred_part = enc.new_zeros(batch * tiles, max_u1, num_j)
    weight_part = enc.new_zeros(batch * tiles, num_c, num_j)
    bias_part = enc.new_zeros(batch * tiles, num_c)
    launch(tiles, grad_enc.numpy(), pred_part.numpy(), weight_part.numpy(), bias_part.numpy())
    grad_pred = pred_part.view(batch, tiles, max_u1, num_j).sum(dim=1)
    return grad_enc, grad_pred, weight_part.sum(dim=0), bias_part.sum(dim=0)


# ---------------------------------------------------------------------------
# numba CUDA kernels (fallback where the C++ extension is unavailable; also run
# under NUMBA_ENABLE_CUDASIM=1 for testing without a GPU)
# ---------------------------------------------------------------------------

_CUDA_BLOCK = 128


@lru_cache(maxsize=None)
def _cuda_kernels(dtype_name: str, max_classes: int) -> Tuple[Any, Any, Any, Any]:
    """Compile-on-demand numba CUDA kernels for one dtype and class bound.

    ``cuda`` and ``math`` are module globals on purpose: numba's CUDA simulator
    substitutes the kernels' global ``cuda`` while it runs them.
    """
    np_type = np.dtype(dtype_name).type
    local_type = numba.from_dtype(np.dtype(dtype_name))
    zero = np_type(0)
    one = np_type(1)

    @cuda.jit(device=True)
    def node_logits(enc, pred_t, weight, bias, b, t, u, z):  # pragma: no cover - numba
        """Logits of node (b, t, u) into z[:C]; returns their logsumexp. pred_t: (B, J, U+1)."""
        num_c = weight.shape[0]
        for c in range(num_c):
            z[c] = bias[c]
        for j in range(enc.shape[2]):
            h = math.tanh(enc[b, t, j] + pred_t[b, j, u])
            for c in range(num_c):
                z[c] += weight[c, j] * h
        top = z[0]
        for c in range(1, num_c):
            top = max(top, z[c])
        total = zero
        for c in range(num_c):
            total += math.exp(z[c] - top)
        return top + math.log(total)

    @cuda.jit(device=True)
    def unit_grad(dz, b, t, u, weight, j, h):  # pragma: no cover - numba
        """dL/d(pre-activation) of joint unit j at node (b, t, u): (sum_c dz_c weight[c, j]) (1 - h^2)."""
        g = zero
        for c in range(weight.shape[0]):
            g += dz[b, t, u, c] * weight[c, j]
        return g * (one - h * h)

    @cuda.jit
    def log_probs(
        enc, pred_t, weight, bias, frame_run, token_run, run_class, neutral, out_cls, out_neu
    ):  # pragma: no cover - numba
        u = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        t = cuda.blockIdx.y
        b = cuda.blockIdx.z
        if u >= pred_t.shape[2]:
            return
        kf = frame_run[b, t]
        ku = token_run[b, u]
        if kf < 0 or ku < 0:
            out_cls[b, t, u] = 0
            if neutral >= 0:
                out_neu[b, t, u] = 0
            return
        z = cuda.local.array(max_classes, local_type)
        lse = node_logits(enc, pred_t, weight, bias, b, t, u, z)
        out_cls[b, t, u] = z[run_class[b, max(kf, ku)]] - lse
        if neutral >= 0:
            out_neu[b, t, u] = z[neutral] - lse

    @cuda.jit
    def grad_logits(
        enc, pred_t, weight, bias, frame_run, token_run, run_class, run_weight, dz
    ):  # pragma: no cover - numba
        """dz[b, t, u, c] = dL/dz_c of every node (0 where the node does not take part)."""
        u = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        t = cuda.blockIdx.y
        b = cuda.blockIdx.z
        if u >= pred_t.shape[2]:
            return
        num_c = weight.shape[0]
        kf = frame_run[b, t]
        ku = token_run[b, u]
        k = max(kf, ku)
        if kf < 0 or ku < 0 or run_weight[b, k] == 0:
            for c in range(num_c):
                dz[b, t, u, c] = zero
            return
        z = cuda.local.array(max_classes, local_type)
        lse = node_logits(enc, pred_t, weight, bias, b, t, u, z)
        w = run_weight[b, k]
        cls = run_class[b, k]
        for c in range(num_c):
            dz[b, t, u, c] = w * (math.exp(z[c] - lse) - (one if c == cls else zero))

    @cuda.jit
    def grad_enc_weight(
        enc, pred, weight, frame_run, token_run, dz, grad_enc, grad_weight
    ):  # pragma: no cover - numba
        """One thread per (b, t, j): sum over u; atomically adds its share of grad_weight."""
        j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        t = cuda.blockIdx.y
        b = cuda.blockIdx.z
        if j >= enc.shape[2]:
            return
        num_c = weight.shape[0]
        acc = zero
        wacc = cuda.local.array(max_classes, local_type)
        for c in range(num_c):
            wacc[c] = zero
        if frame_run[b, t] >= 0:
            for u in range(pred.shape[1]):
                if token_run[b, u] < 0:
                    continue
                h = math.tanh(enc[b, t, j] + pred[b, u, j])
                acc += unit_grad(dz, b, t, u, weight, j, h)
                for c in range(num_c):
                    wacc[c] += dz[b, t, u, c] * h
        grad_enc[b, t, j] = acc
        for c in range(num_c):
            cuda.atomic.add(grad_weight, (c, j), wacc[c])

    @cuda.jit
    def grad_pred(enc, pred, weight, frame_run, token_run, dz, grad_pred_out):  # pragma: no cover
        """One thread per (b, u, j): sum over t."""
        j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        u = cuda.blockIdx.y
        b = cuda.blockIdx.z
        if j >= enc.shape[2]:
            return
        acc = zero
        if token_run[b, u] >= 0:
            for t in range(enc.shape[1]):
                if frame_run[b, t] < 0:
                    continue
                acc += unit_grad(dz, b, t, u, weight, j, math.tanh(enc[b, t, j] + pred[b, u, j]))
        grad_pred_out[b, u, j] = acc

    return log_probs, grad_logits, grad_enc_weight, grad_pred


def _cuda_view(x: Tensor) -> Any:
    """A numba CUDA view of a CUDA tensor, or a numpy array (numba's CUDA simulator)."""
    x = x.detach().contiguous()
    return cuda.as_cuda_array(x) if x.is_cuda else x.numpy()


def _cuda_stream(x: Tensor) -> Any:
    """Launch on PyTorch's current stream of ``x``'s device (0 under the simulator)."""
    if not x.is_cuda:
        return 0
    return cuda.external_stream(torch.cuda.current_stream(x.device).cuda_stream)


def _cuda_grid(inner: int, *outer: int) -> Tuple[Tuple[int, ...], int]:
    block = min(_CUDA_BLOCK, 32 * -(-inner // 32))
    return (-(-inner // block),) + tuple(outer), block


def _max_classes(num_c: int) -> int:
    if num_c > MAX_CLASSES_CUDA:
        raise ValueError(f"the numba CUDA kernels handle at most {MAX_CLASSES_CUDA} classes, got {num_c}")
    bound = 4
    while bound < num_c:
        bound *= 2
    return bound


def log_probs_numba_cuda(joint: JointInputs, runs: NodeRuns, neutral: int) -> Tuple[Tensor, Optional[Tensor]]:
    """numba CUDA twin of :func:`log_probs_cpu` (same arguments and results, CUDA tensors)."""
    batch, max_t, _ = joint.enc.shape
    max_u1 = joint.pred.size(1)
    kernels = _cuda_kernels(str(joint.enc.dtype).replace("torch.", ""), _max_classes(joint.weight.size(0)))
    out_cls = torch.empty(batch, max_t, max_u1, dtype=joint.enc.dtype, device=joint.enc.device)
    out_neu = torch.empty_like(out_cls) if neutral >= 0 else out_cls.new_empty(1, 1, 1)
    grid, block = _cuda_grid(max_u1, max_t, batch)
    kernels[0][grid, block, _cuda_stream(joint.enc)](
        _cuda_view(joint.enc), _cuda_view(joint.pred.transpose(1, 2)), _cuda_view(joint.weight),
        _cuda_view(joint.bias), *map(_cuda_view, runs), int(neutral),
        _cuda_view(out_cls), _cuda_view(out_neu),
    )
    return out_cls, (out_neu if neutral >= 0 else None)


def backward_numba_cuda(
    joint: JointInputs, runs: NodeRuns, run_weight: Tensor
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """numba CUDA twin of :func:`backward_cpu` (same arguments and results, CUDA tensors)."""
    enc, pred, weight, bias = joint
    batch, max_t, num_j = enc.shape
    max_u1 = pred.size(1)
    num_c = weight.size(0)
    _, grad_logits, grad_enc_weight, grad_pred = _cuda_kernels(
        str(enc.dtype).replace("torch.", ""), _max_classes(num_c)
    )
    stream = _cuda_stream(enc)
    dz = torch.empty(batch, max_t, max_u1, num_c, dtype=enc.dtype, device=enc.device)
    grad_enc = torch.empty_like(enc)
    grad_pred_out = torch.empty_like(pred)
    grad_weight = torch.zeros_like(weight)
    frame_run, token_run = _cuda_view(runs.frame_run), _cuda_view(runs.token_run)
    views = (_cuda_view(enc), _cuda_view(pred), _cuda_view(weight))
    grid, block = _cuda_grid(max_u1, max_t, batch)
    grad_logits[grid, block, stream](
        views[0], _cuda_view(pred.transpose(1, 2)), views[2], _cuda_view(bias), frame_run, token_run,
        _cuda_view(runs.run_class), _cuda_view(run_weight.to(enc.dtype)), _cuda_view(dz),
    )
    dz_view = _cuda_view(dz)
    grid, block = _cuda_grid(num_j, max_t, batch)
    grad_enc_weight[grid, block, stream](
        *views, frame_run, token_run, dz_view, _cuda_view(grad_enc), _cuda_view(grad_weight)
    )
    grid, block = _cuda_grid(num_j, max_u1, batch)
    grad_pred[grid, block, stream](*views, frame_run, token_run, dz_view, _cuda_view(grad_pred_out))
    return grad_enc, grad_pred_out, grad_weight, dz.sum(dim=(0, 1, 2))
