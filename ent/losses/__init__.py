"""Training losses of the Emotion Neural Transducer.

* :mod:`ent.losses.lattice_max_pool`: lattice max pooling over the emotion
  lattice (weakly supervised, utterance-level labels) and its supervised
  variant for utterances with emotion intervals.
* :mod:`ent.losses.rnnt`: the transducer (RNN-T) loss of the ASR branch.

These are plain-PyTorch reference implementations; faster fused kernels must
reproduce them exactly (same selections, same reductions).
"""

from ent.losses.lattice_max_pool import (
    LATTICE_MODES,
    LatticeMaxPoolLoss,
    frame_labels_from_segments,
    lattice_max_pool_loss,
    supervised_lattice_loss,
)
from ent.losses.rnnt import rnnt_loss, rnnt_loss_reference

__all__ = [
    "LATTICE_MODES",
    "LatticeMaxPoolLoss",
    "frame_labels_from_segments",
    "lattice_max_pool_loss",
    "rnnt_loss",
    "rnnt_loss_reference",
    "supervised_lattice_loss",
]
