"""Cepstral mean and variance normalization (CMVN): global and per speaker.

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

Per-speaker CMVN (Kaldi's ``compute-cmvn-stats --spk2utt`` followed by
``apply-cmvn --utt2spk``): :func:`speaker_cmvn` gives every utterance the
mean and standard deviation of all frames of its speaker (``utt2spk``) in
its data directory, a ``(2, D)`` float32 array (:attr:`SpeakerStats.cmvn`); the model subtracts and
divides by them instead of the global statistics (``speaker_cmvn: true`` in
a training config). This removes each voice's habitual level and spectral
envelope, which speech emotion recognition otherwise confuses with emotion
on unseen speakers. The statistics of a set are computed without labels,
from its audio only, and cached in the data directory as
``spk_cmvn.npz`` (recomputed when the audio list, the speakers or the
frontend change).

With ``prosody=True`` (a model whose utterance head reads prosody
functionals, :mod:`ent.features.prosody`) the same pass also computes every
utterance's functionals, and each utterance's :class:`SpeakerStats` also
holds the mean and standard deviation of the ``K`` functionals over the
utterances of its speaker, ``(2, K)`` (:attr:`SpeakerStats.prosody`), which
normalize the functionals the head reads.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from espnet2.layers.global_mvn import GlobalMVN
from tqdm import tqdm

from ent.data.datadir import DataDir
from ent.data.mixing import MIX_PARTS
from ent.features.fbank import Fbank
from ent.features.prosody import NUM_PROSODY, VAR_FLOOR, normalize_prosody, prosody_functionals
from ent.utils.fileio import atomic_write, read_table

PathLike = Union[str, Path]
CHUNK_SIZE = 16

logger = logging.getLogger(__name__)

Stats = Tuple[int, np.ndarray, np.ndarray]
"""Frame count, sum and sum of squares (float64) of the features."""

UttFunctionals = Optional[np.ndarray]
"""Prosody functionals of each utterance, (N, K) float64, or None when not asked for."""


class SpeakerStats(NamedTuple):
    """The normalization statistics of one speaker, as a model reads them (:func:`speaker_cmvn`).

    Attributes:
        cmvn: Mean (row 0) and standard deviation (row 1) of the speaker's
            feature frames, for per-speaker CMVN. (2, D) float32
        prosody: Mean and standard deviation of the speaker's utterance
            prosody functionals (:mod:`ent.features.prosody`), for a head with
            a prosody expert; None when not computed. (2, K) float32
    """

    cmvn: np.ndarray
    prosody: Optional[np.ndarray] = None


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
    stats, _ = accumulate_stats_and_prosody(data, fbank, utt_ids, prosody=False)
    return stats


def accumulate_stats_and_prosody(
    data: DataDir, fbank: Fbank, utt_ids: Sequence[str], prosody: bool
) -> Tuple[Stats, UttFunctionals]:
    """:func:`accumulate_stats`, and with ``prosody`` each utterance's prosody functionals (N, K)."""
    fbank = copy.deepcopy(fbank).eval()  # no dither; the caller's module keeps its mode
    count = 0
    total = np.zeros(fbank.output_size(), dtype=np.float64)
    total_sq = np.zeros(fbank.output_size(), dtype=np.float64)
    functionals: List[np.ndarray] = []
    with torch.no_grad():
        for utt in utt_ids:
            wave = torch.from_numpy(data.load_audio(utt))
            feats = fbank.extract(wave)
            if prosody:
                lens = torch.tensor([feats.shape[0]])
                functionals.append(prosody_functionals(feats[None], lens, fbank.n_mels)[0].double().numpy())
            feats = feats.double().numpy()
            count += feats.shape[0]
            total += feats.sum(axis=0)
            total_sq += (feats * feats).sum(axis=0)
    funcs = (np.stack(functionals) if functionals else np.zeros((0, NUM_PROSODY))) if prosody else None
    return (count, total, total_sq), funcs


_worker_state: Dict[str, object] = {}


def _init_worker(data_dir: str, fbank: Fbank, prosody: bool) -> None:
    torch.set_num_threads(1)
    _worker_state["data"] = DataDir.load(data_dir)
    _worker_state["fbank"] = fbank
    _worker_state["prosody"] = prosody


def _worker_chunk(utt_ids: List[str]) -> Tuple[Stats, UttFunctionals]:
    return accumulate_stats_and_prosody(
        _worker_state["data"], _worker_state["fbank"], utt_ids, bool(_worker_state["prosody"])  # type: ignore[arg-type]
    )


def _accumulate_chunks(
    data: DataDir, fbank: Fbank, chunks: List[List[str]], nj: int, desc: str, prosody: bool = False
) -> List[Tuple[Stats, UttFunctionals]]:
    """:func:`accumulate_stats_and_prosody` of each chunk of utterances, in chunk order, in ``nj`` processes."""
    results: List[Tuple[Stats, UttFunctionals]] = []
    progress = tqdm(total=sum(len(c) for c in chunks), desc=desc, unit="utt", disable=None)
    if nj <= 1:
        for chunk in chunks:
            results.append(accumulate_stats_and_prosody(data, fbank, chunk, prosody))
            progress.update(len(chunk))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(nj, mp_context=ctx, initializer=_init_worker,
                                 initargs=(str(data.path), fbank, prosody)) as pool:
            # map keeps chunk order, so the float sums do not depend on scheduling.
            for chunk, res in zip(chunks, pool.map(_worker_chunk, chunks)):
                results.append(res)
                progress.update(len(chunk))
    progress.close()
    return results


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
    results = [stats for stats, _ in _accumulate_chunks(data, fbank, chunks, nj, "cmvn stats")]
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


def _speaker_of(data: DataDir, utt: str) -> str:
    """The utterance's speaker; an utterance without ``utt2spk`` entry is its own speaker."""
    return data.utt2spk.get(utt, utt) if data.utt2spk else utt


def _speaker_chunks(data: DataDir, utt_ids: Sequence[str]) -> List[Tuple[str, List[str]]]:
    """``(speaker, chunk)`` jobs of at most CHUNK_SIZE utterances, speakers sorted, each chunk one speaker's."""
    groups: Dict[str, List[str]] = {}
    for utt in utt_ids:
        groups.setdefault(_speaker_of(data, utt), []).append(utt)
    return [(key, utts[i : i + CHUNK_SIZE]) for key, utts in sorted(groups.items())
            for i in range(0, len(utts), CHUNK_SIZE)]


def mixed_utterances(data: DataDir) -> "set[str]":
    """The mixes of a data directory: the keys of its ``mix_parts`` (:mod:`ent.data.mixing`), if any."""
    path = Path(data.path) / MIX_PARTS
    return {entry.key for entry in read_table(path)} if path.is_file() else set()


def _counted_utterances(data: DataDir, utt_ids: Sequence[str]) -> List[str]:
    """The utterances whose frames make their speaker's statistics: all but the mixes (see
    :func:`compute_speaker_cmvn_stats`)."""
    mixed = mixed_utterances(data)
    if not mixed:
        return list(utt_ids)
    with_own = {_speaker_of(data, u) for u in utt_ids if u not in mixed}
    return [u for u in utt_ids if u not in mixed or _speaker_of(data, u) not in with_own]


def _speaker_stats_key(data: DataDir, fbank: Fbank, utts: Sequence[str]) -> str:
    """What the cached speaker statistics depend on: frontend, utterances, audio files, speakers,
    and which utterances count (not the mixes)."""
    digest = hashlib.sha256(repr(fbank).encode())
    counted = set(_counted_utterances(data, utts))
    for utt in utts:
        seg = data.segments.get(utt) if data.segments is not None else None
        rec = seg.recording if seg is not None else utt
        audio = data.wav_scp.get(rec, "")
        try:  # a rewritten file at the same path changes the key too
            st = os.stat(audio)
            audio = f"{audio} {st.st_size} {st.st_mtime_ns}"
        except OSError:
            pass
        digest.update(f"{utt} {_speaker_of(data, utt)} {audio} {seg} {utt in counted}\n".encode())
    return digest.hexdigest()


SpeakerTotals = Dict[str, Tuple[Stats, Optional[Stats]]]
"""Per speaker: the feature :data:`Stats` over its frames and, with prosody,
the same sums over its utterances' prosody functionals (count = utterances)."""


def compute_speaker_cmvn_stats(
    data_dir: Union[PathLike, DataDir],
    fbank: Optional[Fbank] = None,
    nj: int = 1,
    utt_ids: Optional[Sequence[str]] = None,
    prosody: bool = False,
) -> Tuple[SpeakerTotals, Optional[Dict[str, np.ndarray]]]:
    """Frame count, sum and sum of squares of the features of every speaker.

    Args:
        data_dir: Kaldi-style data directory (path or loaded).
        fbank: The frontend (default ``Fbank()``); used in eval mode.
        nj: Number of worker processes.
        utt_ids: The utterances to use (default: all, the keys of ``text``).
            Mixes (the utterances of the directory's ``mix_parts``, joined
            from other utterances by :mod:`ent.data.mixing`) do not count
            towards their speaker's statistics, which describe the speaker's
            own utterances (train and test alike), unless the speaker has no
            other utterance among ``utt_ids``.
        prosody: Also sum each speaker's utterance prosody functionals
            (:mod:`ent.features.prosody`; needs ``fbank.pitch``).

    Returns:
        ``{speaker: ((count, sum (D,), sum_square (D,)), prosody)}``, float64
        sums; ``prosody`` is ``(utterances, sum (K,), sum_square (K,))`` or None.
        Second, with ``prosody``, every utterance's functionals ``{utt: (K,)
        float64}`` (else None).

    Raises:
        DataError: On unreadable audio.
        ValueError: If a speaker has no feature frame.
    """
    fbank = Fbank() if fbank is None else fbank
    if prosody and not fbank.pitch:
        raise ValueError("prosody functionals need pitch features (frontend_conf: {pitch: true})")
    data = data_dir if isinstance(data_dir, DataDir) else DataDir.load(data_dir, allow_empty_text=True)
    utt_ids = data.utt_ids if utt_ids is None else list(utt_ids)
    counted = _counted_utterances(data, utt_ids)
    # The mixes left out of the totals still need their functionals (the prosody table).
    extra = [u for u in utt_ids if u not in set(counted)] if prosody else []
    # Chunks never mix speakers, so each result adds to exactly one speaker.
    jobs = _speaker_chunks(data, counted)
    extra_jobs = _speaker_chunks(data, extra)
    totals: SpeakerTotals = {}
    functionals: Optional[Dict[str, np.ndarray]] = {} if prosody else None
    results = _accumulate_chunks(
        data, fbank, [c for _, c in jobs + extra_jobs], nj, "speaker cmvn stats", prosody
    )
    for i, ((spk, chunk), (res, funcs)) in enumerate(zip(jobs + extra_jobs, results)):
        pros: Optional[Stats] = None
        if funcs is not None:
            pros = (funcs.shape[0], funcs.sum(axis=0), (funcs * funcs).sum(axis=0))
            assert functionals is not None
            functionals.update(zip(chunk, funcs))
        if i >= len(jobs):
            continue
        if spk in totals:
            (c, s1, s2), prev = totals[spk]
            res = (c + res[0], s1 + res[1], s2 + res[2])
            if pros is not None and prev is not None:
                pros = (prev[0] + pros[0], prev[1] + pros[1], prev[2] + pros[2])
        totals[spk] = (res, pros)
    for spk, ((count, _, _), _) in totals.items():
        if count == 0:
            raise ValueError(f"{data.path}: speaker '{spk}' has no feature frames")
    return totals, functionals


def _mean_std(stats: Stats, eps: float) -> np.ndarray:
    """(2, D) float32 mean and floored standard deviation of summed statistics."""
    count, total, total_sq = stats
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, eps))
    return np.stack([mean, std]).astype(np.float32)


def speaker_cmvn(
    data_dir: Union[PathLike, DataDir],
    fbank: Optional[Fbank] = None,
    nj: int = 1,
    cache: bool = True,
    eps: float = 1.0e-20,
    utt_ids: Optional[Sequence[str]] = None,
    prosody: bool = False,
) -> Dict[str, SpeakerStats]:
    """Per-utterance normalization statistics from the utterance's speaker.

    The per-speaker sums are cached in ``<data_dir>/spk_cmvn.npz`` (written
    atomically; a read-only data directory is recomputed each time) together
    with a key of the frontend, the utterances, their audio entries and
    speakers, and are recomputed when the key changes (or when prosody sums
    are asked for and the cache has none, or lacks the utterances'
    functionals that :func:`normalized_prosody_table` reads from it).

    Args:
        data_dir: Kaldi-style data directory (path or loaded).
        fbank: The frontend (default ``Fbank()``).
        nj: Worker processes for computing the statistics.
        cache: Read and write ``spk_cmvn.npz``.
        eps: Variance floor (as :func:`load_cmvn_stats`).
        utt_ids: The utterances (default: all, the keys of ``text``); one
            without ``utt2spk`` entry is its own speaker.
        prosody: Also give the speaker's mean and standard deviation of the
            utterance prosody functionals (module docstring; the variance
            floor is :data:`ent.features.prosody.VAR_FLOOR`).

    Returns:
        ``{utt: SpeakerStats}`` of the utterance's speaker (``prosody`` None
        without ``prosody``).
    """
    fbank = Fbank() if fbank is None else fbank
    data = data_dir if isinstance(data_dir, DataDir) else DataDir.load(data_dir, allow_empty_text=True)
    utt_ids = data.utt_ids if utt_ids is None else list(utt_ids)
    totals, _ = _speaker_totals(data, fbank, nj, utt_ids, prosody, cache)
    per_speaker: Dict[str, SpeakerStats] = {}
    for spk, (stats, pros) in totals.items():
        if prosody:
            assert pros is not None
        per_speaker[spk] = SpeakerStats(_mean_std(stats, eps), _mean_std(pros, VAR_FLOOR) if prosody else None)
    return {utt: per_speaker[_speaker_of(data, utt)] for utt in utt_ids}


def _speaker_totals(
    data: DataDir, fbank: Fbank, nj: int, utt_ids: List[str], prosody: bool, cache: bool,
) -> Tuple[SpeakerTotals, Optional[Dict[str, np.ndarray]]]:
    """:func:`compute_speaker_cmvn_stats` through the cache ``<data>/spk_cmvn.npz`` (see :func:`speaker_cmvn`).

    With ``prosody`` the cache also keeps every utterance's functionals, so
    that :func:`normalized_prosody_table` and :func:`speaker_cmvn` read the
    audio once between them.
    """
    key = _speaker_stats_key(data, fbank, utt_ids)
    path = Path(data.path) / "spk_cmvn.npz"
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                # a cache with prosody sums serves a request without them too
                if str(f["key"]) == key and (not prosody or "functionals" in f.files):
                    totals: SpeakerTotals = {}
                    for i, spk in enumerate(f["speakers"]):
                        pros = None
                        if prosody:
                            pros = (int(f["prosody_count"][i]), f["prosody_sum"][i], f["prosody_sum_square"][i])
                        totals[str(spk)] = ((int(f["count"][i]), f["sum"][i], f["sum_square"][i]), pros)
                    functionals = dict(zip(utt_ids, f["functionals"])) if prosody else None
                    return totals, functionals
        except (OSError, KeyError, ValueError) as exc:
            logger.warning("%s: unreadable (%s); recomputing", path, exc)
    totals, functionals = compute_speaker_cmvn_stats(data, fbank, nj, utt_ids, prosody=prosody)
    if cache:
        speakers = sorted(totals)
        arrays = dict(
            key=np.asarray(key), speakers=np.asarray(speakers),
            count=np.asarray([totals[s][0][0] for s in speakers], dtype=np.int64),
            sum=np.stack([totals[s][0][1] for s in speakers]),
            sum_square=np.stack([totals[s][0][2] for s in speakers]),
        )
        if prosody:
            assert functionals is not None
            arrays.update(
                prosody_count=np.asarray([totals[s][1][0] for s in speakers], dtype=np.int64),
                prosody_sum=np.stack([totals[s][1][1] for s in speakers]),
                prosody_sum_square=np.stack([totals[s][1][2] for s in speakers]),
                functionals=np.stack([functionals[u] for u in utt_ids]),
            )
        try:
            with atomic_write(path, "wb") as fh:
                np.savez(fh, **arrays)
            logger.info("wrote per-speaker CMVN stats of %d speakers to %s", len(speakers), path)
        except OSError as exc:
            logger.warning("could not cache speaker CMVN stats in %s (%s)", path, exc)
    return totals, functionals


def normalized_prosody_table(
    data_dir: Union[PathLike, DataDir],
    fbank: Fbank,
    per_speaker: bool = True,
    nj: int = 1,
    utt_ids: Optional[Sequence[str]] = None,
    cache: bool = True,
) -> Dict[str, np.ndarray]:
    """Utterances' prosody functionals, normalized as the model normalizes them in training.

    The functionals (:func:`ent.features.prosody.prosody_functionals`) of
    each utterance are z-normalized with the mean and standard deviation of
    the functionals over all utterances of its speaker in the data directory
    (``per_speaker``: the statistics :func:`speaker_cmvn` gives with
    ``prosody=True``, which the model reads in training), or over all
    utterances of the directory. The statistics pass is the one of
    :func:`speaker_cmvn`, and shares its cache.

    Args:
        data_dir: Kaldi-style data directory (path or loaded).
        fbank: The frontend (with pitch); used in eval mode.
        per_speaker: Normalize per speaker (else globally).
        nj: Worker processes.
        utt_ids: The utterances to return (default: all); a subset of the
            directory's (the keys of ``text``).
        cache: Read and write ``spk_cmvn.npz``.

    Returns:
        ``{utt: (K,) float32}``.
    """
    if not fbank.pitch:
        raise ValueError("prosody functionals need pitch features (frontend_conf: {pitch: true})")
    data = data_dir if isinstance(data_dir, DataDir) else DataDir.load(data_dir, allow_empty_text=True)
    everyone = data.utt_ids
    utt_ids = everyone if utt_ids is None else list(utt_ids)
    unknown = sorted(set(utt_ids) - set(everyone))
    if unknown:
        raise ValueError(f"{data.path}: utterance '{unknown[0]}' is not in its text")
    totals, functionals = _speaker_totals(data, fbank, nj, everyone, prosody=True, cache=cache)
    assert functionals is not None

    def mean_std(pros: Stats) -> Tuple[torch.Tensor, torch.Tensor]:
        mean, std = _mean_std(pros, VAR_FLOOR).astype(np.float64)
        return torch.from_numpy(mean), torch.from_numpy(std)

    if per_speaker:
        stats = {spk: mean_std(pros) for spk, (_, pros) in totals.items() if pros is not None}
    else:
        parts = [pros for _, pros in totals.values() if pros is not None]
        pooled = mean_std((sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts)))
    out: Dict[str, np.ndarray] = {}
    for utt in utt_ids:
        mean, std = stats[_speaker_of(data, utt)] if per_speaker else pooled
        z = normalize_prosody(torch.from_numpy(np.asarray(functionals[utt], dtype=np.float64))[None], mean, std)
        out[utt] = z[0].float().numpy()
    return out


def apply_cmvn(feats: torch.Tensor, feats_lens: torch.Tensor, cmvn: torch.Tensor) -> torch.Tensor:
    """Normalize with per-utterance statistics; padded frames become 0 (as GlobalMVN).

    Args:
        feats: (B, T, D); feats_lens: (B,); cmvn: (B, 2, D) mean and std.

    Returns:
        (B, T, D) ``(feats - mean) / std``.
    """
    mask = (torch.arange(feats.size(1), device=feats.device)[None, :] < feats_lens[:, None]).unsqueeze(-1)
    out = (feats - cmvn[:, 0:1].to(feats.dtype)) / cmvn[:, 1:2].to(feats.dtype)
    return out.masked_fill(~mask, 0.0)
