"""Speed perturbation of a data directory (Ko et al., 2015; Kaldi's 3-way perturbation).

A speed factor ``f`` plays the audio ``f`` times faster, changing tempo and
pitch together like ``sox speed f``: the waveform is treated as if it were
sampled at ``f * 16000`` Hz and resampled to 16000 Hz (polyphase filter), so
it lasts ``1 / f`` times as long.

For every factor and every utterance ``<utt>`` of the source directory the
output directory holds ``sp<f>-<utt>`` (``f`` written as in ``0.9``, ``1.0``,
``1.1``) with:

=============  ========================================================
file           content
=============  ========================================================
wav.scp        ``sp<f>-<utt> <audio_dir>/sp<f>-<utt>.wav`` (16-bit PCM)
text           copied
utt2emo        copied
utt2spk        speaker prefixed too: ``sp<f>-<spk>`` (as Kaldi does)
utt2dur        length of the written audio (≈ duration / f)
emo_segments   interval times divided by ``f`` (clipped to the duration)
=============  ========================================================

The output has no ``segments`` file: each utterance is written as its own
file, also for factor 1.0 (so utterances cut from long recordings work the
same way). All files are sorted by key. The directory is built under a
temporary name and renamed at the end, so an existing output directory is
always complete: it is skipped unless ``force``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
from tqdm import tqdm

from ent.data.audio import TARGET_SAMPLE_RATE, resample, write_audio
from ent.data.datadir import DataDir
from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write, write_table

PathLike = Union[str, Path]
DEFAULT_FACTORS: Tuple[float, ...] = (0.9, 1.0, 1.1)

logger = logging.getLogger(__name__)


def factor_prefix(factor: float) -> str:
    """The id prefix of a speed factor, e.g. ``"sp0.9-"``."""
    return f"sp{factor:g}-" if f"{factor:g}" != "1" else "sp1.0-"


def speed_change(wave: np.ndarray, factor: float, sample_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Play ``wave`` ``factor`` times faster (tempo and pitch), like ``sox speed``.

    Args:
        wave: (N,) float32 samples at ``sample_rate``.
        factor: Speed factor (> 0); ``factor * sample_rate`` must be an
            integer number of Hz.
        sample_rate: Sample rate of ``wave`` and of the result.

    Returns:
        (≈ N / factor,) float32 samples.
    """
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, not {factor}")
    virtual_rate = factor * sample_rate
    if abs(virtual_rate - round(virtual_rate)) > 1e-6:
        raise ValueError(f"speed factor {factor} times {sample_rate} Hz is not a whole number of Hz")
    return resample(wave, int(round(virtual_rate)), sample_rate)


TIME_DECIMALS = 4


def _fmt_time(t: float) -> str:
    """Seconds with at most 4 decimals, trailing zeros dropped (``1.25``, ``3``)."""
    return f"{t:.{TIME_DECIMALS}f}".rstrip("0").rstrip(".")


def _perturb_one(job: Tuple[str, str, float, str]) -> Tuple[str, int]:
    """Worker: load one utterance, change its speed, write it; returns (new utt id, samples)."""
    data_dir, utt, factor, out_path = job
    data = _load_cached(data_dir)
    wave = data.load_audio(utt)
    out = wave if factor == 1.0 else speed_change(wave, factor)
    write_audio(out_path, out)
    return factor_prefix(factor) + utt, int(out.shape[0])


_cache: Dict[str, DataDir] = {}


def _load_cached(data_dir: str) -> DataDir:
    if data_dir not in _cache:
        _cache[data_dir] = DataDir.load(data_dir)
    return _cache[data_dir]


def speed_perturb_data_dir(
    src_dir: PathLike,
    dst_dir: PathLike,
    audio_dir: PathLike,
    factors: Sequence[float] = DEFAULT_FACTORS,
    nj: int = 1,
    force: bool = False,
) -> bool:
    """Write a speed-perturbed copy of a data directory.

    Args:
        src_dir: Source data directory.
        dst_dir: Output data directory (e.g. ``data/train_sp``).
        audio_dir: Where the perturbed wav files go.
        factors: Speed factors (each must give a whole number of Hz at 16 kHz).
        nj: Number of worker processes.
        force: Rebuild even when ``dst_dir`` exists.

    Returns:
        True if the directory was written, False if it existed and was kept.

    Raises:
        DataError: On a malformed source directory or unreadable audio.
        ValueError: On bad factors.
    """
    src_dir, dst_dir, audio_dir = Path(src_dir), Path(dst_dir), Path(audio_dir)
    if dst_dir.exists() and not force:
        logger.info("%s exists; skipping speed perturbation (use force to rebuild)", dst_dir)
        return False
    if not factors or len(set(factors)) != len(factors):
        raise ValueError(f"factors must be distinct and non-empty: {list(factors)}")
    for f in factors:
        speed_change(np.zeros(1, dtype=np.float32), f)  # validates the factor
    data = DataDir.load(src_dir)
    for utt in data.utt_ids:
        if "/" in utt:
            raise DataError(src_dir / "text", data.lines.get("text", {}).get(utt),
                            f"utterance id '{utt}' contains '/', which cannot name an audio file")
    audio_dir.mkdir(parents=True, exist_ok=True)

    jobs = [
        (str(src_dir), utt, float(f), str(audio_dir / f"{factor_prefix(f)}{utt}.wav"))
        for f in factors
        for utt in data.utt_ids
    ]
    lengths: Dict[str, int] = {}
    with tqdm(total=len(jobs), desc="speed perturbation", unit="utt", disable=None) as progress:
        if nj <= 1:
            _cache[str(src_dir)] = data
            for job in jobs:
                key, n = _perturb_one(job)
                lengths[key] = n
                progress.update(1)
            _cache.pop(str(src_dir), None)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(nj, mp_context=ctx) as pool:
                for key, n in pool.map(_perturb_one, jobs, chunksize=8):
                    lengths[key] = n
                    progress.update(1)

    wav_scp: Dict[str, str] = {}
    text: Dict[str, str] = {}
    utt2spk: Dict[str, str] = {}
    utt2emo: Dict[str, str] = {}
    utt2dur: Dict[str, str] = {}
    emo_lines: List[Tuple[str, float, float, str]] = []
    for (_, utt, f, path) in jobs:
        p = factor_prefix(f)
        key = p + utt
        dur = round(lengths[key] / TARGET_SAMPLE_RATE, TIME_DECIMALS)
        wav_scp[key] = path
        text[key] = data.text[utt]
        utt2spk[key] = p + data.utt2spk[utt]
        utt2emo[key] = data.utt2emo[utt]
        utt2dur[key] = _fmt_time(dur)
        for iv in data.emotion_intervals(utt):
            start = round(iv.start / f, TIME_DECIMALS)
            end = min(round(iv.end / f, TIME_DECIMALS), dur)
            if end > start:
                emo_lines.append((key, start, end, iv.emotion))

    dst_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{dst_dir.name}.", dir=dst_dir.parent))
    try:
        write_table(tmp_dir / "wav.scp", wav_scp)
        write_table(tmp_dir / "text", text)
        write_table(tmp_dir / "utt2spk", utt2spk)
        write_table(tmp_dir / "utt2emo", utt2emo)
        write_table(tmp_dir / "utt2dur", utt2dur)
        if emo_lines:
            emo_lines.sort(key=lambda e: (e[0], e[1]))
            with atomic_write(tmp_dir / "emo_segments") as fh:
                for key, start, end, emo in emo_lines:
                    fh.write(f"{key} {_fmt_time(start)} {_fmt_time(end)} {emo}\n")
        # mkdtemp makes the directory private (0700): give it a plain mkdir's mode.
        umask = os.umask(0)
        os.umask(umask)
        tmp_dir.chmod(0o777 & ~umask)
        if dst_dir.exists():
            shutil.rmtree(dst_dir)
        tmp_dir.rename(dst_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    logger.info("wrote %d utterances (factors %s) to %s", len(jobs), list(factors), dst_dir)
    return True
