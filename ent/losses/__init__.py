"""Training losses of the Emotion Neural Transducer.

* :mod:`ent.losses.lattice_max_pool`: lattice max pooling over the emotion
  lattice (weakly supervised, utterance-level labels) and its supervised
  variant for utterances with emotion intervals.
* :mod:`ent.losses.fused_lattice`: the same lattice losses computed from the
  projected encoder/predictor outputs without materializing the emotion
  lattice (numba on CPU, a CUDA extension or numba CUDA on GPU; the kernels
  and the choice among them live in :mod:`ent.kernels`); equal to the
  plain-PyTorch references of :mod:`ent.losses.lattice_max_pool`.
* :mod:`ent.losses.rnnt`: the transducer (RNN-T) loss of the ASR branch.
"""

from ent.kernels.backends import LATTICE_BACKENDS
from ent.losses.fused_lattice import fused_lattice_max_pool_loss, fused_supervised_lattice_loss
from ent.losses.lattice_max_pool import (
    LATTICE_MODES,
    LatticeMaxPoolLoss,
    frame_labels_from_segments,
    lattice_max_pool_loss,
    supervised_lattice_loss,
)
from ent.losses.rnnt import rnnt_loss, rnnt_loss_reference

__all__ = [
    "LATTICE_BACKENDS",
    "LATTICE_MODES",
    "fused_lattice_max_pool_loss",
    "fused_supervised_lattice_loss",
    "LatticeMaxPoolLoss",
    "frame_labels_from_segments",
    "lattice_max_pool_loss",
    "rnnt_loss",
    "rnnt_loss_reference",
    "supervised_lattice_loss",
]
