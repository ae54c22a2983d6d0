"""Audio reading: any soundfile-readable file becomes 16 kHz mono float32.

Audio that is not at the target rate is resampled (polyphase filter) and
multi-channel audio is down-mixed by averaging the channels; neither happens
silently: :func:`load_audio` logs the first conversion of each kind at INFO
level, and the validator reports them per file. Audio *below* the target rate
(8 kHz telephone audio) is upsampled with a WARNING naming the file (the first
:data:`MAX_UPSAMPLE_WARNINGS` files, then one line saying that more follow):
it has no content above its Nyquist frequency, which a 16 kHz model was
trained on, so expect more errors.

The content is checked too (:func:`check_samples`): an empty file (0
samples) and NaN or infinite samples are an :class:`AudioError` naming the
file (a float WAV can hold them; they would otherwise turn every feature and
score of the utterance into NaN). Digital silence (every sample exactly 0)
is loaded as it is; :func:`is_digital_silence` lets the decoders recognise it
(they write an empty, neutral result with a warning).

``torchaudio.load`` needs FFmpeg (through torchcodec), which ENT does not
require, so all file I/O goes through ``soundfile``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import NamedTuple, Optional, Union

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from ent.utils.errors import DataError

PathLike = Union[str, Path]
TARGET_SAMPLE_RATE = 16000
MAX_UPSAMPLE_WARNINGS = 10
"""Files named in upsampling warnings; after them one line says that more follow."""

_logged_conversions: set = set()
_upsampled_files: list = []


class AudioInfo(NamedTuple):
    """Header information of an audio file."""

    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate


class AudioError(DataError):
    """An audio file is missing or cannot be decoded."""


def audio_info(path: PathLike) -> AudioInfo:
    """Read an audio file's header.

    Raises:
        AudioError: If the file is missing or not a readable audio file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, None, "audio file not found")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(path, None, f"unreadable audio: {_sf_message(exc)}") from None
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames))


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D signal with a polyphase anti-aliasing filter.

    Args:
        wave: (N,) float32 samples.
        orig_sr: Sample rate of ``wave``.
        target_sr: Wanted sample rate.

    Returns:
        (round(N * target_sr / orig_sr),) float32 samples.
    """
    if orig_sr == target_sr:
        return wave
    g = math.gcd(orig_sr, target_sr)
    out = resample_poly(wave.astype(np.float64), target_sr // g, orig_sr // g)
    return out.astype(np.float32)


def load_audio(
    path: PathLike,
    start: Optional[float] = None,
    end: Optional[float] = None,
    target_sr: int = TARGET_SAMPLE_RATE,
) -> np.ndarray:
    """Load audio as mono float32 at ``target_sr``, optionally a segment of it.

    Args:
        path: Audio file (WAV, FLAC, OGG, ... anything libsndfile reads).
        start: Segment start in seconds (``None``: beginning).
        end: Segment end in seconds (``None`` or negative: end of file).
        target_sr: Output sample rate.

    Returns:
        wave: (N,) float32 in [-1, 1].

    Raises:
        AudioError: If the file is missing, unreadable or empty, the segment
            lies outside the audio, or a sample is NaN or infinite.
    """
    info = audio_info(path)
    sr = info.sample_rate
    if info.frames == 0:
        raise AudioError(path, None, "audio file is empty (0 samples)")
    first = 0 if start is None else int(round(start * sr))
    last = info.frames if end is None or end < 0 else int(round(end * sr))
    if first < 0 or first >= info.frames or last <= first:
        raise AudioError(
            path, None, f"segment {start}-{end} s is outside the audio ({info.duration:.3f} s)"
        )
    # Allow a rounding slack of 10 ms at the end, as Kaldi's extract-segments does.
    if last > info.frames:
        if last - info.frames > 0.01 * sr:
            raise AudioError(
                path, None, f"segment end {end} s is past the end of the audio ({info.duration:.3f} s)"
            )
        last = info.frames
    try:
        wave, _ = sf.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(path, None, f"unreadable audio: {_sf_message(exc)}") from None
    check_samples(wave, path, sr, offset_s=first / sr)
    if wave.shape[1] > 1:
        _log_once("downmix", f"down-mixing {wave.shape[1]}-channel audio to mono (first: {path})")
        wave = wave.mean(axis=1)
    else:
        wave = wave[:, 0]
    if sr < target_sr:
        _warn_upsampling(path, sr, target_sr)
    elif sr != target_sr:
        _log_once("resample", f"resampling {sr} Hz audio to {target_sr} Hz (first: {path})")
    if sr != target_sr:
        wave = resample(wave, sr, target_sr)
    return np.ascontiguousarray(wave, dtype=np.float32)


def check_samples(wave: np.ndarray, path: Optional[PathLike] = None, sample_rate: int = TARGET_SAMPLE_RATE,
                  offset_s: float = 0.0) -> None:
    """Refuse audio without samples or with NaN or infinite samples.

    Args:
        wave: (N,) or (N, C) samples.
        path: The file they come from (named in the error).
        sample_rate: Their rate (to give the time of the first bad sample).
        offset_s: Time of ``wave[0]`` in the file (a segment's start).

    Raises:
        AudioError: ``<path>: audio has 3 NaN/Inf samples (first at 1.250 s)``,
            or ``<path>: audio is empty (0 samples)``.
    """
    wave = np.asarray(wave)
    if wave.shape[0] == 0:
        raise AudioError(path, None, "audio is empty (0 samples)")
    finite = np.isfinite(wave)
    if not finite.all():
        bad = ~finite.reshape(wave.shape[0], -1).all(axis=1)
        first = int(np.argmax(bad))
        kinds = "/".join(name for name, test in (("NaN", np.isnan), ("Inf", np.isinf)) if test(wave).any())
        raise AudioError(path, None, f"audio has {int(bad.sum())} {kinds} samples (first at "
                         f"{offset_s + first / sample_rate:.3f} s)")


def is_digital_silence(wave: np.ndarray) -> bool:
    """Whether every sample is exactly zero (a dead channel or an all-zero file).

    Args:
        wave: (N,) samples.
    """
    wave = np.asarray(wave)
    return wave.size > 0 and not np.any(wave)


def write_audio(path: PathLike, wave: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE) -> None:
    """Write mono audio as 16-bit PCM WAV atomically (temporary file, then rename).

    Args:
        path: Destination ``.wav`` file.
        wave: (N,) float samples in [-1, 1] (clipped if outside).
        sample_rate: Sample rate in Hz.
    """
    from ent.utils.fileio import atomic_write

    data = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    with atomic_write(path, "wb") as fh:
        sf.write(fh, data, sample_rate, subtype="PCM_16", format="WAV")


def _sf_message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def _warn_upsampling(path: PathLike, sample_rate: int, target_sr: int) -> None:
    """Warn about a file below the target rate (the first few files by name)."""
    key = str(path)
    if key in _upsampled_files or len(_upsampled_files) > MAX_UPSAMPLE_WARNINGS:
        return
    _upsampled_files.append(key)
    log = logging.getLogger(__name__)
    if len(_upsampled_files) > MAX_UPSAMPLE_WARNINGS:
        log.warning(f"more audio below {target_sr} Hz is upsampled (no further warnings)")
        return
    log.warning(f"{path}: {sample_rate} Hz audio upsampled to {target_sr} Hz: it has nothing above "
                f"{sample_rate // 2} Hz, which the model was trained on (expect more errors)")


def _log_once(kind: str, message: str) -> None:
    if kind not in _logged_conversions:
        _logged_conversions.add(kind)
        logging.getLogger(__name__).info(message)
