"""Decoding of the Emotion Neural Transducer: search, emotions along the path, output files.

* :mod:`ent.decoding.greedy`: batched greedy search (:func:`greedy_search`).
* :mod:`ent.decoding.beam_search`: modified beam search
  (:func:`modified_beam_search`, :func:`modified_beam_search_nbest`).
* :mod:`ent.decoding.hypothesis`: :class:`Hypothesis`, word times and
  emotions, the utterance emotion, emotional segments.
* :mod:`ent.decoding.writer`: the decoding directory's files
  (:class:`DecodeWriter`).
* :mod:`ent.decoding.long_audio`: long recordings decoded piece by piece and
  stitched in utterance time (also the segments of a streaming session).
"""

from ent.decoding.beam_search import modified_beam_search, modified_beam_search_nbest
from ent.decoding.greedy import greedy_search
from ent.decoding.hypothesis import (
    Hypothesis,
    Segment,
    TokenizerLike,
    UttEmotion,
    Word,
    frames_to_segments,
    lattice_utterance_emotion,
    utterance_emotion,
    words_with_times,
)
from ent.decoding.streaming import PartialResult, StreamingSession
from ent.decoding.writer import DecodeResult, DecodeWriter, make_result

__all__ = [
    "PartialResult",
    "StreamingSession",
    "DecodeResult",
    "DecodeWriter",
    "Hypothesis",
    "Segment",
    "TokenizerLike",
    "UttEmotion",
    "Word",
    "frames_to_segments",
    "greedy_search",
    "lattice_utterance_emotion",
    "make_result",
    "modified_beam_search",
    "modified_beam_search_nbest",
    "utterance_emotion",
    "words_with_times",
]
