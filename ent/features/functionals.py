"""eGeMAPS v02 utterance functionals (openSMILE) and their per-speaker z-normalization.

The classic speech emotion recognition baseline describes an utterance by the
88 functionals of the extended Geneva Minimalistic Acoustic Parameter Set
(eGeMAPS v02; Eyben et al., IEEE Trans. Affective Computing 2016): means,
spreads and percentiles of pitch, loudness, spectral balance, formants,
jitter/shimmer and the rhythm of voiced and unvoiced stretches. They are
computed by the openSMILE C++ extractor through the ``opensmile`` Python
package from PyPI, which ships the compiled binary and the feature-set
configuration (nothing is downloaded at run time).

Functionals are only comparable within a voice, so each dimension is
z-normalized with the mean and standard deviation over the utterances of the
same speaker (``utt2spk``) in the same data set, without labels: the same
statistics the recipes' per-speaker CMVN uses for fbank features
(:func:`ent.features.cmvn.speaker_cmvn`). A test set is therefore normalized
with its own speakers' statistics, as a deployed system adapting to a new
speaker would.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ent.data.datadir import DataDir
from ent.utils.errors import DataError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
NUM_EGEMAPS = 88
"""Dimension of the eGeMAPS v02 functionals."""


class EGeMAPSExtractor:
    """eGeMAPS v02 functionals of a waveform, through openSMILE.

    The ``opensmile`` package is imported when the extractor is built, so
    that only the users of the functional baseline need it.
    """

    def __init__(self) -> None:
        try:
            import opensmile
        except ImportError as exc:  # pragma: no cover - a dependency of setup.py
            raise ImportError("the eGeMAPS functionals need the opensmile package: pip install opensmile") from exc
        self._smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02,
            feature_level=opensmile.FeatureLevel.Functionals,
        )
        self.names: Tuple[str, ...] = tuple(self._smile.feature_names)
        if len(self.names) != NUM_EGEMAPS:
            raise RuntimeError(f"eGeMAPSv02 gave {len(self.names)} functionals, expected {NUM_EGEMAPS}")

    def __call__(self, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """The functionals of one utterance.

        Args:
            wave: (N,) float waveform.
            sample_rate: Its sampling rate.

        Returns:
            (88,) float64 functionals, in the order of :attr:`names`.
        """
        wave = np.asarray(wave, dtype=np.float32).reshape(1, -1)
        values = self._smile.process_signal(wave, sample_rate).to_numpy(dtype=np.float64)
        if values.shape != (1, NUM_EGEMAPS):
            raise RuntimeError(f"openSMILE returned functionals of shape {values.shape}")
        return values[0]


_WORKER: Optional[Tuple[DataDir, EGeMAPSExtractor]] = None


def _init_worker(data_dir: str) -> None:
    global _WORKER
    _WORKER = (DataDir.load(data_dir, allow_empty_text=True), EGeMAPSExtractor())


def _extract_chunk(utts: List[str]) -> List[np.ndarray]:
    assert _WORKER is not None
    data, extractor = _WORKER
    return [extractor(data.load_audio(u)) for u in utts]


def functional_table(data: DataDir, utt_ids: Optional[Sequence[str]] = None, nj: int = 1) -> Dict[str, np.ndarray]:
    """eGeMAPS functionals of utterances of a data dir (not normalized).

    Args:
        data: The data dir.
        utt_ids: Utterances (default: all, ``data.utt_ids``).
        nj: Worker processes.

    Returns:
        utt -> (88,) functionals.
    """
    utts = list(data.utt_ids if utt_ids is None else utt_ids)
    if nj <= 1 or len(utts) < 2 * nj:
        extractor = EGeMAPSExtractor()
        return {u: extractor(data.load_audio(u)) for u in utts}
    chunks = [utts[i::nj] for i in range(nj)]
    out: Dict[str, np.ndarray] = {}
    with ProcessPoolExecutor(nj, initializer=_init_worker, initargs=(str(data.path),)) as pool:
        for chunk, values in zip(chunks, pool.map(_extract_chunk, chunks)):
            out.update(zip(chunk, values))
    return out


def speaker_znorm(
    table: Mapping[str, np.ndarray], utt2spk: Mapping[str, str], eps: float = 1.0e-8
) -> Dict[str, np.ndarray]:
    """Z-normalize functionals with the mean and std of each speaker's utterances.

    Args:
        table: utt -> (D,) functionals.
        utt2spk: utt -> speaker (an utterance without a speaker is its own speaker).
        eps: Floor of the standard deviation (a constant dimension becomes 0).

    Returns:
        utt -> (D,) normalized functionals.
    """
    by_speaker: Dict[str, List[str]] = {}
    for utt in table:
        by_speaker.setdefault(utt2spk.get(utt, utt), []).append(utt)
    out: Dict[str, np.ndarray] = {}
    for utts in by_speaker.values():
        values = np.stack([table[u] for u in utts])
        mean = values.mean(axis=0)
        std = np.maximum(values.std(axis=0), eps)
        for utt, row in zip(utts, values):
            out[utt] = (row - mean) / std
    return out


def load_or_extract(data_dir: Path, cache: Optional[Path] = None, nj: int = 1) -> Tuple[List[str], np.ndarray]:
    """The speaker-normalized eGeMAPS functionals of every utterance of a data dir.

    Args:
        data_dir: The data dir (wav.scp, utt2spk).
        cache: An ``.npz`` of the raw functionals of the set (``utts``,
            ``feats``), reused when it holds exactly the set's utterances and
            is newer than its ``wav.scp`` and ``segments``; written otherwise.
        nj: Worker processes for extraction.

    Returns:
        The utterance ids (sorted) and their (U, 88) normalized functionals.

    Raises:
        DataError: If the data dir is unreadable or the cache is corrupt.
    """
    data = DataDir.load(data_dir, allow_empty_text=True)
    utts = data.utt_ids
    raw: Optional[Dict[str, np.ndarray]] = None
    if cache is not None and cache.is_file():
        sources = [p for p in (data_dir / "wav.scp", data_dir / "segments") if p.is_file()]
        if all(cache.stat().st_mtime >= p.stat().st_mtime for p in sources):
            try:
                with np.load(cache) as npz:
                    cached_utts, feats = [str(u) for u in npz["utts"]], npz["feats"]
            except (OSError, KeyError, ValueError) as exc:
                raise DataError(cache, None, f"not a functionals cache ({exc}); delete it") from None
            if cached_utts == utts and feats.shape == (len(utts), NUM_EGEMAPS):
                raw = dict(zip(utts, feats))
                logger.info("eGeMAPS functionals of %d utterances from %s", len(utts), cache)
    if raw is None:
        logger.info("extracting eGeMAPS functionals of %d utterances of %s (%d jobs)", len(utts), data_dir, nj)
        raw = functional_table(data, utts, nj=nj)
        if cache is not None:
            from ent.utils.fileio import atomic_write

            with atomic_write(cache, "wb") as fh:
                np.savez(fh, utts=np.array(utts), feats=np.stack([raw[u] for u in utts]))
    norm = speaker_znorm(raw, data.utt2spk)
    return utts, np.stack([norm[u] for u in utts]).astype(np.float64)
