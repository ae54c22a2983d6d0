"""Generates a tiny ZED folder: ``ZED.json`` in the release format plus audio (never real data).

Entries exercise the rules of :mod:`ent.corpora.zed`: the ``datafolder``
placeholder, root-relative and stale absolute paths, abbreviated and
capitalized emotion names, an explicit neutral interval, an interval ending
just past the audio (clipped), an unknown emotion, missing audio, a malformed
entry and overlapping intervals of different emotions.

:data:`EXPECTED` maps each kept utterance to (text, utterance emotion,
emo_segments lines); :data:`EXPECTED_DROPS` gives the drop counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000

#: id -> (audio path under the root or None, audio seconds, JSON entry)
ENTRIES: Dict[str, Tuple[str, float, dict]] = {
    "ZED_0001": ("wavs/ZED_0001.wav", 3.0, {
        "wav": "datafolder/wavs/ZED_0001.wav", "duration": 3.0,
        "emotion": [{"emo": "happy", "start": 1.0, "end": 2.5}],
        "transcription": "Well, I'm SO happy!"}),
    "ZED_0002": ("wavs/ZED_0002.wav", 2.0, {
        "wav": "wavs/ZED_0002.wav", "duration": 2.0,
        "emotion": [{"emo": "Sad", "start": 0.0, "end": 1.2}],
        "transcription": "It's over... [sigh]"}),
    "ZED_0003": ("audio/ZED_0003.wav", 2.0, {
        "wav": "/somewhere/else/ZED_0003.wav", "duration": 2.05,
        "emotion": [{"emo": "A", "start": 0.5, "end": 2.05}],
        "transcription": "Stop it now."}),
    "ZED_0004": ("wavs/ZED_0004.wav", 2.0, {
        "wav": "datafolder/wavs/ZED_0004.wav", "duration": 2.0,
        "emotion": [{"emo": "fear", "start": 0.2, "end": 1.0}],
        "transcription": "What was that?"}),
    "ZED_0005": (None, 0.0, {
        "wav": "datafolder/wavs/ZED_0005.wav", "duration": 2.0,
        "emotion": [{"emo": "happy", "start": 0.2, "end": 1.0}],
        "transcription": "Nobody recorded me."}),
    "ZED_0006": ("wavs/ZED_0006.wav", 2.0, {
        "wav": "datafolder/wavs/ZED_0006.wav", "duration": 2.0,
        "emotion": "happy",
        "transcription": "Malformed."}),
    "ZED_0007": ("wavs/ZED_0007.wav", 2.5, {
        "wav": "datafolder/wavs/ZED_0007.wav", "duration": 2.5,
        "emotion": [{"emo": "neutral", "start": 0.0, "end": 1.0}, {"emo": "ANGRY", "start": 1.0, "end": 2.0}],
        "transcription": "Calm, then not calm."}),
    "ZED_0008": ("wavs/ZED_0008.wav", 2.0, {
        "wav": "datafolder/wavs/ZED_0008.wav", "duration": 2.0,
        "emotion": [{"emo": "happy", "start": 0.2, "end": 1.0}, {"emo": "sad", "start": 0.8, "end": 1.5}],
        "transcription": "Mixed feelings."}),
}

#: utt -> (text, utterance emotion, emo_segments lines)
EXPECTED: Dict[str, Tuple[str, str, List[str]]] = {
    "ZED_0001": ("well i'm so happy", "happy", ["ZED_0001 1.0000 2.5000 happy"]),
    "ZED_0002": ("it's over", "sad", ["ZED_0002 0.0000 1.2000 sad"]),
    "ZED_0003": ("stop it now", "angry", ["ZED_0003 0.5000 2.0000 angry"]),
    "ZED_0007": ("calm then not calm", "angry", ["ZED_0007 1.0000 2.0000 angry"]),
}
EXPECTED_DROPS: Dict[str, int] = {
    "unknown emotion 'fear'": 1,
    "missing audio": 1,
    "overlapping intervals of different emotions": 1,
}
#: The malformed entry (its "emotion" is not a list).
MALFORMED_ID = "ZED_0006"


def make_zed_tree(root: Path) -> Path:
    """Write ``root/ZED.json`` and the audio (see the module docstring); returns ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i, (utt, (rel, seconds, _)) in enumerate(sorted(ENTRIES.items())):
        if rel is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        n = int(round(seconds * SAMPLE_RATE))
        t = np.arange(n) / SAMPLE_RATE
        sf.write(str(path), (0.2 * np.sin(2 * np.pi * (220 + 30 * i) * t)).astype(np.float32),
                 SAMPLE_RATE, subtype="PCM_16")
    data = {utt: entry for utt, (_, _, entry) in ENTRIES.items()}
    (root / "ZED.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return root


def json_line_of(json_path: Path, utt: str) -> int:
    """1-based line of ``"utt": {`` in the annotation file ``json_path``."""
    for lineno, line in enumerate(Path(json_path).read_text().splitlines(), start=1):
        if line.strip().startswith(f'"{utt}": {{'):
            return lineno
    raise KeyError(utt)
