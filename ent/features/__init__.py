"""Acoustic features: Kaldi fbank frontend, global CMVN, SpecAugment, pretrained SSL front end.

:mod:`ent.features.ssl` (wav2vec 2.0 / HuBERT / WavLM through ``transformers``) is not imported
here, so that fbank users do not pay for importing ``transformers``.
"""

from ent.features.cmvn import build_global_cmvn, compute_cmvn_stats, load_cmvn_stats
from ent.features.fbank import Fbank
from ent.features.specaug import DEFAULT_SPECAUG, SpecAugment, build_specaug

__all__ = [
    "Fbank",
    "compute_cmvn_stats",
    "load_cmvn_stats",
    "build_global_cmvn",
    "SpecAugment",
    "build_specaug",
    "DEFAULT_SPECAUG",
]
