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

Back ends (``backend=``), chosen by :func:`resolve_backend`:

* ``"numba"``: parallel numba kernels on CPU tensors (:mod:`ent.losses.lattice_numba`).
* ``"cuda"``: the CUDA C++ kernels of ``ent/csrc``, built with
  ``torch.utils.cpp_extension`` on first use and cached
  (:func:`load_extension`, :func:`extension_build_dir`).
* ``"numba_cuda"``: numba CUDA kernels, for CUDA tensors where the C++
  extension cannot be built (and, under ``NUMBA_ENABLE_CUDASIM=1``, for CPU
  tensors in numba's CUDA simulator).
* ``"torch"``: the plain path (materialized lattice + the reference functions).
* ``"auto"``: ``numba`` on CPU; ``cuda``, else ``numba_cuda``, else ``torch``
  on GPU.

Half and bfloat16 inputs are computed in float32, like the reference.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Callable, NamedTuple, Optional, Tuple

import torch
from torch import Tensor
from torch.nn import functional as F

from ent.losses.lattice_max_pool import (
    RANKED_MODES,
    IntervalRuns,
    _check_lengths,
    _check_reduction,
    _first_extreme_node,
    _masked_mean,
    _reduce,
    _selection_mask,
    _valid_mask,
    check_topk,
    interval_runs,
    lattice_max_pool_loss,
    normalize_lattice_mode,
    ranked_node_counts,
    ranked_selection,
    supervised_lattice_loss,
)

LATTICE_BACKENDS: Tuple[str, ...] = ("auto", "torch", "numba", "cuda", "numba_cuda")
_log = logging.getLogger(__name__)

EXTENSION_NAME = "ent_lattice_pool"
CSRC_DIR = Path(__file__).resolve().parent.parent / "csrc"
_EXTENSION_SOURCES = ("lattice_pool.cpp", "lattice_pool.cu")


class BackendUnavailableError(RuntimeError):
    """A lattice back end that was asked for explicitly cannot run here."""


class JointInputs(NamedTuple):
    """The emotion joint network the kernels evaluate (one compute dtype, one device)."""

    enc: Tensor  #: (B, T, J) projected encoder outputs
    pred: Tensor  #: (B, U+1, J) projected predictor outputs
    weight: Tensor  #: (C, J) output layer weight
    bias: Tensor  #: (C,) output layer bias


class NodeRuns(NamedTuple):
    """Which nodes take part, and their class (node labelling of :mod:`ent.losses.lattice_numba`)."""

    frame_run: Tensor  #: (B, T) int64 run of each frame, -1: not taking part
    token_run: Tensor  #: (B, U+1) int64 run of each predictor position, -1: not taking part
    run_class: Tensor  #: (B, R) int64 class of each run


class _Kernels(NamedTuple):
    """The two kernels every fused back end provides (see :mod:`ent.losses.lattice_numba`).

    ``log_probs(joint, runs, neutral) -> (out_cls, out_neu or None)``, each
    (B, T, U+1); ``backward(joint, runs, run_weight (B, R)) -> gradients``
    for the four fields of :class:`JointInputs`.
    """

    log_probs: Callable[[JointInputs, NodeRuns, int], Tuple[Tensor, Optional[Tensor]]]
    backward: Callable[[JointInputs, NodeRuns, Tensor], Tuple[Tensor, Tensor, Tensor, Tensor]]


# --------------------------------------------------------------------------
# The C++/CUDA extension, built on first use
# --------------------------------------------------------------------------


def extension_build_dir() -> Path:
    """Where the CUDA extension is built and cached.

    ``$ENT_EXTENSIONS_DIR`` if set, else ``$XDG_CACHE_HOME/ent/extensions``
    (``~/.cache/ent/extensions``), in a folder named for the PyTorch and CUDA
    versions; the build is redone only when a source file changes.
    """
    root = os.environ.get("ENT_EXTENSIONS_DIR")
    if not root:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(cache) / "ent" / "extensions")
    return Path(root) / f"torch{torch.__version__}-cuda{torch.version.cuda}"


@lru_cache(maxsize=None)
def _extension() -> Tuple[Optional[ModuleType], str]:
    """Build (or load from the cache) the extension once: ``(module, "")`` or ``(None, reason)``."""
    if torch.version.cuda is None:
        return None, "this PyTorch was built without CUDA"
    missing = [name for name in _EXTENSION_SOURCES if not (CSRC_DIR / name).is_file()]
    if missing:
        return None, f"sources {missing} not found in {CSRC_DIR}"
    from torch.utils import cpp_extension

    if cpp_extension.CUDA_HOME is None:
        return None, "no CUDA toolkit (nvcc) found; set CUDA_HOME"
    if not (Path(cpp_extension.CUDA_HOME) / "include" / "cuda_runtime.h").is_file():
        home = cpp_extension.CUDA_HOME
        return None, f"CUDA_HOME={home} has no include/cuda_runtime.h; set CUDA_HOME to the toolkit"
    if not cpp_extension.is_ninja_available():
        return None, "ninja is not installed (pip install ninja)"
    build_dir = extension_build_dir()
    build_dir.mkdir(parents=True, exist_ok=True)
    _log.info(f"loading the CUDA lattice extension (built on first use, cached in {build_dir})")
    try:
        module = cpp_extension.load(
            name=EXTENSION_NAME,
            sources=[str(CSRC_DIR / name) for name in _EXTENSION_SOURCES],
            extra_cflags=["-O3"],
            extra_cuda_cflags=["-O3"],
            build_directory=str(build_dir),
            verbose=False,
        )
    except (RuntimeError, OSError, ImportError) as err:
        return None, f"building in {build_dir} failed: {_first_error_line(str(err)) or type(err).__name__}"
    return module, ""


def _first_error_line(log: str) -> str:
    """The first compiler line that says ``error`` in a build log (else its first line)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() and not line.startswith("Error building extension"):
            return line
    return lines[0] if lines else ""


def load_extension() -> ModuleType:
    """The compiled CUDA extension, built on first use (cached in :func:`extension_build_dir`).

    Raises:
        BackendUnavailableError: with a one-line reason when it cannot be built.
    """
    module, reason = _extension()
    if module is None:
        raise BackendUnavailableError(f"the CUDA lattice extension cannot be built: {reason}")
    return module


def _extension_kernels() -> _Kernels:
    module = load_extension()

    def log_probs(joint: JointInputs, runs: NodeRuns, neutral: int) -> Tuple[Tensor, Optional[Tensor]]:
        outs = module.log_probs(*joint, *runs, int(neutral))
        return outs[0], (outs[1] if len(outs) > 1 else None)

    def backward(joint: JointInputs, runs: NodeRuns, run_weight: Tensor) -> Tuple[Tensor, ...]:
        return tuple(module.backward(*joint, *runs, run_weight))

    return _Kernels(log_probs, backward)


# --------------------------------------------------------------------------
# Back-end selection
# --------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _numba_cuda_state() -> Tuple[bool, bool]:
    """(usable, simulated): whether numba CUDA can run, and whether it is the simulator."""
    try:
        from numba import config as numba_config
        from numba import cuda
    except ImportError:
        return False, False
    simulated = bool(numba_config.ENABLE_CUDASIM)
    return bool(simulated or cuda.is_available()), simulated


@lru_cache(maxsize=None)
def numba_available() -> bool:
    """Whether the numba package imports (every numba CPU kernel of ENT needs it; imported on first use)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    _log.warning(message)


def resolve_backend(backend: str, device: torch.device) -> str:
    """The back end that runs for tensors on ``device``.

    Args:
        backend: One of :data:`LATTICE_BACKENDS`.
        device: Device of the inputs.

    Returns:
        ``"torch"``, ``"numba"``, ``"cuda"`` or ``"numba_cuda"``.

    Raises:
        ValueError: unknown name, or a back end for the other kind of device.
        BackendUnavailableError: an explicitly chosen back end cannot run here.
    """
    if backend not in LATTICE_BACKENDS:
        raise ValueError(f"unknown lattice backend {backend!r}; valid: {list(LATTICE_BACKENDS)}")
    on_gpu = device.type == "cuda"
    if backend == "auto":
        if not on_gpu:
            return "numba" if numba_available() else "torch"
        if _extension()[0] is not None:
            return "cuda"
        fallback = "numba_cuda" if _numba_cuda_state()[0] else "torch"
        _warn_once(
            f"ent: the CUDA lattice extension cannot be built ({_extension()[1]}); "
            f"using the {fallback} lattice backend"
        )
        return fallback
    if backend == "torch":
        return backend
    if backend == "numba":
        if on_gpu:
            raise ValueError("lattice backend 'numba' runs on CPU tensors; use 'cuda' or 'numba_cuda' on GPU")
        if not numba_available():
            raise BackendUnavailableError("lattice backend 'numba' needs the numba package")
        return backend
    # "cuda" or "numba_cuda"; numba's CUDA simulator runs on CPU tensors.
    usable, simulated = _numba_cuda_state()
    if not on_gpu and not (backend == "numba_cuda" and simulated):
        raise ValueError(f"lattice backend {backend!r} runs on CUDA tensors, got {device.type} tensors")
    if backend == "cuda":
        load_extension()
    elif not usable:
        raise BackendUnavailableError("lattice backend 'numba_cuda' needs numba with a usable CUDA GPU")
    return backend


def _kernels(backend: str) -> _Kernels:
    if backend == "cuda":
        return _extension_kernels()
    from ent.losses import lattice_numba

    if backend == "numba":
        return _Kernels(lattice_numba.log_probs_cpu, lattice_numba.backward_cpu)
    return _Kernels(lattice_numba.log_probs_numba_cuda, lattice_numba.backward_numba_cuda)


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
    enc_lens, label_lens = _check_lengths(enc_proj.new_empty(()).expand(shape), enc_lens, label_lens)
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
        kernels: _Kernels,
    ) -> Tensor:
        max_t, max_u1 = enc.size(1), pred.size(1)
        frame_run, token_run, _ = _pool_runs(enc_lens, label_lens, keep, mode, None, max_t, max_u1)
        joint = JointInputs(enc, pred, weight, bias)
        target_lp, neutral_lp = kernels.log_probs(
            joint, NodeRuns(frame_run, token_run, target[:, None].contiguous()), neutral_id
        )
        valid = _valid_mask(enc_lens, label_lens, max_t, max_u1)
        # Ignored utterances were not computed: let them select node (0, 0), weighted 0 later.
        valid[~keep] = False
        valid[~keep, 0, 0] = True
        best = _first_extreme_node(target_lp, valid, largest=True)
        least_neutral = _first_extreme_node(neutral_lp, valid, largest=False)
        per_utt = -_masked_mean(target_lp, _selection_mask(best, valid, mode)) - _masked_mean(
            neutral_lp, _selection_mask(least_neutral, valid, mode)
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
    (:func:`ent.losses.lattice_numba.node_weight_backward_cpu`).
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
        from ent.losses import lattice_numba

        max_t, max_u1 = enc.size(1), pred.size(1)
        frame_run, token_run, _ = _pool_runs(enc_lens, label_lens, keep, mode, None, max_t, max_u1)
        emotional = keep & (target != neutral_id)
        cls = torch.where(emotional, target, torch.full_like(target, neutral_id))
        joint = JointInputs(enc, pred, weight, bias)
        score, _ = lattice_numba.log_probs_cpu(joint, NodeRuns(frame_run, token_run, cls[:, None].contiguous()), -1)
        valid = _valid_mask(enc_lens, label_lens, max_t, max_u1)
        # Ignored utterances were not computed: let them select node (0, 0), weighted 0 later.
        valid[~keep] = False
        valid[~keep, 0, 0] = True
        selected = ranked_selection(score, valid, emotional, ranked_node_counts(valid, mode, topk))
        per_utt = -_masked_mean(score, selected)
        per_utt = torch.where(keep, per_utt, torch.zeros_like(per_utt))
        ctx.save_for_backward(enc, pred, weight, bias, cls, keep, selected)
        return per_utt

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        from ent.losses import lattice_numba

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
        backend: One of :data:`LATTICE_BACKENDS` (see :func:`resolve_backend`).
        topk: Share of the nodes pooled by mode "topk", in (0, 1].

    Returns:
        Scalar loss, or (B,) for ``reduction="none"``; float32 for half or
        bfloat16 inputs, the inputs' dtype otherwise.
    """
    mode = normalize_lattice_mode(mode)
    _check_reduction(reduction)
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
            *joint, enc_lens, label_lens, target, keep, mode, neutral_id, _kernels(chosen)
        )
    return _reduce(per_utt, keep, reduction)


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
        kernels: _Kernels,
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
        backend: One of :data:`LATTICE_BACKENDS`.

    Returns:
        Scalar loss, or (B,) for ``reduction="none"``.
    """
    _check_reduction(reduction)
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
        *joint, runs.frame_run, runs.token_run, runs.run_label, _run_node_counts(runs), _kernels(chosen)
    )
    return _reduce(per_utt, runs.num_runs > 0, reduction)
