"""Language models for decoding: token n-gram models (:mod:`ent.lm.ngram`)."""

from ent.lm.ngram import NgramLM, NgramScorer, train_ngram

__all__ = ["NgramLM", "NgramScorer", "train_ngram"]
