"""The inputs and the interface of the fused emotion-lattice kernels.

Shared by the numba kernels (:mod:`ent.kernels.lattice_numba`), the CUDA
extension (:mod:`ent.kernels.extension`) and the losses that call them
(:mod:`ent.losses.fused_lattice`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Tuple

from torch import Tensor


class JointInputs(NamedTuple):
    """The emotion joint network the kernels evaluate (one compute dtype, one device)."""

    enc: Tensor  #: (B, T, J) projected encoder outputs
    pred: Tensor  #: (B, U+1, J) projected predictor outputs
    weight: Tensor  #: (C, J) output layer weight
    bias: Tensor  #: (C,) output layer bias


class NodeRuns(NamedTuple):
    """Which nodes take part, and their class (node labelling of :mod:`ent.kernels.lattice_numba`)."""

    frame_run: Tensor  #: (B, T) int64 run of each frame, -1: not taking part
    token_run: Tensor  #: (B, U+1) int64 run of each predictor position, -1: not taking part
    run_class: Tensor  #: (B, R) int64 class of each run


class LatticeKernels(NamedTuple):
    """The two kernels every fused back end provides (see :mod:`ent.kernels.lattice_numba`).

    ``log_probs(joint, runs, neutral) -> (out_cls, out_neu or None)``, each
    (B, T, U+1); ``backward(joint, runs, run_weight (B, R)) -> gradients``
    for the four fields of :class:`JointInputs`.
    """

    log_probs: Callable[[JointInputs, NodeRuns, int], Tuple[Tensor, Optional[Tensor]]]
    backward: Callable[[JointInputs, NodeRuns, Tensor], Tuple[Tensor, Tensor, Tensor, Tensor]]
