"""Builds small Kaldi-style data directories with real audio for tests.

Import it as ``from datadir_factory import make_data_dir, write_tone`` (the
``test/`` folder is put on ``sys.path`` by ``test/data/conftest.py``; test
files elsewhere insert it themselves), or use the ``data_dir_factory``
fixture of ``test/data/conftest.py``.

The default directory (``n`` utterances, ids ``utt001``, ``utt002``, ...) is
valid: :func:`ent.data.validate.validate_data_dir` finds no problem in it.
Tests inject one fault each through the keyword overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile as sf

DEFAULT_EMOTIONS = ("neutral", "happy", "angry", "sad")
SENTENCES = ("HELLO WORLD", "THE CAT SAT ON THE MAT", "GOOD MORNING TO YOU", "SEE YOU SOON")
FILE_KEYS = {
    "wav_scp": "wav.scp",
    "text": "text",
    "utt2spk": "utt2spk",
    "utt2emo": "utt2emo",
    "segments": "segments",
    "emo_segments": "emo_segments",
    "utt2dur": "utt2dur",
}
#: Gap (s) before, between and after the utterances of a recording (with_segments=True).
GAP = 0.1

Override = Union[None, str, bytes, Sequence[str], Callable[[List[str]], Union[str, bytes, Sequence[str]]]]


def utt_id(i: int, width: int = 3) -> str:
    """Id of the ``i``-th (0-based) utterance: ``utt001``, ``utt002``, ... (``width`` digits)."""
    return f"utt{i + 1:0{width}d}"


def _emo_intervals(duration: float) -> List[Tuple[str, str]]:
    """Two intervals, 0.1-0.4 s and 0.5-0.9 s, scaled down for utterances shorter than 1 s."""
    if duration >= 1.0:
        return [("0.10", "0.40"), ("0.50", "0.90")]
    return [(f"{a * duration:.4f}", f"{b * duration:.4f}") for a, b in ((0.1, 0.4), (0.5, 0.9))]


def tone(duration: float, sample_rate: int = 16000, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    """A sine of ``freq`` Hz (amplitude 0.3) plus faint noise.

    Returns:
        (round(duration * sample_rate),) float32 samples.
    """
    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    noise = np.random.default_rng(seed).standard_normal(n) * 0.003
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def write_tone(
    path: Union[str, Path],
    duration: float,
    sample_rate: int = 16000,
    channels: int = 1,
    freq: float = 440.0,
    seed: int = 0,
) -> np.ndarray:
    """Write a 16-bit PCM WAV tone (see :func:`tone`); channel ``c`` is scaled by ``1 / (c + 1)``.

    Returns:
        The samples as written, (N,) for mono or (N, channels), float32
        (before 16-bit quantisation).
    """
    return _write_wav(Path(path), tone(duration, sample_rate, freq, seed), sample_rate, channels)


def _write_wav(path: Path, wave: np.ndarray, sample_rate: int, channels: int) -> np.ndarray:
    if channels > 1:
        wave = np.stack([wave / (c + 1) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, sample_rate, subtype="PCM_16")
    return wave


def wav_path(data_dir: Union[str, Path], key: str) -> Path:
    """The audio file of recording ``key``, as written in ``data_dir/wav.scp``."""
    for line in (Path(data_dir) / "wav.scp").read_text().splitlines():
        fields = line.split(maxsplit=1)
        if fields and fields[0] == key:
            return Path(fields[1])
    raise KeyError(key)


def replace_line(lineno: int, new: str) -> Callable[[List[str]], List[str]]:
    """An override for :func:`make_data_dir` that replaces 1-based line ``lineno``."""

    def edit(lines: List[str]) -> List[str]:
        lines[lineno - 1] = new
        return lines

    return edit


def _apply(default: List[str], override: Override) -> Optional[bytes]:
    if override is None:
        return None
    if callable(override):
        override = override(list(default))
    if isinstance(override, bytes):
        return override
    if isinstance(override, str):
        return override.encode("utf-8")
    return "".join(line + "\n" for line in override).encode("utf-8")


def make_data_dir(
    root: Union[str, Path],
    n: int = 4,
    *,
    name: str = "data",
    sample_rate: int = 16000,
    channels: int = 1,
    durations: Optional[Sequence[float]] = None,
    with_segments: bool = False,
    emotions: Sequence[str] = DEFAULT_EMOTIONS,
    **overrides: Override,
) -> Path:
    """Write a valid data directory ``root/name`` with ``n`` utterances.

    Contents (``i`` = 0-based utterance index, ``utt = utt_id(i)``):

    - audio under ``root/audio/name/`` (absolute paths in ``wav.scp``): a tone
      of ``200 + 100 * i`` Hz, ``durations[i]`` s long (default
      ``1.0 + 0.25 * (i % 4)``), at ``sample_rate`` with ``channels``;
    - ``text``: one of :data:`SENTENCES`; ``utt2spk``: ``spk1``/``spk2``
      alternating; ``utt2emo``: ``emotions[i % len(emotions)]``;
    - ``emo_segments``: two intervals, ``0.10-0.40`` and ``0.50-0.90`` s
      (scaled down for utterances shorter than 1 s), for each utterance whose
      emotion is not ``emotions[0]``;
    - ``utt2dur``: the exact durations;
    - with ``with_segments``: recordings ``rec01``, ``rec02``, ... each holding
      two consecutive utterances (their tones, separated by :data:`GAP` s of
      silence, with ``GAP`` s before and after), and a ``segments`` file.

    Args:
        root: Parent folder (e.g. pytest's ``tmp_path``).
        n: Number of utterances.
        name: Name of the data directory under ``root``.
        sample_rate: Sample rate of the audio.
        channels: Channels of the audio.
        durations: Duration of each utterance in seconds.
        with_segments: Cut the utterances from longer recordings.
        emotions: Emotion labels to cycle through.
        **overrides: Replace a file's content, by file key (``wav_scp``,
            ``text``, ``utt2spk``, ``utt2emo``, ``segments``,
            ``emo_segments``, ``utt2dur``): ``None`` leaves the file out; a
            ``str`` or ``bytes`` is the whole content; a list gives the lines;
            a callable receives the default lines (without newlines) and
            returns any of those.

    Returns:
        The data directory.
    """
    unknown = set(overrides) - set(FILE_KEYS)
    if unknown:
        raise TypeError(f"unknown overrides {sorted(unknown)}; use one of {sorted(FILE_KEYS)}")
    root = Path(root)
    data = root / name
    audio = (root / "audio" / name).resolve()
    data.mkdir(parents=True, exist_ok=True)
    if durations is None:
        durations = [1.0 + 0.25 * (i % 4) for i in range(n)]
    utts = [utt_id(i, max(3, len(str(n)))) for i in range(n)]  # C-sorted
    waves = [tone(durations[i], sample_rate, 200.0 + 100.0 * i, seed=i) for i in range(n)]

    files: Dict[str, List[str]] = {
        "text": [f"{u} {SENTENCES[i % len(SENTENCES)]}" for i, u in enumerate(utts)],
        "utt2spk": [f"{u} spk{i % 2 + 1}" for i, u in enumerate(utts)],
        "utt2emo": [f"{u} {emotions[i % len(emotions)]}" for i, u in enumerate(utts)],
        "utt2dur": [f"{u} {len(w) / sample_rate:.4f}" for u, w in zip(utts, waves)],
        "emo_segments": [
            f"{u} {a} {b} {emotions[i % len(emotions)]}"
            for i, u in enumerate(utts)
            if i % len(emotions) != 0
            for a, b in _emo_intervals(durations[i])
        ],
    }
    if with_segments:
        gap = np.zeros(int(round(GAP * sample_rate)), dtype=np.float32)
        files["wav.scp"], files["segments"] = [], []
        for r in range(0, n, 2):
            rec = f"rec{r // 2 + 1:02d}"
            pieces = [gap]
            for i in range(r, min(r + 2, n)):
                start = sum(len(p) for p in pieces) / sample_rate
                end = start + len(waves[i]) / sample_rate
                pieces += [waves[i], gap]
                files["segments"].append(f"{utts[i]} {rec} {start:.4f} {end:.4f}")
            _write_wav(audio / f"{rec}.wav", np.concatenate(pieces), sample_rate, channels)
            files["wav.scp"].append(f"{rec} {audio / f'{rec}.wav'}")
    else:
        files["wav.scp"] = []
        for u, w in zip(utts, waves):
            _write_wav(audio / f"{u}.wav", w, sample_rate, channels)
            files["wav.scp"].append(f"{u} {audio / f'{u}.wav'}")

    for key, file in FILE_KEYS.items():
        default = files.get(file)
        if key in overrides:
            content = _apply(default or [], overrides[key])
        elif default is not None:
            content = _apply(default, default)
        else:
            content = None
        target = data / file
        if content is None:
            if target.exists():
                target.unlink()
        else:
            target.write_bytes(content)
    return data
