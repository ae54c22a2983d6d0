"""On-disk cache of the hidden states of a frozen pretrained speech model.

A frozen wav2vec 2.0 / HuBERT / WavLM model gives the same hidden states for
an utterance in every epoch; :func:`extract_ssl_features` (the CLI
``python -m ent.bin.extract_ssl_features``, stage 5 of ``ent.sh``) computes
them once and :class:`~ent.features.ssl.SSLFrontend` with ``cache_dir`` reads
them instead of running the model.

Layout of a cache directory::

    manifest.json        format, fingerprint and one entry per waveform
    feats/ab/<sha1>.npy  (L, T, D) hidden states of one waveform

Entries are keyed by the SHA-1 of the waveform's float32 samples
(:func:`waveform_key`), because a model frontend sees waveforms, not
utterance ids: the key is computed from the same samples the data loader
gives the model, so any audio that differs (speed perturbation, another
segmentation) simply misses the cache. Each entry also records the utterance
ids it was extracted for (for people reading the manifest), the number of
samples and the array shape; shapes are checked again on every load.

The ``fingerprint`` identifies what was computed: model type, a hash of
``config.json`` and of the weight files, the number and size of hidden
states, the compute dtype, waveform normalization and the convolutional
frame arithmetic. A frontend refuses a cache whose fingerprint differs from
its own, naming the differing fields. Arrays are stored in the dtype the
model computed in (``float32`` unless the frontend runs in ``float16`` /
``bfloat16``; ``bfloat16`` is stored as its raw 16-bit patterns), so cached
features equal recomputed ones exactly (on the same device; a frontend with
``batching: mask`` computes a whole batch at once, equal up to float rounding). Sizes: 13 x 768 values per 20 ms
frame for a base model, about 2 MB per second of audio in float32.

Files and the manifest are written atomically; an interrupted extraction
resumes where it stopped (the manifest is saved every ``save_every``
utterances).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Protocol, Sequence, Union

import numpy as np
import torch
from tqdm import tqdm

from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
CACHE_FORMAT = "ent-ssl-cache/1"
MANIFEST = "manifest.json"
_STORED_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": np.int16}


def waveform_key(wave: Union[torch.Tensor, np.ndarray]) -> str:
    """SHA-1 of a waveform's samples as float32 (the cache key).

    Args:
        wave: (N,) waveform (tensor on any device, or array).
    """
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().to("cpu", torch.float32).contiguous().numpy()
    arr = np.ascontiguousarray(wave, dtype=np.float32)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {arr.shape}")
    return hashlib.sha1(arr.tobytes()).hexdigest()


def file_sha1(path: PathLike, chunk: int = 1 << 22) -> str:
    """SHA-1 of a file's bytes."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


class SSLFeatureCache:
    """A cache directory: its manifest in memory, and array reads and writes.

    Use :meth:`open` to read an existing cache and :meth:`open_or_create` to
    extract into one.

    Args:
        cache_dir: The directory.
        fingerprint: What the hidden states were computed with (see the module
            docstring).
        entries: ``{key: {"file", "num_samples", "shape", "utt_ids"}}``.
    """

    def __init__(self, cache_dir: PathLike, fingerprint: Dict[str, Any],
                 entries: Optional[Dict[str, Dict[str, Any]]] = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.fingerprint = dict(fingerprint)
        self.entries: Dict[str, Dict[str, Any]] = dict(entries or {})
        dtype = self.fingerprint.get("dtype", "float32")
        if dtype not in _STORED_DTYPES:
            raise ValueError(f"unsupported cache dtype {dtype!r}; valid: {sorted(_STORED_DTYPES)}")
        self.dtype = dtype

    # ----------------------------------------------------------------- opening
    @staticmethod
    def exists(cache_dir: PathLike) -> bool:
        """Whether ``cache_dir`` holds a manifest."""
        return (Path(cache_dir) / MANIFEST).is_file()

    @classmethod
    def open(cls, cache_dir: PathLike, fingerprint: Dict[str, Any]) -> "SSLFeatureCache":
        """Open an existing cache and check that it was made with ``fingerprint``.

        Raises:
            DataError: If the manifest is missing, malformed or its fingerprint
                differs (naming the differing fields).
        """
        manifest = Path(cache_dir) / MANIFEST
        if not manifest.is_file():
            raise DataError(
                manifest, None,
                "SSL feature cache not found: extract it first with `python -m "
                "ent.bin.extract_ssl_features --config <train config> --data-dir <dirs>` (ent.sh "
                "stage 5 with --ssl_cache_configs), or remove frontend_conf.cache_dir",
            )
        data = _read_manifest(manifest)
        diff = _fingerprint_diff(data["fingerprint"], fingerprint)
        if diff:
            raise DataError(
                manifest, None,
                "SSL feature cache was extracted with other settings ("
                + "; ".join(diff) + "): extract it again (--force) or point cache_dir elsewhere",
            )
        return cls(cache_dir, data["fingerprint"], data["entries"])

    @classmethod
    def open_or_create(cls, cache_dir: PathLike, fingerprint: Dict[str, Any],
                       force: bool = False) -> "SSLFeatureCache":
        """Open a cache to add to, or start an empty one.

        Args:
            cache_dir: The directory (created when missing).
            fingerprint: The extracting frontend's fingerprint.
            force: Start afresh even when a cache with another fingerprint
                exists there (its entries are dropped; array files are
                overwritten as they are extracted again).

        Raises:
            DataError: If a cache with another fingerprint exists and not ``force``.
        """
        manifest = Path(cache_dir) / MANIFEST
        if manifest.is_file() and not force:
            return cls.open(cache_dir, fingerprint)
        return cls(cache_dir, fingerprint)

    # ------------------------------------------------------------------ access
    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def path_of(self, key: str) -> Path:
        """Array file of an entry."""
        return self.cache_dir / self.entries[key]["file"]

    def load(self, key: str, num_samples: int, expected_shape: Sequence[int]) -> torch.Tensor:
        """Hidden states of one waveform, with shape checks.

        Args:
            key: :func:`waveform_key` of the waveform.
            num_samples: Its length N (must match the entry's).
            expected_shape: (L, T, D) the frontend expects for N samples.

        Returns:
            (L, T, D) tensor in the cache dtype, on the CPU.

        Raises:
            KeyError: If the key is not cached.
            DataError: On a missing file or a length/shape mismatch, naming the file.
        """
        entry = self.entries[key]
        path = self.cache_dir / entry["file"]
        expected = [int(s) for s in expected_shape]
        if int(entry["num_samples"]) != int(num_samples):
            raise DataError(path, None, f"cached for {entry['num_samples']} samples, asked for {num_samples}")
        if list(entry["shape"]) != expected:
            raise DataError(path, None, f"manifest shape {list(entry['shape'])} != expected {expected}")
        try:
            arr = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise DataError(path, None, "cached features missing (extract the cache again)") from None
        except (OSError, ValueError) as exc:
            raise DataError(path, None, f"unreadable cached features: {exc}") from None
        if list(arr.shape) != expected:
            raise DataError(path, None, f"array shape {list(arr.shape)} != expected {expected}")
        if arr.dtype != _STORED_DTYPES[self.dtype]:
            raise DataError(path, None, f"array dtype {arr.dtype} != cache dtype {self.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(arr))
        return tensor.view(torch.bfloat16) if self.dtype == "bfloat16" else tensor

    def add(self, key: str, hidden: torch.Tensor, num_samples: int, utt_id: Optional[str] = None) -> None:
        """Write one waveform's hidden states (atomically) and record the entry.

        Args:
            key: :func:`waveform_key` of the waveform.
            hidden: (L, T, D) hidden states in the cache dtype.
            num_samples: The waveform's length N.
            utt_id: Utterance id, recorded for readers of the manifest.
        """
        want = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[self.dtype]
        if hidden.dim() != 3 or hidden.dtype != want:
            raise ValueError(f"expected (L, T, D) {want}, got {tuple(hidden.shape)} {hidden.dtype}")
        hidden = hidden.detach().cpu().contiguous()
        if self.dtype == "bfloat16":
            hidden = hidden.view(torch.int16)
        rel = f"feats/{key[:2]}/{key}.npy"
        with atomic_write(self.cache_dir / rel, "wb") as fh:
            np.save(fh, hidden.numpy(), allow_pickle=False)
        self.entries[key] = {
            "file": rel, "num_samples": int(num_samples), "shape": list(hidden.shape),
            "utt_ids": [utt_id] if utt_id is not None else [],
        }

    def note_utterance(self, key: str, utt_id: str) -> None:
        """Record another utterance id for an already cached waveform."""
        ids: List[str] = self.entries[key].setdefault("utt_ids", [])
        if utt_id not in ids:
            ids.append(utt_id)

    def save(self) -> None:
        """Write ``manifest.json`` atomically."""
        data = {"format": CACHE_FORMAT, "fingerprint": self.fingerprint, "entries": self.entries}
        with atomic_write(self.cache_dir / MANIFEST) as fh:
            json.dump(data, fh, indent=1, sort_keys=True, allow_nan=False)
            fh.write("\n")


def _read_manifest(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, None, f"unreadable SSL cache manifest: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        raise DataError(path, None, f"not an ENT SSL feature cache manifest (format {CACHE_FORMAT!r} expected)")
    if not isinstance(data.get("fingerprint"), dict) or not isinstance(data.get("entries"), dict):
        raise DataError(path, None, "manifest lacks 'fingerprint' or 'entries'")
    return data


def _fingerprint_diff(stored: Dict[str, Any], wanted: Dict[str, Any]) -> List[str]:
    """Human-readable differences between two fingerprints (JSON-normalized)."""
    a, b = json.loads(json.dumps(stored)), json.loads(json.dumps(wanted))
    return [
        f"{k}: cache {a.get(k)!r}, frontend {b.get(k)!r}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


class CacheableFrontend(Protocol):
    """What :func:`extract_ssl_features` needs of a frontend (:class:`~ent.features.ssl.SSLFrontend` has it).

    A protocol rather than an import of :mod:`ent.features.ssl`, which itself
    imports this module to read the cache.
    """

    finetune: bool

    def cache_fingerprint(self) -> Dict[str, Any]:
        """What the cached hidden states depend on (see the module docstring)."""

    def eval(self) -> Any:
        """Switch to evaluation mode (``torch.nn.Module.eval``)."""

    def utterance_hidden_states(self, wave: torch.Tensor) -> torch.Tensor:
        """(L, T, D) hidden states of one waveform ``wave`` (N,)."""


def extract_ssl_features(
    frontend: CacheableFrontend,
    data_dirs: Iterable[PathLike],
    cache_dir: PathLike,
    device: Union[str, torch.device] = "cpu",
    force: bool = False,
    save_every: int = 200,
) -> Dict[str, int]:
    """Compute and store the hidden states of every utterance of some data dirs.

    Utterances already in the cache (same waveform, same fingerprint) are
    skipped, so the function resumes an interrupted run and is cheap to rerun.

    Args:
        frontend: A frozen :class:`~ent.features.ssl.SSLFrontend` (its
            pretrained model, dtype and waveform normalization define what is
            stored).
        data_dirs: Kaldi-style data directories.
        cache_dir: Output directory.
        device: Where the model runs.
        force: Start a new cache even if one with another fingerprint exists.
        save_every: Save the manifest after this many new entries.

    Returns:
        ``{"utterances", "extracted", "cached"}`` counts.

    Raises:
        DataError: On a malformed data directory, unreadable audio, or an
            existing cache with another fingerprint (without ``force``).
    """
    from ent.data.datadir import DataDir

    if frontend.finetune:
        raise ValueError("only a frozen frontend (finetune: false) can be cached")
    cache = SSLFeatureCache.open_or_create(cache_dir, frontend.cache_fingerprint(), force=force)
    frontend.eval()
    dirs = [DataDir.load(d) for d in data_dirs]
    total = sum(len(d.utt_ids) for d in dirs)
    counts = {"utterances": 0, "extracted": 0, "cached": 0}
    pending = 0
    progress = tqdm(total=total, desc="ssl features", unit="utt", disable=None)
    try:
        for data in dirs:
            for utt in data.utt_ids:
                wave = torch.from_numpy(np.ascontiguousarray(data.load_audio(utt), dtype=np.float32))
                key = waveform_key(wave)
                counts["utterances"] += 1
                if key in cache and cache.path_of(key).is_file():
                    cache.note_utterance(key, utt)
                    counts["cached"] += 1
                else:
                    hidden = frontend.utterance_hidden_states(wave.to(device))
                    cache.add(key, hidden, wave.numel(), utt)
                    counts["extracted"] += 1
                    pending += 1
                    if pending >= save_every:
                        cache.save()
                        pending = 0
                progress.update(1)
    finally:
        progress.close()
        cache.save()
    logger.info(
        "%s: %d utterances, %d extracted, %d already cached (%d entries)",
        cache_dir, counts["utterances"], counts["extracted"], counts["cached"], len(cache),
    )
    return counts
