"""The emotion label set.

ENT's default classes are the four of IEMOCAP's common protocol and of the
``mini_emo`` corpus. Neutral is class 0 by convention: the lattice max pooling
loss and emotion diarization treat it as the "no emotion" class.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

DEFAULT_EMOTIONS: Tuple[str, ...] = ("neutral", "happy", "angry", "sad")
NEUTRAL = "neutral"


def emotion_to_index(emotions: Sequence[str] = DEFAULT_EMOTIONS) -> Dict[str, int]:
    """Map each emotion name to its class index (order of ``emotions``)."""
    if len(set(emotions)) != len(emotions):
        raise ValueError(f"duplicate emotion names in {list(emotions)}")
    return {name: i for i, name in enumerate(emotions)}


def parse_emotion_list(spec: str) -> List[str]:
    """Parse a comma- or space-separated emotion list, e.g. ``"neutral,happy,angry,sad"``."""
    names = [n for n in spec.replace(",", " ").split() if n]
    if not names:
        raise ValueError("empty emotion list")
    emotion_to_index(names)
    return names
