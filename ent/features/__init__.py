"""Acoustic features: Kaldi fbank frontend, global CMVN and SpecAugment."""

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
