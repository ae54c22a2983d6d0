"""Neural building blocks of ENT and FENT: encoder, predictors, joint networks and
the utterance emotion head. Config names map to these classes in
:mod:`ent.tasks.ent_task` (ESPnet's ``ClassChoices``)."""

from ent.nets.encoder import ConformerEncoder
from ent.nets.joint import JointNetwork, lattice_mask
from ent.nets.predictor import Predictor, RNNPredictor, StatelessPredictor
from ent.nets.utterance_head import UtteranceEmotionHead

__all__ = [
    "ConformerEncoder",
    "JointNetwork",
    "Predictor",
    "RNNPredictor",
    "StatelessPredictor",
    "UtteranceEmotionHead",
    "lattice_mask",
]
