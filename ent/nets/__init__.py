"""Neural building blocks of ENT and FENT: encoder, predictors, joint networks,
utterance emotion head, and the config-name registry."""

from ent.nets.encoder import ConformerEncoder
from ent.nets.joint import JointNetwork, lattice_mask
from ent.nets.predictor import Predictor, RNNPredictor, StatelessPredictor
from ent.nets.registry import available, build
from ent.nets.utterance_head import UtteranceEmotionHead

__all__ = [
    "ConformerEncoder",
    "JointNetwork",
    "Predictor",
    "RNNPredictor",
    "StatelessPredictor",
    "UtteranceEmotionHead",
    "available",
    "build",
    "lattice_mask",
]
