"""Emotion mixing: same-speaker concatenations with exactly known emotion intervals.

Emotional speech corpora (IEMOCAP, ...) give every utterance one emotion and
no intervals. To train frame-level emotion (emotion diarization, "which
emotion appears when"), ZED (Wang, Ravanelli, Yacoubi, Nfissi, "Speech Emotion
Diarization: Which Emotion Appears When?", ASRU 2023, arXiv:2306.12991) and
ENT (Shen et al., ICASSP 2024, arXiv:2403.19224, the mixing experiment) join
utterances of the *same speaker*, a neutral one with an emotional one, so that
the emotion of every sample of the joined utterance is known.
:func:`mix_data_dir` builds such a corpus from a data directory with
utterance labels (see :mod:`ent.data.datadir` for the format).

Method
------
* **Patterns.** ``ne`` (neutral + emotional), ``en`` (emotional + neutral)
  and ``nen`` (neutral + emotional + neutral, two different neutral
  utterances). A part is *neutral* when its ``utt2emo`` label is the neutral
  class (``neutral``), *emotional* otherwise.
* **How many.** ``round(mix_share * N)`` mixed utterances (rounded half up),
  ``N`` being the number of original utterances of the speakers that may be
  mixed (all speakers, or the ``speakers`` restriction). They are shared out
  among the speakers that can be mixed in proportion to their number of usable
  utterances (largest remainders, ties by speaker id).
* **Which parts.** Per speaker and class (neutral, emotional) the utterances
  are dealt from a shuffled pool without replacement; an exhausted pool is
  refilled with a new shuffle, so every usable utterance is used about equally
  often within its class. A mix's pattern is drawn with ``pattern_weights``
  among the patterns the speaker can form. A draw longer than
  ``max_duration`` is put back at the end of the pools and redrawn (at most
  :data:`MAX_DRAWS` tries, then the mix is skipped and counted); utterances
  that cannot fit in any mix of their speaker are left out beforehand.
  Speakers without a neutral or an emotional utterance get no mix (logged).
  All parts of a mix come from one speaker (asserted).
* **Audio.** The parts are concatenated sample-exactly, with ``gap_s``
  seconds of digital silence (zeros) between them (default none). Every later
  part is scaled to the loudness of the *first* part (``match_loudness``, the
  default), loudness being the
  *active RMS* (:func:`active_rms`): the RMS over the 25 ms frames whose
  energy is within 40 dB of the part's loudest frame, so that leading and
  trailing silence and pauses do not lower a part's measured level (a part
  with no signal keeps gain 1). Clip guard: if the joined peak would exceed
  :data:`PEAK_LIMIT` (0.99), the whole utterance is scaled down to that peak
  (counted as *clip-guarded*). The result is written once, as 16-bit PCM WAV
  at 16 kHz. All input audio must be 16 kHz. Matching removes level
  differences between recordings, but also the emotions' own (angry speech
  is louder than neutral): for the utterances of one speaker recorded alike,
  ``match_loudness=False`` keeps every part's level.

* **Intervals.** By default each part's interval is the whole part. With
  ``trim_db`` the emotional part's interval is its speech only (from the
  first to the end of the last 25 ms frame within ``trim_db`` dB of its
  loudest frame, :func:`speech_span`) and its silence before and after is
  neutral, as diarization references such as ZED's mark the emotional
  speech; the audio is the same either way.

Output directory
----------------
Every original utterance unchanged: its ``wav.scp`` (and ``segments``) line
refers to the original audio, ``text``, ``utt2spk``, ``utt2emo`` and
``utt2dur`` lines are copied verbatim (``utt2dur`` is measured from the audio
headers when the input has none). Its ``emo_segments`` lines are dropped, the
output being meant as a corpus of utterance labels plus the mixes, unless
``keep_intervals``; then they are kept and those utterances are not used as
parts (their utterance label would contradict their intervals).

Each mixed utterance ``<spk>-mix-<pattern>-<nnnnn>`` (``nnnnn`` counts the
speaker's mixes of that pattern from 00001; the id starts with the speaker id
as Kaldi wants, so that sorting by utterance and by speaker agree) has:

=============  ==================================================================
file           line
=============  ==================================================================
wav.scp        ``<mix> <audio_dir>/<mix>.wav``; absolute when every input path is,
               else relative to the current directory (as the input's are)
segments       ``<mix> <mix> 0 <duration>`` (only when the input has segments)
text           the parts' transcripts joined with a space
utt2spk        the speaker
utt2emo        the emotional part's label
utt2dur        the duration (exact, see below)
emo_segments   one line per part, neutral parts included (``neutral`` lines):
               ``<mix> <start> <end> <emotion>``, the part's interval in the
               joined audio
mix_parts      ``<mix> <part-utt-1> <part-utt-2> [<part-utt-3>]`` (new file)
spk2utt        regenerated from ``utt2spk``
=============  ==================================================================

Times of mixed utterances are written exactly: a sample count ``n`` at
16 kHz is ``n / 16000`` s, a decimal with at most 7 digits after the point,
so ``round(t * 16000)`` gives back the boundary sample (and a part's interval
is exactly samples ``[round(start * 16000), round(end * 16000))``). With a gap,
the gap samples lie outside every line (neutral, as everything outside the
lines is). All tables are sorted by key (C locale); ``emo_segments`` lines of
one utterance are in time order.

Determinism and reruns
----------------------
The plan (which parts, which pattern, which id) is drawn in the main process
from ``seed`` (a random stream per speaker, seeded by ``seed`` and the
speaker id), before any audio is read; worker processes only load, scale and
write. The same input tables, options and seed give byte-identical tables and
audio, whatever ``nj``.

The directory is built under a temporary name beside ``out_dir`` (audio
inside ``out_dir`` included) and renamed at the end; its last file is
``.done``, which records the format, the options, where the audio is written
and a SHA-256 of each input table (``wav.scp``, ``text``, ``utt2spk``,
``utt2emo``, ``segments``, ``utt2dur``, ``emo_segments``; the audio itself is
not hashed). A directory whose ``.done`` matches the current call (and whose
mixed audio files exist) is kept; otherwise it is rebuilt, or always with
``force``. A kill midway leaves the previous directory complete or no
directory at all (only a hidden temporary one, and with an ``audio_dir``
outside ``out_dir``, some new audio files there).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm import tqdm

from ent.data.audio import TARGET_SAMPLE_RATE, AudioError, audio_info, write_audio
from ent.data.combine import spk2utt_table
from ent.data.datadir import DataDir
from ent.data.emotions import DEFAULT_EMOTIONS, NEUTRAL
from ent.utils.errors import DataError
from ent.utils.fileio import atomic_write, read_lines, read_table, write_table

PathLike = Union[str, Path]

logger = logging.getLogger(__name__)

#: Pattern name -> its parts' classes (``n``: neutral, ``e``: emotional).
PATTERNS: Dict[str, Tuple[str, ...]] = {"ne": ("n", "e"), "en": ("e", "n"), "nen": ("n", "e", "n")}
DEFAULT_PATTERNS: Tuple[str, ...] = ("ne", "en", "nen")
DEFAULT_MIX_SHARE = 0.5
DEFAULT_MAX_DURATION = 20.0
#: Peak the clip guard scales a joined utterance down to.
PEAK_LIMIT = 0.99
#: Frame length (s) and range (dB below the loudest frame) of :func:`active_rms`.
ACTIVE_FRAME_S = 0.025
ACTIVE_RANGE_DB = 40.0
#: Tries to draw a mix within ``max_duration`` before it is skipped.
MAX_DRAWS = 10
#: Name of the stamp of a finished output directory.
STAMP = ".done"
#: Version of the output layout (part of the stamp: a change rebuilds).
FORMAT_VERSION = 1
#: Input tables whose content the stamp fingerprints.
FINGERPRINTED: Tuple[str, ...] = ("wav.scp", "text", "utt2spk", "utt2emo", "segments", "utt2dur", "emo_segments")
#: File listing the parts of each mixed utterance.
MIX_PARTS = "mix_parts"

SR = TARGET_SAMPLE_RATE


# --------------------------------------------------------------------- options
@dataclass(frozen=True)
class MixOptions:
    """What :func:`mix_data_dir` makes (everything that changes the output).

    Attributes:
        mix_share: Number of mixed utterances as a share of the originals of
            the speakers that may be mixed (>= 0).
        patterns: Patterns to make, out of ``ne``, ``en``, ``nen``.
        pattern_weights: Relative weight of each pattern (``None``: equal).
        max_duration: Longest mixed utterance in seconds.
        gap_s: Seconds of silence between parts.
        neutral: Name of the neutral class.
        emotions: Allowed emotion labels (``utt2emo``; ``emo_segments`` with
            ``keep_intervals``).
        seed: Seed of the draws (>= 0).
        speakers: Speakers that may be mixed (``None``: all); the originals
            of the others are copied all the same.
        keep_intervals: Keep the originals' ``emo_segments`` lines (those
            utterances are then not used as parts).
        trim_db: ``None``: the emotional part's interval is the whole part.
            A number: only its speech, from the first to the end of the last
            25 ms frame within ``trim_db`` dB of its loudest frame (the frames
            of :func:`active_rms`); its leading and trailing silence is
            neutral, as diarization references (ZED) mark emotional speech.
        match_loudness: Scale every later part to the first part's active
            RMS (True), or keep every part's own level (False: utterances
            of one speaker recorded alike, whose loudness differences are
            the emotions' own, e.g. angry speech louder than neutral).
    """

    mix_share: float = DEFAULT_MIX_SHARE
    patterns: Tuple[str, ...] = DEFAULT_PATTERNS
    pattern_weights: Optional[Tuple[float, ...]] = None
    max_duration: float = DEFAULT_MAX_DURATION
    gap_s: float = 0.0
    neutral: str = NEUTRAL
    emotions: Tuple[str, ...] = DEFAULT_EMOTIONS
    seed: int = 0
    speakers: Optional[Tuple[str, ...]] = None
    keep_intervals: bool = False
    trim_db: Optional[float] = None
    match_loudness: bool = True

    def __post_init__(self) -> None:
        # Normalize sequences to tuples (hashable, JSON-stable) and speakers to a sorted set.
        object.__setattr__(self, "patterns", tuple(self.patterns))
        object.__setattr__(self, "emotions", tuple(self.emotions))
        if self.pattern_weights is not None:
            object.__setattr__(self, "pattern_weights", tuple(float(w) for w in self.pattern_weights))
        if self.speakers is not None:
            object.__setattr__(self, "speakers", tuple(sorted(set(self.speakers))))

    def weights(self) -> Tuple[float, ...]:
        """The pattern weights (equal ones when not given)."""
        return self.pattern_weights if self.pattern_weights is not None else (1.0,) * len(self.patterns)

    def check(self) -> None:
        """Raise ``ValueError`` on an invalid option."""
        if not (math.isfinite(self.mix_share) and self.mix_share >= 0):
            raise ValueError(f"mix share must be a number >= 0, not {self.mix_share}")
        if not self.patterns:
            raise ValueError("no mixing pattern given")
        for p in self.patterns:
            if p not in PATTERNS:
                raise ValueError(f"unknown mixing pattern '{p}' (known: {', '.join(PATTERNS)})")
        if len(set(self.patterns)) != len(self.patterns):
            raise ValueError(f"repeated mixing pattern in {','.join(self.patterns)}")
        weights = self.weights()
        if len(weights) != len(self.patterns):
            raise ValueError(f"{len(weights)} pattern weights for {len(self.patterns)} patterns")
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"pattern weights must be >= 0 with a positive sum, not {list(weights)}")
        if not (math.isfinite(self.max_duration) and self.max_duration > 0):
            raise ValueError(f"max duration must be positive, not {self.max_duration}")
        if not (math.isfinite(self.gap_s) and self.gap_s >= 0):
            raise ValueError(f"gap must be >= 0 s, not {self.gap_s}")
        if self.trim_db is not None and not (math.isfinite(self.trim_db) and self.trim_db > 0):
            raise ValueError(f"trim range must be a number of dB > 0, not {self.trim_db}")
        if len(set(self.emotions)) != len(self.emotions):
            raise ValueError(f"repeated emotion in {list(self.emotions)}")
        if self.neutral not in self.emotions:
            raise ValueError(f"neutral class '{self.neutral}' is not among the emotions {list(self.emotions)}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, not {self.seed}")
        if self.speakers is not None and not self.speakers:
            raise ValueError("the speaker restriction is empty")


@dataclass(frozen=True)
class MixedUtterance:
    """One planned mix.

    Attributes:
        utt: Its id, ``<spk>-mix-<pattern>-<nnnnn>``.
        speaker: The speaker of every part.
        pattern: ``ne``, ``en`` or ``nen``.
        parts: The original utterances, in order.
        emotion: The emotional part's label.
    """

    utt: str
    speaker: str
    pattern: str
    parts: Tuple[str, ...]
    emotion: str


@dataclass
class MixPlan:
    """The result of :func:`plan_mixes`.

    Attributes:
        mixes: Planned mixes, sorted by id.
        target: Number of mixes asked for.
        skipped: Mixes not made because no draw fitted ``max_duration``.
        too_long: Usable-class utterances left out because no mix of their
            speaker could hold them within ``max_duration``.
        unmixable_speakers: Speakers that may be mixed but can form no
            pattern (no neutral or no emotional utterance, ...).
    """

    mixes: List[MixedUtterance] = field(default_factory=list)
    target: int = 0
    skipped: int = 0
    too_long: int = 0
    unmixable_speakers: List[str] = field(default_factory=list)


@dataclass
class MixReport:
    """What :func:`mix_data_dir` did.

    Attributes:
        written: False when a finished directory was kept.
        originals: Number of original utterances copied.
        mixed: Number of mixed utterances written.
        by_pattern: pattern -> number of mixed utterances.
        target: Number of mixes asked for.
        skipped: Mixes not made (``max_duration``).
        clipped: Mixes scaled down by the clip guard.
    """

    written: bool
    originals: int = 0
    mixed: int = 0
    by_pattern: Dict[str, int] = field(default_factory=dict)
    target: int = 0
    skipped: int = 0
    clipped: int = 0


# --------------------------------------------------------------------- audio
def active_rms(wave: np.ndarray, sample_rate: int = SR, frame_s: float = ACTIVE_FRAME_S,
               range_db: float = ACTIVE_RANGE_DB) -> float:
    """RMS over the frames within ``range_db`` of the loudest frame.

    The signal is cut into non-overlapping frames of ``frame_s`` (the last
    one may be shorter); frames whose mean square is at least the largest
    mean square times ``10 ** (-range_db / 10)`` are *active*, and the RMS is
    taken over all their samples.

    Args:
        wave: (N,) samples.
        sample_rate: Sample rate of ``wave``.
        frame_s: Frame length in seconds.
        range_db: Dynamic range of the active frames in dB.

    Returns:
        The active RMS (0.0 for an empty or all-zero signal).
    """
    x = np.asarray(wave, dtype=np.float64)
    if x.size == 0:
        return 0.0
    frame = max(1, int(round(frame_s * sample_rate)))
    starts = np.arange(0, x.size, frame)
    sums = np.add.reduceat(x * x, starts)
    counts = np.diff(np.append(starts, x.size))
    mean_sq = sums / counts
    peak = mean_sq.max()
    if peak <= 0:
        return 0.0
    active = mean_sq >= peak * 10.0 ** (-range_db / 10.0)
    return float(np.sqrt(sums[active].sum() / counts[active].sum()))


def speech_span(wave: np.ndarray, range_db: float, sample_rate: int = SR,
                frame_s: float = ACTIVE_FRAME_S) -> Tuple[int, int]:
    """Sample range from the first to the end of the last frame within ``range_db`` of the loudest.

    The frames are those of :func:`active_rms`; a silent (all-zero or empty)
    signal gives its whole range.

    Args:
        wave: (N,) samples.
        range_db: Dynamic range of the speech frames in dB.
        sample_rate: Sample rate of ``wave``.
        frame_s: Frame length in seconds.

    Returns:
        ``(start, end)`` with ``0 <= start < end <= N`` (``(0, 0)`` for N = 0).
    """
    x = np.asarray(wave, dtype=np.float64)
    if x.size == 0:
        return 0, 0
    frame = max(1, int(round(frame_s * sample_rate)))
    starts = np.arange(0, x.size, frame)
    mean_sq = np.add.reduceat(x * x, starts) / np.diff(np.append(starts, x.size))
    peak = mean_sq.max()
    if peak <= 0:
        return 0, int(x.size)
    active = np.nonzero(mean_sq >= peak * 10.0 ** (-range_db / 10.0))[0]
    return int(starts[active[0]]), int(min(x.size, starts[active[-1]] + frame))


def join_parts(waves: Sequence[np.ndarray], gap_samples: int = 0, peak_limit: float = PEAK_LIMIT,
               match_loudness: bool = True) -> Tuple[np.ndarray, List[Tuple[int, int]], List[float], bool]:
    """Concatenate parts, each later one scaled to the first one's active RMS.

    Args:
        waves: The parts, each (N_i,) float samples.
        gap_samples: Zeros inserted between consecutive parts.
        match_loudness: False: every part keeps its level (gain 1, the clip
            guard aside).
        peak_limit: If the joined peak exceeds it, everything is scaled down
            so that the peak equals it.

    Returns:
        joined: (sum N_i + gap_samples * (len(waves) - 1),) float32.
        bounds: ``(start, end)`` sample range of each part in ``joined``.
        gains: The gain applied to each part (the clip guard's included).
        clipped: Whether the clip guard scaled the utterance down.
    """
    if not waves:
        raise ValueError("no parts to join")
    ref = active_rms(waves[0])
    gains = []
    for i, w in enumerate(waves):
        level = active_rms(w)
        gains.append(ref / level if match_loudness and i > 0 and ref > 0 and level > 0 else 1.0)
    pieces: List[np.ndarray] = []
    bounds: List[Tuple[int, int]] = []
    pos = 0
    for i, (w, g) in enumerate(zip(waves, gains)):
        if i > 0 and gap_samples > 0:
            pieces.append(np.zeros(gap_samples, dtype=np.float64))
            pos += gap_samples
        pieces.append(np.asarray(w, dtype=np.float64) * g)
        bounds.append((pos, pos + len(w)))
        pos += len(w)
    joined = np.concatenate(pieces)
    peak = float(np.abs(joined).max()) if joined.size else 0.0
    clipped = peak > peak_limit
    if clipped:
        factor = peak_limit / peak
        joined *= factor
        gains = [g * factor for g in gains]
    return joined.astype(np.float32), bounds, gains, clipped


def format_samples(n: int, sample_rate: int = SR) -> str:
    """``n / sample_rate`` seconds as an exact decimal, trailing zeros dropped.

    At 16 kHz (``2**7 * 5**3``) every sample time has at most 7 decimals.
    """
    if sample_rate != SR:
        raise ValueError(f"exact times need {SR} Hz audio")
    q = int(n) * 625  # n / 16000 = n * 625 / 10**7
    whole, frac = divmod(q, 10 ** 7)
    return f"{whole}.{frac:07d}".rstrip("0").rstrip(".")


# --------------------------------------------------------------------- planning
def _speaker_rng(seed: int, speaker: str) -> np.random.Generator:
    digest = hashlib.sha256(speaker.encode("utf-8")).digest()
    return np.random.default_rng([seed] + [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)])


def _sum_smallest_excluding(values: Sequence[int], k: int, own: Optional[int]) -> Optional[int]:
    """Sum of the ``k`` smallest of sorted ``values`` with one copy of ``own`` removed (None: too few)."""
    if own is None:
        return sum(values[:k]) if len(values) >= k else None
    if len(values) - 1 < k:
        return None
    if k == 0:
        return 0
    total = sum(values[:k])
    if own <= values[k - 1]:  # own is (interchangeable with) one of the k smallest
        total += values[k] - own
    return total


def _allocate(total: int, weights: Mapping[str, int]) -> Dict[str, int]:
    """Share ``total`` out in proportion to ``weights`` (largest remainders, ties by key)."""
    keys = sorted(weights)
    wsum = sum(weights.values())
    if wsum <= 0 or total <= 0:
        return {k: 0 for k in keys}
    exact = {k: total * weights[k] / wsum for k in keys}
    out = {k: int(math.floor(exact[k])) for k in keys}
    left = total - sum(out.values())
    for k in sorted(keys, key=lambda k: (-(exact[k] - out[k]), k))[:left]:
        out[k] += 1
    return out


def plan_mixes(
    utt2spk: Mapping[str, str],
    utt2emo: Mapping[str, str],
    num_samples: Mapping[str, int],
    options: MixOptions,
    exclude: Iterable[str] = (),
) -> MixPlan:
    """Draw which utterances to join (no audio is read).

    Args:
        utt2spk: utt -> speaker, for every original utterance.
        utt2emo: utt -> emotion.
        num_samples: utt -> length in 16 kHz samples.
        options: The mixing options (see :class:`MixOptions`).
        exclude: Utterances never to use as parts.

    Returns:
        The plan; the same arguments always give the same plan.
    """
    options.check()
    max_samples = int(math.floor(options.max_duration * SR + 1e-6))
    gap = int(round(options.gap_s * SR))
    allowed = set(options.speakers) if options.speakers is not None else None
    excluded = set(exclude)
    weights = dict(zip(options.patterns, options.weights()))
    plan = MixPlan()

    by_spk: Dict[str, Dict[str, List[str]]] = {}
    selected_originals = 0
    for utt in sorted(utt2spk):
        spk = utt2spk[utt]
        if allowed is not None and spk not in allowed:
            continue
        selected_originals += 1
        classes = by_spk.setdefault(spk, {"n": [], "e": []})
        if utt not in excluded:
            classes["n" if utt2emo[utt] == options.neutral else "e"].append(utt)
    plan.target = int(math.floor(options.mix_share * selected_originals + 0.5))

    def feasible_patterns(classes: Dict[str, List[str]]) -> List[str]:
        return [p for p in options.patterns if weights[p] > 0
                and all(len(classes[c]) >= PATTERNS[p].count(c) for c in ("n", "e"))]

    # Leave out utterances that fit in no mix of their speaker.
    usable: Dict[str, Dict[str, List[str]]] = {}
    for spk in sorted(by_spk):
        classes = by_spk[spk]
        patterns = feasible_patterns(classes)
        lengths = {c: sorted(num_samples[u] for u in classes[c]) for c in ("n", "e")}
        kept: Dict[str, List[str]] = {"n": [], "e": []}
        for c in ("n", "e"):
            for utt in classes[c]:
                own = num_samples[utt]
                fits = False
                for p in patterns:
                    if c not in PATTERNS[p]:
                        continue
                    rest = 0
                    for other in ("n", "e"):
                        k = PATTERNS[p].count(other) - (1 if other == c else 0)
                        s = _sum_smallest_excluding(lengths[other], k, own if other == c else None)
                        if s is None:
                            rest = None
                            break
                        rest += s
                    if rest is not None and own + rest + gap * (len(PATTERNS[p]) - 1) <= max_samples:
                        fits = True
                        break
                if fits:
                    kept[c].append(utt)
                elif patterns:
                    plan.too_long += 1
        if feasible_patterns(kept):
            usable[spk] = kept
        else:
            plan.unmixable_speakers.append(spk)

    counts = _allocate(plan.target, {spk: len(c["n"]) + len(c["e"]) for spk, c in usable.items()})
    for spk in sorted(usable):
        classes = usable[spk]
        k = counts[spk]
        if k == 0:
            continue
        rng = _speaker_rng(options.seed, spk)
        patterns = feasible_patterns(classes)
        w = np.asarray([weights[p] for p in patterns], dtype=np.float64)
        pools: Dict[str, List[str]] = {"n": [], "e": []}

        def draw(c: str, taken: Sequence[str]) -> str:
            pool = pools[c]
            while True:
                for i, utt in enumerate(pool):
                    if utt not in taken:
                        return pool.pop(i)
                pool.extend(classes[c][j] for j in rng.permutation(len(classes[c])))

        width = max(5, len(str(k)))
        numbers = {p: 0 for p in patterns}
        for _ in range(k):
            pattern = patterns[int(rng.choice(len(patterns), p=w / w.sum()))]
            for _try in range(MAX_DRAWS):
                parts: List[str] = []
                for c in PATTERNS[pattern]:
                    parts.append(draw(c, parts))
                total = sum(num_samples[u] for u in parts) + gap * (len(parts) - 1)
                if total <= max_samples:
                    break
                for c, utt in zip(PATTERNS[pattern], parts):
                    pools[c].append(utt)
            else:
                plan.skipped += 1
                continue
            assert all(utt2spk[u] == spk for u in parts), f"parts {parts} of a mix of '{spk}' from other speakers"
            assert len(set(parts)) == len(parts), f"a mix repeats a part: {parts}"
            numbers[pattern] += 1
            emotion = utt2emo[parts[PATTERNS[pattern].index("e")]]
            plan.mixes.append(MixedUtterance(f"{spk}-mix-{pattern}-{numbers[pattern]:0{width}d}", spk, pattern,
                                             tuple(parts), emotion))
    plan.mixes.sort(key=lambda m: m.utt)
    return plan


# --------------------------------------------------------------------- input checks
class _Input:
    """A checked source directory: parsed view, verbatim lines, audio lengths."""

    def __init__(self, src: Path, options: MixOptions) -> None:
        self.path = src
        self.data = DataDir.load(src)
        self.raw: Dict[str, Dict[str, str]] = {}
        for name in ("wav.scp", "text", "utt2spk", "utt2emo", "utt2dur", "segments"):
            if (src / name).is_file():
                self.raw[name] = {e.key: e.value for e in read_table(src / name, allow_empty_value=name == "text")}
        self.emo_lines: List[Tuple[str, str]] = []
        if (src / "emo_segments").is_file():
            self.emo_lines = [(e.key, e.value) for e in read_table(src / "emo_segments")]
        self._check_ids()
        self._check_values(options)
        self.num_samples = self._measure()

    def line(self, name: str, key: str) -> Optional[int]:
        return self.data.lines.get(name, {}).get(key)

    def _check_ids(self) -> None:
        data, src = self.data, self.path
        utts = set(data.text)
        if not utts:
            raise DataError(src / "text", None, "no utterances")
        for name in ("utt2spk", "utt2emo", "utt2dur", "segments"):
            if name not in self.raw:
                continue
            table = self.raw[name]
            for utt in data.utt_ids:
                if utt not in table:
                    raise DataError(src / "text", self.line("text", utt), f"utterance '{utt}' has no line in {name}")
            for key in sorted(set(table) - utts, key=lambda k: self.line(name, k) or 0)[:1]:
                raise DataError(src / name, self.line(name, key), f"utterance '{key}' is not in text")
        if data.segments is None:
            for utt in data.utt_ids:
                if utt not in data.wav_scp:
                    raise DataError(src / "text", self.line("text", utt), f"utterance '{utt}' has no line in wav.scp")
            for key in sorted(set(data.wav_scp) - utts, key=lambda k: self.line("wav.scp", k) or 0)[:1]:
                raise DataError(src / "wav.scp", self.line("wav.scp", key),
                                f"recording '{key}' is not an utterance of text (and there is no segments file)")
        else:
            for utt in data.utt_ids:
                rec = data.segments[utt].recording
                if rec not in data.wav_scp:
                    raise DataError(src / "segments", self.line("segments", utt),
                                    f"recording '{rec}' of '{utt}' is not in wav.scp")

    def _check_values(self, options: MixOptions) -> None:
        data, src = self.data, self.path
        allowed = ", ".join(options.emotions)
        for utt in data.utt_ids:
            emo = data.utt2emo[utt]
            if emo not in options.emotions:
                raise DataError(src / "utt2emo", self.line("utt2emo", utt),
                                f"unknown emotion '{emo}' of '{utt}' (allowed: {allowed})")
        if options.keep_intervals:
            for utt, ivs in data.emo_segments.items():
                if utt not in data.text:
                    raise DataError(src / "emo_segments", ivs[0].lineno, f"utterance '{utt}' is not in text")
                for iv in ivs:
                    if iv.emotion not in options.emotions:
                        raise DataError(src / "emo_segments", iv.lineno,
                                        f"unknown emotion '{iv.emotion}' of '{utt}' (allowed: {allowed})")
        if options.speakers is not None:
            known = set(data.utt2spk.values())
            for spk in options.speakers:
                if spk not in known:
                    raise ValueError(f"speaker '{spk}' of the speaker restriction is not in {src / 'utt2spk'}")

    def _measure(self) -> Dict[str, int]:
        """Length in samples of every utterance, from the audio headers (16 kHz required)."""
        data, src = self.data, self.path
        infos = {}
        out: Dict[str, int] = {}
        for utt in data.utt_ids:
            path, start, end = data.audio_entry(utt)
            rec = data.segments[utt].recording if data.segments is not None else utt
            if rec not in infos:
                try:
                    info = audio_info(path)
                except AudioError as exc:
                    raise DataError(src / "wav.scp", self.line("wav.scp", rec), f"{exc.message} ({path})") from None
                if info.sample_rate != SR:
                    raise DataError(src / "wav.scp", self.line("wav.scp", rec),
                                    f"sample rate {info.sample_rate} Hz, not {SR} Hz: resample the corpus "
                                    f"before mixing ({path})")
                if info.frames == 0:
                    raise DataError(src / "wav.scp", self.line("wav.scp", rec), f"audio file is empty ({path})")
                infos[rec] = info
            frames = infos[rec].frames
            if start is None:
                out[utt] = frames
                continue
            first = int(round(start * SR))
            last = frames if end is None or end < 0 else int(round(end * SR))
            if first >= frames or last - frames > 0.01 * SR:
                raise DataError(src / "segments", self.line("segments", utt),
                                f"segment {start:g}-{end:g} s of '{utt}' lies past the end of recording "
                                f"'{rec}' ({frames / SR:.3f} s)")
            out[utt] = min(last, frames) - first
        return out

    def fingerprint(self) -> Dict[str, str]:
        """SHA-256 of each present input table."""
        out = {}
        for name in FINGERPRINTED:
            file = self.path / name
            if file.is_file():
                out[name] = hashlib.sha256(file.read_bytes()).hexdigest()
        return out


# --------------------------------------------------------------------- workers
_cache: Dict[str, DataDir] = {}


def _load_cached(data_dir: str) -> DataDir:
    if data_dir not in _cache:
        _cache[data_dir] = DataDir.load(data_dir)
    return _cache[data_dir]


_Job = Tuple[str, Tuple[str, ...], int, str, Optional[float], bool]
_Result = Tuple[int, List[Tuple[int, int]], List[Tuple[int, int]], bool,
                Optional[Tuple[Optional[str], Optional[int], str]]]


def _mix_one(job: _Job) -> _Result:
    """Worker: load the parts, join them, write the audio.

    Returns ``(samples, part bounds, speech spans, clip-guarded, error)``
    (the spans are the part bounds without ``trim_db``); a
    :class:`DataError` is returned as ``(path, line, message)`` rather than
    raised, since it does not survive pickling between processes.
    """
    data_dir, parts, gap, out_path, trim_db, match_loudness = job
    data = _load_cached(data_dir)
    try:
        waves = [data.load_audio(p) for p in parts]
    except DataError as exc:
        return 0, [], [], False, (exc.path, exc.line, exc.message)
    joined, bounds, _, clipped = join_parts(waves, gap, match_loudness=match_loudness)
    write_audio(out_path, joined)
    spans = []
    for (a, b), wave in zip(bounds, waves):
        start, end = speech_span(wave, trim_db) if trim_db is not None else (0, b - a)
        spans.append((a + start, a + end))
    return int(joined.shape[0]), bounds, spans, clipped, None


# --------------------------------------------------------------------- the stage
def read_speaker_file(path: PathLike) -> List[str]:
    """Speakers listed in a file: the first field of each non-blank line (a ``spk2utt`` works too).

    Raises:
        DataError: If the file is missing, unreadable or lists no speaker.
    """
    speakers = [line.split()[0] for line in read_lines(path) if line.strip()]
    if not speakers:
        raise DataError(path, None, "no speaker listed")
    return speakers


def _is_within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def _read_stamp(out_dir: Path) -> Optional[dict]:
    try:
        return json.loads((out_dir / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _mixed_audio_present(out_dir: Path) -> bool:
    """Whether every mixed utterance's audio file of a finished directory exists."""
    try:
        mixed = {e.key for e in read_table(out_dir / MIX_PARTS)}
        wav = {e.key: e.value for e in read_table(out_dir / "wav.scp")}
    except (DataError, OSError):
        return False
    return all(key in wav and Path(wav[key]).is_file() for key in mixed)


def mix_data_dir(
    data_dir: PathLike,
    out_dir: PathLike,
    audio_dir: Optional[PathLike] = None,
    options: MixOptions = MixOptions(),
    nj: int = 1,
    force: bool = False,
) -> MixReport:
    """Write the originals of ``data_dir`` plus same-speaker mixes to ``out_dir``.

    See the module docstring for the method and the files written.

    Args:
        data_dir: Source data directory (utterance labels in ``utt2emo``).
        out_dir: Output data directory (e.g. ``data/train_mix``).
        audio_dir: Where the mixed wav files go (default ``<out_dir>/wav``).
        options: What to make (see :class:`MixOptions`).
        nj: Number of worker processes (the output does not depend on it).
        force: Rebuild even when ``out_dir`` is finished with the same input
            and options.

    Returns:
        What was done; ``written`` is False when a finished directory was kept.

    Raises:
        DataError: On bad input (missing or malformed tables, an utterance
            without a line in a table, an unknown emotion, unreadable or
            non-16 kHz audio), as one line naming the file and line.
        ValueError: On bad options, an ``out_dir`` that would overwrite the
            input or a directory not written by this function.
    """
    options.check()
    if nj < 1:
        raise ValueError(f"nj must be >= 1, not {nj}")
    src, dst = Path(data_dir), Path(out_dir)
    audio = Path(audio_dir) if audio_dir is not None else dst / "wav"
    src_abs, dst_abs, audio_abs = (os.path.abspath(p) for p in (src, dst, audio))
    if _is_within(src_abs, dst_abs):
        raise ValueError(f"output directory {dst} would overwrite the input {src}")

    inp = _Input(src, options)
    data = inp.data
    absolute = all(os.path.isabs(p) for p in data.wav_scp.values())
    audio_written = audio_abs if absolute else os.path.relpath(audio_abs)
    stamp = {
        "format": FORMAT_VERSION,
        "options": asdict(options),
        "audio_dir": audio_written,
        "inputs": inp.fingerprint(),
    }
    stamp = json.loads(json.dumps(stamp))  # tuples -> lists, as read back
    if dst.exists() and not dst.is_dir():
        raise ValueError(f"{dst} exists and is not a directory")
    if dst.exists() and not force:
        old = _read_stamp(dst)
        if old is not None and {k: old.get(k) for k in stamp} == stamp and _mixed_audio_present(dst):
            logger.info("%s is finished with the same input and options; skipping (use --force to rebuild)", dst)
            return MixReport(written=False)
        if old is None and not (dst / MIX_PARTS).is_file() and any(dst.iterdir()):
            raise ValueError(f"{dst} exists and was not written by mix_data_dir; remove it or use --force")
        if old is not None:
            changed = [k for k in stamp if old.get(k) != stamp[k]] or ["mixed audio files missing"]
            logger.info("%s is out of date (%s changed); rebuilding", dst, ", ".join(changed))

    exclude = set(data.emo_segments) if options.keep_intervals else set()
    if exclude:
        logger.info("%d utterances with emotion intervals are kept as they are and not used as parts", len(exclude))
    plan = plan_mixes(data.utt2spk, data.utt2emo, inp.num_samples, options, exclude)
    for m in plan.mixes:
        if "/" in m.speaker:
            raise DataError(src / "utt2spk", inp.line("utt2spk", m.parts[0]),
                            f"speaker id '{m.speaker}' contains '/', which cannot name an audio file")
        if m.utt in data.text or m.utt in data.wav_scp:
            where = "text" if m.utt in data.text else "wav.scp"
            raise DataError(src / where, inp.line(where, m.utt),
                            f"id '{m.utt}' is taken: it is the id of a mixed utterance")
    if plan.unmixable_speakers:
        logger.info("%d speakers can form no mix (no neutral or no emotional utterance): %s",
                    len(plan.unmixable_speakers), " ".join(plan.unmixable_speakers))
    if plan.too_long:
        logger.info("%d utterances fit in no mix of at most %g s and are not used as parts",
                    plan.too_long, options.max_duration)
    if plan.skipped:
        logger.warning("%d of %d mixes skipped: no draw of at most %g s", plan.skipped, plan.target,
                       options.max_duration)

    input_paths = {os.path.abspath(p) for p in data.wav_scp.values()}
    for m in plan.mixes:
        if os.path.join(audio_abs, m.utt + ".wav") in input_paths:
            raise ValueError(f"audio of mixed utterance '{m.utt}' would overwrite an input file in {audio}")

    # A rebuild starts by withdrawing the old stamp: if it is killed, the old
    # directory (whose external audio may be half rewritten) no longer looks finished.
    if dst.exists():
        (dst / STAMP).unlink(missing_ok=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        write_root = (os.path.join(str(tmp), os.path.relpath(audio_abs, dst_abs))
                      if _is_within(audio_abs, dst_abs) else audio_abs)
        Path(write_root).mkdir(parents=True, exist_ok=True)
        gap = int(round(options.gap_s * SR))
        jobs: List[_Job] = [(str(src), m.parts, gap, os.path.join(write_root, m.utt + ".wav"), options.trim_db,
                             options.match_loudness) for m in plan.mixes]
        results = _run_jobs(jobs, str(src), data, nj)
        for result in results:
            if result[4] is not None:
                raise DataError(*result[4])
        report = _write_tables(tmp, inp, plan, results, audio_written, options)
        report.target, report.skipped = plan.target, plan.skipped
        with atomic_write(tmp / STAMP) as fh:
            json.dump(dict(stamp, mixed=report.mixed), fh, indent=1, sort_keys=True, allow_nan=False)
            fh.write("\n")
        # mkdtemp makes the directory private (0700): give it a plain mkdir's mode.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)
        if dst.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=dst.parent))
            old.rmdir()
            dst.rename(old)
            tmp.rename(dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote %s: %d originals and %d mixed utterances (%s), %d clip-guarded", dst, report.originals,
                report.mixed, ", ".join(f"{p} {n}" for p, n in report.by_pattern.items()), report.clipped)
    return report


def _run_jobs(jobs: List[_Job], src: str, data: DataDir, nj: int) -> List[_Result]:
    results: List[_Result] = []
    with tqdm(total=len(jobs), desc="mixing", unit="utt", disable=None) as progress:
        if nj <= 1 or len(jobs) <= 1:
            _cache[src] = data
            try:
                for job in jobs:
                    results.append(_mix_one(job))
                    progress.update(1)
            finally:
                _cache.pop(src, None)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(nj, len(jobs)), mp_context=ctx) as pool:
                for result in pool.map(_mix_one, jobs, chunksize=max(1, min(16, len(jobs) // (4 * nj)))):
                    results.append(result)
                    progress.update(1)
    return results


def _write_tables(tmp: Path, inp: _Input, plan: MixPlan, results: List[_Result], audio_written: str,
                  options: MixOptions) -> MixReport:
    """Write every table of the output into ``tmp``."""
    data, raw = inp.data, inp.raw
    wav_scp = dict(raw["wav.scp"])
    text = dict(raw["text"])
    utt2spk = dict(raw["utt2spk"])
    utt2emo = dict(raw["utt2emo"])
    utt2dur = dict(raw["utt2dur"]) if "utt2dur" in raw else {u: format_samples(n) for u, n in inp.num_samples.items()}
    segments = dict(raw["segments"]) if "segments" in raw else None
    emo_lines: List[Tuple[str, float, str]] = []
    if options.keep_intervals:
        emo_lines = [(key, float(value.split()[0]), value) for key, value in inp.emo_lines]
    mix_parts: Dict[str, str] = {}
    report = MixReport(written=True, originals=len(data.text), by_pattern={p: 0 for p in options.patterns})
    for m, (n, bounds, spans, clipped, _) in zip(plan.mixes, results):
        path = os.path.join(audio_written, m.utt + ".wav")
        wav_scp[m.utt] = path
        if segments is not None:
            segments[m.utt] = f"{m.utt} 0 {format_samples(n)}"
        text[m.utt] = " ".join(data.text[p] for p in m.parts)
        utt2spk[m.utt] = m.speaker
        utt2emo[m.utt] = m.emotion
        utt2dur[m.utt] = format_samples(n)
        mix_parts[m.utt] = " ".join(m.parts)
        for part, (a, b), (start, end) in zip(m.parts, bounds, spans):
            emotion = data.utt2emo[part]
            # A trimmed emotional part: its silence before and after the speech is neutral.
            pieces = [(a, b, emotion)] if emotion == options.neutral else [
                (a, start, options.neutral), (start, end, emotion), (end, b, options.neutral)]
            for lo, hi, label in pieces:
                if hi > lo:
                    emo_lines.append((m.utt, lo / SR, f"{format_samples(lo)} {format_samples(hi)} {label}"))
        report.mixed += 1
        report.by_pattern[m.pattern] += 1
        report.clipped += int(clipped)

    write_table(tmp / "wav.scp", wav_scp)
    write_table(tmp / "text", text)
    write_table(tmp / "utt2spk", utt2spk)
    write_table(tmp / "spk2utt", spk2utt_table(utt2spk))
    write_table(tmp / "utt2emo", utt2emo)
    write_table(tmp / "utt2dur", utt2dur)
    if segments is not None:
        write_table(tmp / "segments", segments)
    if emo_lines:
        emo_lines.sort(key=lambda e: (e[0].encode("utf-8"), e[1]))
        with atomic_write(tmp / "emo_segments") as fh:
            for key, _, value in emo_lines:
                fh.write(f"{key} {value}\n")
    write_table(tmp / MIX_PARTS, mix_parts)
    return report
