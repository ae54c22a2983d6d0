"""The field's speech emotion recognition systems, hosted as baselines beside ENT and FENT.

Every neural system is a subclass of :class:`~ent.models.ser.abs_ser_model.AbsSERModel`
in a module of its own, named for what it is; :data:`SER_MODELS` maps the
config name (``model: <name>`` of a SER training config) to ``module:Class``.
Classes are imported when asked for, so that a system's optional dependency
is only needed by those who train it.
"""

from __future__ import annotations

import importlib
from typing import Dict, Type

from ent.models.ser.abs_ser_model import AbsSERModel

SER_MODELS: Dict[str, str] = {
    # Chen & Zhang, Interspeech 2022: channel- and temporal-wise attention over
    # the layers of a pretrained ASR encoder, RNN classifier.
    "cta_rnn": "ent.models.ser.cta_rnn:CTARNN",
    # Li, Bell & Lai, ICASSP 2022: joint ASR-SER training, ASR hidden states and
    # ASR text output fused by hierarchical co-attention.
    "asr_output_fusion": "ent.models.ser.asr_output_fusion:ASROutputFusion",
    # Zou et al., ICASSP 2022: MFCC, spectrogram and SSL branches fused by co-attention.
    "multilevel_fusion": "ent.models.ser.multilevel_fusion:MultiLevelAcousticFusion",
    # Zhang et al., APSIPA 2018: fully convolutional network on the spectrogram
    # with attention over time-frequency regions.
    "attention_fcn": "ent.models.ser.attention_fcn:AttentionFCN",
}


def ser_model_class(name: str) -> Type[AbsSERModel]:
    """The class of the SER baseline called ``name`` in :data:`SER_MODELS`.

    Raises:
        ValueError: If ``name`` is not a known baseline.
    """
    if name not in SER_MODELS:
        raise ValueError(f"unknown SER model {name!r}; known: {', '.join(sorted(SER_MODELS))}")
    module, cls = SER_MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["AbsSERModel", "SER_MODELS", "ser_model_class"]
