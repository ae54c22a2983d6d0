"""Emotions as prosody distributions for eSpeak NG synthesis.

Each of the default emotions (:data:`ent.data.emotions.DEFAULT_EMOTIONS`) is
a distribution over eSpeak's prosody controls (see
:class:`ent.synth.espeak.SynthesisParams` for the units). One utterance's prosody is drawn as follows:

1. an *intensity* ``k ~ N(1, 0.25)`` clipped to ``[0.3, 1.5]`` (always 1
   for neutral): how strongly the emotion is expressed;
2. for each control, ``value = neutral_mean + k * (emotion_mean -
   neutral_mean) + N(0, std)`` plus the voice's habitual offset (rate and
   pitch), rounded and clipped to the limits below.

A weakly expressed emotion (small ``k``) thus sounds nearly neutral, and the
jitter makes neighbouring classes (happy/angry, neutral/sad) overlap, so the
classes are learnable but not trivially separable.

======================  ==========  ==========  ==========  ==========  ==========
control (eSpeak units)  neutral     happy       angry       sad         limits
======================  ==========  ==========  ==========  ==========  ==========
rate (words/min)        170 +- 12   192 +- 14   205 +- 14   140 +- 11   100..300
pitch (0-99)            45 +- 6     68 +- 7     54 +- 7     33 +- 6     0..99
pitch range (0-100)     45 +- 8     84 +- 8     62 +- 10    18 +- 7     0..100
amplitude               44 +- 5     50 +- 5     60 +- 4     34 +- 5     10..64
word gap (x 10 ms)      0.3 +- 0.6  0.2 +- 0.5  1.0 +- 0.8  2.0 +- 0.9  0..8
variant preference      none        f1 1.3      m3 1.5      f2 1.5      weights
                                    m2 1.2      m7 1.5      f5 1.5
                                                            m8 1.3
======================  ==========  ==========  ==========  ==========  ==========

(``mean +- std``; the amplitude limit is eSpeak's cap
:data:`ent.synth.espeak.MAX_AMPLITUDE`.) The voice variant preference is a
soft weight (unlisted variants weigh 1) used when a corpus draws the voice of
a training utterance: sad speech comes a little more often from the breathy
variants (``f2``, ``f5``) and the soft ``m8``, angry speech from the pressed
``m7`` (strong voicing) and ``m3``, happy speech from ``f1`` and ``m2``,
mimicking the speaker/emotion imbalance of acted corpora. (``mini_emo``
draws test voices without it, so its test sets stay balanced.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Dict, Mapping, Tuple

from ent.data.emotions import NEUTRAL
from ent.synth.espeak import MAX_AMPLITUDE, SynthesisParams


@dataclass(frozen=True)
class Normal:
    """A normal distribution ``N(mean, std**2)``."""

    mean: float
    std: float


@dataclass(frozen=True)
class EmotionProsody:
    """The prosody distribution of one emotion (see the module table).

    Attributes:
        emotion: Emotion name.
        rate: Speaking rate in words per minute.
        pitch: eSpeak pitch, 0-99.
        pitch_range: eSpeak pitch range, 0-100.
        amplitude: eSpeak amplitude.
        word_gap: Pause between words in units of 10 ms.
        variant_weights: eSpeak voice variant (e.g. ``"f2"``) to a relative
            weight for choosing the voice of an utterance.
    """

    emotion: str
    rate: Normal
    pitch: Normal
    pitch_range: Normal
    amplitude: Normal
    word_gap: Normal
    variant_weights: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ProsodySample:
    """One utterance's drawn prosody (eSpeak units).

    Attributes:
        emotion: Emotion name.
        intensity: The drawn expression strength ``k`` (1 for neutral).
        rate: Words per minute.
        pitch: 0-99.
        pitch_range: 0-100.
        amplitude: 10 to :data:`MAX_AMPLITUDE`.
        word_gap: Units of 10 ms.
    """

    emotion: str
    intensity: float
    rate: int
    pitch: int
    pitch_range: int
    amplitude: int
    word_gap: int

    def to_params(self, voice: str, seed: int = 0) -> SynthesisParams:
        """The eSpeak request for this prosody with the given voice."""
        return SynthesisParams(
            voice=voice,
            rate=self.rate,
            pitch=self.pitch,
            pitch_range=self.pitch_range,
            amplitude=self.amplitude,
            word_gap=self.word_gap,
            seed=seed,
        )


PROSODY: Dict[str, EmotionProsody] = {
    "neutral": EmotionProsody(
        "neutral", Normal(170, 12), Normal(45, 6), Normal(45, 8), Normal(44, 5), Normal(0.3, 0.6)
    ),
    "happy": EmotionProsody(
        "happy", Normal(192, 14), Normal(68, 7), Normal(84, 8), Normal(50, 5), Normal(0.2, 0.5),
        {"f1": 1.3, "m2": 1.2},
    ),
    "angry": EmotionProsody(
        "angry", Normal(205, 14), Normal(54, 7), Normal(62, 10), Normal(60, 4), Normal(1.0, 0.8),
        {"m3": 1.5, "m7": 1.5},
    ),
    "sad": EmotionProsody(
        "sad", Normal(140, 11), Normal(33, 6), Normal(18, 7), Normal(34, 5), Normal(2.0, 0.9),
        {"f2": 1.5, "f5": 1.5, "m8": 1.3},
    ),
}
"""The distribution of each default emotion."""

INTENSITY = Normal(1.0, 0.25)
INTENSITY_LIMITS: Tuple[float, float] = (0.3, 1.5)
LIMITS: Dict[str, Tuple[int, int]] = {
    "rate": (100, 300),
    "pitch": (0, 99),
    "pitch_range": (0, 100),
    "amplitude": (10, MAX_AMPLITUDE),
    "word_gap": (0, 8),
}
"""Inclusive bounds each drawn control is clipped to."""


def _clip(value: float, name: str) -> int:
    low, high = LIMITS[name]
    return int(min(max(round(value), low), high))


def sample_prosody(
    emotion: str, rng: random.Random, rate_offset: float = 0.0, pitch_offset: float = 0.0
) -> ProsodySample:
    """Draw one utterance's prosody for ``emotion``.

    Args:
        emotion: One of :data:`PROSODY`'s keys.
        rng: Source of randomness (the draws are made in a fixed order, so a
            seeded generator gives a deterministic result).
        rate_offset: The voice's habitual rate offset in words per minute.
        pitch_offset: The voice's habitual pitch offset (eSpeak pitch units).

    Raises:
        KeyError: On an unknown emotion.
    """
    if emotion not in PROSODY:
        raise KeyError(f"no prosody distribution for emotion {emotion!r}; known: {sorted(PROSODY)}")
    dist = PROSODY[emotion]
    base = PROSODY[NEUTRAL]
    if emotion == NEUTRAL:
        intensity = 1.0
    else:
        low, high = INTENSITY_LIMITS
        intensity = min(max(rng.gauss(INTENSITY.mean, INTENSITY.std), low), high)

    def draw(name: str, offset: float = 0.0) -> int:
        target: Normal = getattr(dist, name)
        neutral: Normal = getattr(base, name)
        mean = neutral.mean + intensity * (target.mean - neutral.mean)
        return _clip(mean + rng.gauss(0.0, target.std) + offset, name)

    rate = draw("rate", rate_offset)
    pitch = draw("pitch", pitch_offset)
    pitch_range = draw("pitch_range")
    amplitude = draw("amplitude")
    word_gap = draw("word_gap")
    return ProsodySample(emotion, intensity, rate, pitch, pitch_range, amplitude, word_gap)


def variant_weight(emotion: str, voice: str) -> float:
    """The preference of ``emotion`` for an eSpeak voice such as ``"en-us+f2"``.

    Returns 1 for voices without a variant or with an unlisted variant.
    """
    variant = voice.split("+", 1)[1] if "+" in voice else ""
    return float(PROSODY[emotion].variant_weights.get(variant, 1.0))
