"""Global cepstral mean and variance normalization (CMVN).

:func:`compute_cmvn_stats` accumulates, over the utterances of a data
directory, the frame count and the per-dimension sum and sum of squares of
the features, and writes them in ESPnet's ``feats_stats.npz`` layout:

============  ==================  ======================================
key           shape / dtype       meaning
============  ==================  ======================================
count         () int64            number of frames
sum           (D,) float64        sum of the features over all frames
sum_square    (D,) float64        sum of the squared features
============  ==================  ======================================

The model normalizes with ESPnet's :class:`espnet2.layers.global_mvn.GlobalMVN`,
which reads that file (``mean = sum / count``,
``std = sqrt(max(sum_square / count - mean², eps))``);
:func:`build_global_cmvn` builds it. Features are computed by the frontend in
evaluation mode (no dither), i.e. exactly what the model sees at test time.
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from espnet2.layers.global_mvn import GlobalMVN
from tqdm import tqdm

from ent.data.datadir import DataDir
from ent.features.fbank import Fbank
from ent.utils.fileio import atomic_write

PathLike = Union[str, Path]
CHUNK_SIZE = 16

logger = logging.getLogger(__name__)

Stats = Tuple[int, np.ndarray, np.ndarray]


def select_utterances(utt_ids: Sequence[str], max_utts: Optional[int]) -> List[str]:
    """All utterances, or ``max_utts`` of them evenly spread over the sorted list (deterministic)."""
    utts = sorted(utt_ids)
    if max_utts is None or max_utts >= len(utts):
        return utts
    if max_utts <= 0:
        raise ValueError(f"max_utts must be positive, not {max_utts}")
    idx = np.linspace(0, len(utts) - 1, num=max_utts).round().astype(int)
    return [utts[i] for i in sorted(set(idx.tolist()))]


def accumulate_stats(data: DataDir, fbank: Fbank, utt_ids: Sequence[str]) -> Stats:
    """Frame count, sum and sum of squares (float64) of the features of ``utt_ids``."""
    fbank = copy.deepcopy(fbank).eval()  # no dither; the caller's module keeps its mode
    count = 0
    total = np.zeros(fbank.output_size(), dtype=np.float64)
    total_sq = np.zeros(fbank.output_size(), dtype=np.float64)
    with torch.no_grad():
        for utt in utt_ids:
            wave = torch.from_numpy(data.load_audio(utt))
            feats = fbank.extract(wave).double().numpy()
            count += feats.shape[0]
            total += feats.sum(axis=0)
            total_sq += (feats * feats).sum(axis=0)
    return count, total, total_sq


_worker_state: Dict[str, object] = {}


def _init_worker(data_dir: str, fbank: Fbank) -> None:
    torch.set_num_threads(1)
    _worker_state["data"] = DataDir.load(data_dir)
    _worker_state["fbank"] = fbank


def _worker_chunk(utt_ids: List[str]) -> Stats:
    return accumulate_stats(_worker_state["data"], _worker_state["fbank"], utt_ids)  # type: ignore[arg-type]


def compute_cmvn_stats(
    data_dir: PathLike,
    fbank: Optional[Fbank] = None,
    out_path: Optional[PathLike] = None,
    max_utts: Optional[int] = None,
    nj: int = 1,
) -> Dict[str, np.ndarray]:
    """Accumulate global feature statistics over a data directory.

    Args:
        data_dir: Kaldi-style data directory.
        fbank: The frontend (default: ``Fbank()``, 80-dim); used in eval mode.
        out_path: Where to write the ``.npz`` (atomically); ``None``: do not
            write.
        max_utts: Use at most this many utterances, evenly spread over the
            sorted utterance list (default: all).
        nj: Number of worker processes.

    Returns:
        ``{"count": int64 (), "sum": float64 (D,), "sum_square": float64 (D,)}``.

    Raises:
        DataError: On a malformed data directory or unreadable audio.
        ValueError: If no utterance gives any frame.
    """
    fbank = Fbank() if fbank is None else fbank
    data = DataDir.load(data_dir)
    utts = select_utterances(data.utt_ids, max_utts)
    chunks = [utts[i : i + CHUNK_SIZE] for i in range(0, len(utts), CHUNK_SIZE)]
    results: List[Stats] = []
    progress = tqdm(total=len(utts), desc="cmvn stats", unit="utt", disable=None)
    if nj <= 1:
        for chunk in chunks:
            results.append(accumulate_stats(data, fbank, chunk))
            progress.update(len(chunk))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(nj, mp_context=ctx, initializer=_init_worker,
                                 initargs=(str(data_dir), fbank)) as pool:
            # map keeps chunk order, so the float sums do not depend on scheduling.
            for chunk, res in zip(chunks, pool.map(_worker_chunk, chunks)):
                results.append(res)
                progress.update(len(chunk))
    progress.close()
    count = sum(r[0] for r in results)
    if count == 0:
        raise ValueError(f"{data_dir}: no feature frames (utterances shorter than one window?)")
    stats = {
        "count": np.asarray(count, dtype=np.int64),
        "sum": np.sum([r[1] for r in results], axis=0),
        "sum_square": np.sum([r[2] for r in results], axis=0),
    }
    if out_path is not None:
        with atomic_write(out_path, "wb") as fh:
            np.savez(fh, **stats)
        logger.info("wrote CMVN stats of %d frames from %d utterances to %s", count, len(utts), out_path)
    return stats


def load_cmvn_stats(path: PathLike, eps: float = 1.0e-20) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (as GlobalMVN computes them) from a stats ``.npz``."""
    with np.load(path) as stats:
        count = stats["count"]
        mean = stats["sum"] / count
        var = stats["sum_square"] / count - mean * mean
    return mean, np.sqrt(np.maximum(var, eps))


def build_global_cmvn(stats_file: PathLike, norm_means: bool = True, norm_vars: bool = True) -> GlobalMVN:
    """ESPnet's GlobalMVN layer reading ``stats_file``.

    Its ``forward(x: (B, T, D), ilens: (B,)) -> (x, ilens)`` subtracts the mean,
    zeroes padded frames and divides by the standard deviation. When ``x``
    does not require grad it is modified in place.
    """
    return GlobalMVN(str(stats_file), norm_means=norm_means, norm_vars=norm_vars)
