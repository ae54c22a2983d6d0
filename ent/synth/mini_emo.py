"""Generate ``mini_emo``, a small synthetic emotional English corpus.

Speech is synthesized with eSpeak NG (:mod:`ent.synth.espeak`) from sentences
of a template grammar (:mod:`ent.synth.grammar`); each emotion is a prosody
distribution (:mod:`ent.synth.prosody`). Usage::

    python -m ent.synth.mini_emo --out-dir data --seed 0 --nj 2

Sets (Kaldi-style data directories ``<out-dir>/<set>/``):

* ``train`` (2000) and ``dev`` (200): the 12 training voices, emotions
  balanced; a voice is drawn per utterance with the emotion's soft voice
  variant preference.
* ``test`` (400): the 4 held-out voices only (never in train/dev), exactly
  balanced over emotions (and over voice x emotion when the size allows).
* ``test_sed`` (200): ZED-like emotion diarization utterances, one held-out
  voice each: neutral-emotional-neutral (50 %), neutral-emotional (25 %) or
  emotional-neutral (25 %) sentences joined by short silences. The emotional
  interval is written to ``emo_segments`` and ``zed.json``.

Interval labels: ``test_sed``'s ``emo_segments`` lists its emotional
intervals only (ZED's convention: neutral elsewhere). ``train`` and ``dev``
carry utterance labels only, like a real corpus. The synthesizer knows more:
the speech interval of every utterance, which it writes to
``oracle_emo_segments`` (``emo_segments`` format, *neutral included*; silence
before and after the speech counts as neutral), a file the toolkit never
reads. A recipe that copies it to ``emo_segments`` trains the lattice frame
by frame with the supervised interval loss: an oracle setting, an upper
bound for what utterance labels give (``egs/mini_emo/ent1/run.sh
--oracle_intervals true``). ``test`` has none (it is scored at utterance
level).

All sentences are distinct across all sets (normalized text), so test
sentences never occur in training. Each data directory holds ``wav.scp``,
``text`` (lower-case words, no punctuation), ``utt2spk`` / ``spk2utt``
(speaker = voice), ``utt2emo``, ``utt2dur`` (seconds, 3 decimals) and, for
``test_sed``, ``emo_segments`` (``<utt> <start> <end> <emotion>``) and
``zed.json`` (``{utt: {"wav", "duration", "emotion": [{"emo", "start",
"end"}], "transcription"}}``). Audio is 16 kHz mono 16-bit PCM WAV under
``--wav-dir`` (default ``<out-dir>/../wav``), in ``<wav-dir>/<set>/``.

Paths in ``wav.scp`` (and ``zed.json``) are relative to the current working
directory when the WAV files lie below it, otherwise absolute
(``--abs-paths`` forces absolute paths). Recipes run this from their own
folder (``egs/mini_emo/ent1``), so ``wav.scp`` reads ``wav/train/...``.

Reproducibility: every random choice of utterance ``i`` of set ``s`` comes
from a generator seeded with ``(seed, s, i)`` (sentences from one seeded
draw of disjoint pools), and the synthesizer's own state is reset per
request, so the same seed gives a byte-identical corpus whatever ``--nj``.
A finished set has a ``.done`` marker holding its options; it is skipped on
a rerun with the same options (``--force`` regenerates it).

Levels: eSpeak amplitude is capped (see :mod:`ent.synth.espeak`), so speech
peaks stay below full scale; noise is added at the drawn SNR relative to the
speech power; a final guard scales an utterance down if its peak would
exceed 0.99 (counted in the log).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import multiprocessing
import os
import random
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly
from tqdm import tqdm

from ent.data.emotions import DEFAULT_EMOTIONS, NEUTRAL
from ent.synth.espeak import (
    ESPEAK_SAMPLE_RATE,
    EspeakError,
    EspeakSynthesizer,
    SynthesisParams,
    get_synthesizer,
    resolve_backend,
)
from ent.synth.grammar import SentenceGrammar, make_disjoint_sentence_sets
from ent.synth.prosody import sample_prosody, variant_weight
from ent.utils.fileio import atomic_write, write_table

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""Output sample rate in Hz."""

SETS: Tuple[str, ...] = ("train", "dev", "test", "test_sed")
EMOTIONAL: Tuple[str, ...] = tuple(e for e in DEFAULT_EMOTIONS if e != NEUTRAL)
NOISE_COLORS: Dict[str, float] = {"white": 0.0, "pink": 0.5, "brown": 1.0}
"""Noise colour to the exponent ``a`` of its amplitude spectrum ``f**-a``."""

INTERVAL_SETS: Tuple[str, ...] = ("train", "dev")
"""Sets whose oracle intervals label every utterance's speech interval, neutral included."""

ORACLE_INTERVALS = "oracle_emo_segments"
"""The synthesizer's intervals of train and dev, in ``emo_segments`` format but under a name
the toolkit never reads: real corpora have no such thing, so training sees utterance labels
only unless a recipe copies this file to ``emo_segments`` on purpose (an oracle setting)."""

TABLES_VERSION = 3
"""Bumped when the tables a set holds change (2: emo_segments of train and dev; 3: those
intervals moved to oracle_emo_segments), so that sets finished by an older version are
regenerated."""


TRIM_THRESHOLD = 1e-4
"""Samples below this magnitude at a segment's ends count as silence."""

PEAK_LIMIT = 0.99
EDGE_SILENCE_S: Tuple[float, float] = (0.05, 0.20)
"""Range of the silence kept before and after an utterance, in seconds."""

SED_GAP_S: Tuple[float, float] = (0.15, 0.40)
"""Range of the silence between the segments of a test_sed utterance."""

SED_PATTERNS: Tuple[Tuple[Tuple[bool, ...], float], ...] = (
    ((False, True, False), 0.5),
    ((False, True), 0.25),
    ((True, False), 0.25),
)
"""test_sed segment patterns (True = the emotional segment) and their odds."""

_RESAMPLE_UP, _RESAMPLE_DOWN = 320, 441  # 22050 * 320 / 441 = 16000


@dataclass(frozen=True)
class Voice:
    """A speaker of the corpus: an eSpeak voice with habitual offsets.

    Attributes:
        spk: Speaker id (letters and digits).
        espeak: eSpeak voice name with variant, e.g. ``"en-us+m1"``.
        rate_offset: Added to every drawn rate (words per minute).
        pitch_offset: Added to every drawn pitch (eSpeak units).
    """

    spk: str
    espeak: str
    rate_offset: float = 0.0
    pitch_offset: float = 0.0


TRAIN_VOICES: Tuple[Voice, ...] = (
    Voice("usm1", "en-us+m1", 0, 2),
    Voice("usf1", "en-us+f1", 6, -2),
    Voice("gbm2", "en+m2", -6, 0),
    Voice("gbf2", "en+f2", 0, 3),
    Voice("rpm3", "en-gb-x-rp+m3", -8, -3),
    Voice("rpf5", "en-gb-x-rp+f5", 4, 0),
    Voice("scm6", "en-gb-scotland+m6", 8, 2),
    Voice("scf1", "en-gb-scotland+f1", -4, -4),
    Voice("cbm7", "en-029+m7", 10, 0),
    Voice("cbf2", "en-029+f2", -10, 2),
    Voice("lcm8", "en-gb-x-gbclan+m8", 2, 4),
    Voice("lcf5", "en-gb-x-gbclan+f5", -2, -2),
)
"""Voices of train and dev (variants m1-m3, m6-m8, f1, f2, f5)."""

TEST_VOICES: Tuple[Voice, ...] = (
    Voice("nym4", "en-us-nyc+m4", 5, -2),
    Voice("wmf3", "en-gb-x-gbcwmd+f3", -5, 2),
    Voice("usf4", "en-us+f4", 3, 0),
    Voice("rpm5", "en-gb-x-rp+m5", -3, 1),
)
"""Held-out voices of test and test_sed: their variants (m4, m5, f3, f4) and
two of their accents (New York City, West Midlands) never occur in training."""


@dataclass(frozen=True)
class Segment:
    """One synthesized sentence of an utterance.

    Attributes:
        text: The transcript (lower-case words).
        spoken: The text given to the synthesizer (with final punctuation).
        emotion: The emotion whose prosody was drawn.
        params: The eSpeak request.
    """

    text: str
    spoken: str
    emotion: str
    params: SynthesisParams


@dataclass(frozen=True)
class NoiseSpec:
    """Background noise of an utterance: colour, SNR in dB and seed."""

    color: str
    snr_db: float
    seed: int


@dataclass(frozen=True)
class UtteranceSpec:
    """Everything needed to render one utterance, drawn before synthesis.

    Attributes:
        utt_id: Utterance id (``<spk>-<set>-<index>``).
        set_name: The set it belongs to.
        spk: Speaker id.
        segments: Sentences in order (one, or two/three for test_sed).
        lead_silence: Silence before the first segment, seconds.
        gaps: Silence between consecutive segments, seconds.
        tail_silence: Silence after the last segment, seconds.
        noise: Background noise, or None.
        wav_path: Where the WAV file is written.
        floor_db: Level of the white noise floor in dBFS (RMS); its samples
            are seeded by the utterance id.
    """

    utt_id: str
    set_name: str
    spk: str
    segments: Tuple[Segment, ...]
    lead_silence: float
    gaps: Tuple[float, ...]
    tail_silence: float
    noise: Optional[NoiseSpec]
    wav_path: str
    floor_db: float = -84.0

    @property
    def text(self) -> str:
        """The transcript of the whole utterance."""
        return " ".join(seg.text for seg in self.segments)

    @property
    def emotion(self) -> str:
        """The utterance label: its emotional segment's emotion, else neutral."""
        for seg in self.segments:
            if seg.emotion != NEUTRAL:
                return seg.emotion
        return NEUTRAL


@dataclass(frozen=True)
class RenderedUtterance:
    """Rendered audio and where its segments lie.

    Attributes:
        audio: (T,) float32 samples at :data:`SAMPLE_RATE`.
        segment_bounds: Per segment ``(start, end, emotion)`` in samples
            (end exclusive).
        peak_limited: Whether the peak guard scaled the audio down.
    """

    audio: np.ndarray
    segment_bounds: Tuple[Tuple[int, int, str], ...]
    peak_limited: bool


@dataclass(frozen=True)
class CorpusOptions:
    """Options that determine the corpus content.

    Attributes:
        seed: Master seed.
        num_train: Utterances in train.
        num_dev: Utterances in dev.
        num_test: Utterances in test.
        num_test_sed: Utterances in test_sed.
        noise_prob: Probability that an utterance gets background noise.
        snr_range: (low, high) SNR in dB, drawn uniformly.
        multi_sentence_every: Every N-th utterance of train and dev (index
            ``i`` with ``i % N == N - 1``) joins two or three sentences of
            one voice like test_sed: neutral sentences around one sentence of
            the utterance's emotion (all neutral for a neutral utterance), so
            that training sees emotions change inside an utterance; 0: every
            train/dev utterance is one sentence.
        noise_floor_db: (low, high) level in dBFS (RMS) of the faint white
            noise floor every utterance gets, drawn uniformly. Real recordings
            never hold digital silence; eSpeak's output does, and its log-mel
            value (log of the float epsilon, about -15.9) lies some 20 units
            below any recorded signal, which inflates the CMVN variance and
            squeezes speech into a narrow range of the normalized input.
    """

    seed: int = 0
    num_train: int = 2000
    num_dev: int = 200
    num_test: int = 400
    num_test_sed: int = 200
    noise_prob: float = 0.3
    snr_range: Tuple[float, float] = (10.0, 30.0)
    noise_floor_db: Tuple[float, float] = (-90.0, -78.0)
    multi_sentence_every: int = 0

    def size(self, set_name: str) -> int:
        """Number of utterances of ``set_name``."""
        return int(getattr(self, f"num_{set_name}"))

    def check(self) -> None:
        """Raise ValueError on inconsistent options."""
        for name in SETS:
            if self.size(name) < 0:
                raise ValueError(f"--num-{name.replace('_', '-')} must be >= 0")
        if self.multi_sentence_every < 0:
            raise ValueError(f"--multi-sentence-every must be >= 0, got {self.multi_sentence_every}")
        if not 0.0 <= self.noise_prob <= 1.0:
            raise ValueError(f"--noise-prob must be in [0, 1], got {self.noise_prob}")
        low, high = self.snr_range
        if low > high:
            raise ValueError(f"--snr-range low {low} exceeds high {high}")
        low, high = self.noise_floor_db
        if low > high or high > -20.0:
            raise ValueError(f"--noise-floor-db must satisfy low <= high <= -20 dBFS, got {low} {high}")


def utterance_seed(seed: int, set_name: str, index: int) -> int:
    """A 63-bit seed derived from ``(seed, set_name, index)`` (stable across runs)."""
    digest = hashlib.sha256(f"mini_emo/{seed}/{set_name}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _grammars() -> Dict[str, SentenceGrammar]:
    # Shorter sentences keep utterances around 1.5-4 s; test_sed joins 2-3.
    return {
        "train": SentenceGrammar(4, 9),
        "dev": SentenceGrammar(4, 9),
        "test": SentenceGrammar(4, 9),
        "test_sed": SentenceGrammar(4, 7),
        "train_extra": SentenceGrammar(4, 9),
        "dev_extra": SentenceGrammar(4, 9),
    }


def sentence_pools(options: CorpusOptions) -> Dict[str, List[str]]:
    """Distinct sentences for every set (test_sed gets 3 per utterance).

    The 2 further sentences of each multi-sentence train/dev utterance are
    drawn after all sets and appended to the set's list, so the other sets'
    sentences do not depend on ``multi_sentence_every``.
    """
    sizes = {name: options.size(name) * (3 if name == "test_sed" else 1) for name in SETS}
    for name in INTERVAL_SETS:
        extra = 2 * _num_multi(options.size(name), options.multi_sentence_every)
        if extra:
            sizes[f"{name}_extra"] = extra
    rng = random.Random(f"mini_emo/{options.seed}/sentences")
    pools = make_disjoint_sentence_sets(sizes, rng, _grammars())
    for name in INTERVAL_SETS:
        pools[name] = pools[name] + pools.pop(f"{name}_extra", [])
    return pools


def _num_multi(index: int, every: int) -> int:
    """Multi-sentence utterances among the first ``index`` of a train/dev set."""
    return index // every if every > 0 else 0


def _balanced_emotions(n: int, rng: random.Random) -> List[str]:
    emotions = [DEFAULT_EMOTIONS[i % len(DEFAULT_EMOTIONS)] for i in range(n)]
    rng.shuffle(emotions)
    return emotions


def _draw_noise(rng: random.Random, options: CorpusOptions) -> Optional[NoiseSpec]:
    if rng.random() >= options.noise_prob:
        return None
    color = rng.choice(sorted(NOISE_COLORS))
    snr = rng.uniform(*options.snr_range)
    return NoiseSpec(color, round(snr, 2), rng.getrandbits(32))


def _segment(sentence: str, emotion: str, voice: Voice, rng: random.Random) -> Segment:
    prosody = sample_prosody(emotion, rng, voice.rate_offset, voice.pitch_offset)
    params = prosody.to_params(voice.espeak, seed=rng.getrandbits(31))
    return Segment(sentence, SentenceGrammar.spoken_form(sentence), emotion, params)


def plan_set(
    set_name: str, options: CorpusOptions, sentences: Sequence[str], wav_dir: Path
) -> List[UtteranceSpec]:
    """Draw every utterance of one set (no synthesis).

    Args:
        set_name: One of :data:`SETS`.
        options: Corpus options.
        sentences: This set's sentence pool (from :func:`sentence_pools`).
        wav_dir: Root of the WAV files (``<wav_dir>/<set_name>/<utt>.wav``).

    Returns:
        The utterance specs in index order.
    """
    n = options.size(set_name)
    set_dir = wav_dir.resolve() / set_name
    specs: List[UtteranceSpec] = []
    if set_name in ("train", "dev"):
        emotions = _balanced_emotions(n, random.Random(f"mini_emo/{options.seed}/{set_name}/emotions"))
    for i in range(n):
        rng = random.Random(utterance_seed(options.seed, set_name, i))
        if set_name in ("train", "dev"):
            emotion = emotions[i]
            weights = [variant_weight(emotion, v.espeak) for v in TRAIN_VOICES]
            voice = rng.choices(TRAIN_VOICES, weights=weights)[0]
            every = options.multi_sentence_every
            gaps: Tuple[float, ...] = ()
            if every > 0 and i % every == every - 1:
                # Its own sentence and 2 from the end of the list (sentence_pools).
                extra = n + 2 * _num_multi(i, every)
                texts = (sentences[i], sentences[extra], sentences[extra + 1])
                patterns = [p for p, _ in SED_PATTERNS]
                pattern = rng.choices(patterns, weights=[w for _, w in SED_PATTERNS])[0]
                segments = tuple(
                    _segment(texts[j], emotion if is_emo else NEUTRAL, voice, rng)
                    for j, is_emo in enumerate(pattern)
                )
                gaps = tuple(round(rng.uniform(*SED_GAP_S), 3) for _ in range(len(segments) - 1))
            else:
                segments = (_segment(sentences[i], emotion, voice, rng),)
        elif set_name == "test":
            # Latin-square order: every 4 consecutive utterances cover all
            # emotions, and every 16 all voice x emotion cells.
            emotion = DEFAULT_EMOTIONS[i % len(DEFAULT_EMOTIONS)]
            voice = TEST_VOICES[(i // len(DEFAULT_EMOTIONS) + i) % len(TEST_VOICES)]
            segments = (_segment(sentences[i], emotion, voice, rng),)
            gaps = ()
        elif set_name == "test_sed":
            # 3 emotions and 4 voices are coprime: every 12 consecutive
            # utterances cover each voice x emotion cell once.
            emotion = EMOTIONAL[i % len(EMOTIONAL)]
            voice = TEST_VOICES[i % len(TEST_VOICES)]
            patterns = [p for p, _ in SED_PATTERNS]
            pattern = rng.choices(patterns, weights=[w for _, w in SED_PATTERNS])[0]
            segments = tuple(
                _segment(sentences[3 * i + j], emotion if is_emo else NEUTRAL, voice, rng)
                for j, is_emo in enumerate(pattern)
            )
            gaps = tuple(round(rng.uniform(*SED_GAP_S), 3) for _ in range(len(segments) - 1))
        else:
            raise ValueError(f"unknown set {set_name!r}; choose from {SETS}")
        lead = round(rng.uniform(*EDGE_SILENCE_S), 3)
        tail = round(rng.uniform(*EDGE_SILENCE_S), 3)
        noise = _draw_noise(rng, options)
        floor_db = round(rng.uniform(*options.noise_floor_db), 2)
        utt_id = f"{voice.spk}-{set_name}-{i:05d}"
        specs.append(
            UtteranceSpec(
                utt_id, set_name, voice.spk, segments, lead, gaps, tail, noise,
                str(set_dir / f"{utt_id}.wav"), floor_db,
            )
        )
    return specs


def make_noise(num_samples: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Coloured Gaussian noise with unit RMS.

    Args:
        num_samples: Length T.
        color: ``"white"``, ``"pink"`` (power ~ 1/f) or ``"brown"`` (~ 1/f^2).
        rng: Source of randomness.

    Returns:
        (T,) float64 noise (DC removed for coloured noise).
    """
    if color not in NOISE_COLORS:
        raise ValueError(f"unknown noise colour {color!r}; choose from {sorted(NOISE_COLORS)}")
    if num_samples == 0:
        return np.zeros(0)
    white = rng.standard_normal(num_samples)
    exponent = NOISE_COLORS[color]
    if exponent == 0.0:
        noise = white
    else:
        spectrum = np.fft.rfft(white)
        freqs = np.arange(spectrum.shape[0], dtype=np.float64)
        scale = np.zeros_like(freqs)
        scale[1:] = freqs[1:] ** -exponent
        noise = np.fft.irfft(spectrum * scale, n=num_samples)
    rms = float(np.sqrt(np.mean(noise**2)))
    return noise / rms if rms > 0 else noise


def render_segment(segment: Segment, synthesizer: EspeakSynthesizer) -> np.ndarray:
    """Synthesize one sentence at 16 kHz with leading/trailing silence removed.

    Returns:
        (T,) float64 samples.

    Raises:
        EspeakError: If the synthesizer returns only silence.
    """
    audio, rate = synthesizer.synthesize(segment.spoken, segment.params)
    if rate != ESPEAK_SAMPLE_RATE:
        raise EspeakError(f"unexpected synthesizer rate {rate}")
    audio16 = resample_poly(audio.astype(np.float64), _RESAMPLE_UP, _RESAMPLE_DOWN)
    voiced = np.flatnonzero(np.abs(audio16) > TRIM_THRESHOLD)
    if voiced.size == 0:
        raise EspeakError(f"eSpeak returned silence for {segment.spoken!r} ({segment.params})")
    return audio16[voiced[0] : voiced[-1] + 1]


def render_utterance(spec: UtteranceSpec, synthesizer: EspeakSynthesizer) -> RenderedUtterance:
    """Synthesize, join, add noise and level-guard one utterance."""
    pieces: List[np.ndarray] = [np.zeros(int(round(spec.lead_silence * SAMPLE_RATE)))]
    bounds: List[Tuple[int, int, str]] = []
    pos = pieces[0].shape[0]
    speech_energy = 0.0
    speech_samples = 0
    for j, segment in enumerate(spec.segments):
        if j > 0:
            gap = np.zeros(int(round(spec.gaps[j - 1] * SAMPLE_RATE)))
            pieces.append(gap)
            pos += gap.shape[0]
        audio = render_segment(segment, synthesizer)
        pieces.append(audio)
        bounds.append((pos, pos + audio.shape[0], segment.emotion))
        pos += audio.shape[0]
        speech_energy += float(np.sum(audio**2))
        speech_samples += audio.shape[0]
    pieces.append(np.zeros(int(round(spec.tail_silence * SAMPLE_RATE))))
    mix = np.concatenate(pieces)
    if spec.noise is not None:
        noise = make_noise(mix.shape[0], spec.noise.color, np.random.default_rng(spec.noise.seed))
        speech_power = speech_energy / max(speech_samples, 1)
        mix = mix + noise * np.sqrt(speech_power / 10.0 ** (spec.noise.snr_db / 10.0))
    floor_seed = int.from_bytes(hashlib.sha256(spec.utt_id.encode()).digest()[:8], "little")
    floor = np.random.default_rng(floor_seed).standard_normal(mix.shape[0])
    mix = mix + floor * 10.0 ** (spec.floor_db / 20.0)
    peak = float(np.max(np.abs(mix)))
    limited = peak > PEAK_LIMIT
    if limited:
        mix = mix * (PEAK_LIMIT / peak)
    return RenderedUtterance(mix.astype(np.float32), tuple(bounds), limited)


def write_wav(path: "str | Path", audio: np.ndarray) -> None:
    """Atomically write 16 kHz mono 16-bit PCM WAV.

    Args:
        path: Destination.
        audio: (T,) float samples in [-1, 1].
    """
    buf = io.BytesIO()
    sf.write(buf, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    with atomic_write(path, "wb") as fh:
        fh.write(buf.getvalue())


@dataclass(frozen=True)
class _Result:
    utt_id: str
    num_samples: int
    segment_bounds: Tuple[Tuple[int, int, str], ...]
    peak_limited: bool


_WORKER_BACKEND = "auto"


def _init_worker(backend: str) -> None:
    global _WORKER_BACKEND
    _WORKER_BACKEND = backend


def _render_and_write(spec: UtteranceSpec) -> _Result:
    rendered = render_utterance(spec, get_synthesizer(_WORKER_BACKEND))
    write_wav(spec.wav_path, rendered.audio)
    return _Result(spec.utt_id, rendered.audio.shape[0], rendered.segment_bounds, rendered.peak_limited)


def scp_path(path: "str | Path", abs_paths: bool = False) -> str:
    """The path written to wav.scp: relative to the working directory if below it."""
    resolved = Path(path).resolve()
    if abs_paths:
        return str(resolved)
    rel = os.path.relpath(resolved, Path.cwd().resolve())
    return str(resolved) if rel.startswith("..") else rel


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}"


def write_set(
    data_dir: Path, specs: Sequence[UtteranceSpec], results: Dict[str, _Result], abs_paths: bool
) -> None:
    """Write one set's Kaldi-style tables, emo_segments (not for test) and test_sed's zed.json."""
    data_dir.mkdir(parents=True, exist_ok=True)
    by_id = {spec.utt_id: spec for spec in specs}
    paths = {u: scp_path(s.wav_path, abs_paths) for u, s in by_id.items()}
    write_table(data_dir / "wav.scp", paths)
    write_table(data_dir / "text", {u: s.text for u, s in by_id.items()})
    write_table(data_dir / "utt2spk", {u: s.spk for u, s in by_id.items()})
    write_table(data_dir / "utt2emo", {u: s.emotion for u, s in by_id.items()})
    write_table(data_dir / "utt2dur", {u: _fmt(results[u].num_samples / SAMPLE_RATE) for u in by_id})
    spk2utt: Dict[str, List[str]] = {}
    for utt in sorted(by_id):
        spk2utt.setdefault(by_id[utt].spk, []).append(utt)
    write_table(data_dir / "spk2utt", {spk: " ".join(utts) for spk, utts in spk2utt.items()})
    if specs and specs[0].set_name in INTERVAL_SETS:
        # Every utterance's speech interval with its emotion, neutral included
        # (see the module docstring), kept aside as the oracle.
        speech = [
            f"{utt} {_fmt(start / SAMPLE_RATE)} {_fmt(end / SAMPLE_RATE)} {emotion}\n"
            for utt in sorted(by_id)
            for start, end, emotion in results[utt].segment_bounds
        ]
        with atomic_write(data_dir / ORACLE_INTERVALS) as fh:
            fh.writelines(speech)
        (data_dir / "emo_segments").unlink(missing_ok=True)  # written there by tables version 2
    if specs and specs[0].set_name == "test_sed":
        zed: Dict[str, dict] = {}
        lines: List[str] = []
        for utt in sorted(by_id):
            res = results[utt]
            emo_intervals = []
            for start, end, emotion in res.segment_bounds:
                if emotion == NEUTRAL:
                    continue
                s, e = _fmt(start / SAMPLE_RATE), _fmt(end / SAMPLE_RATE)
                lines.append(f"{utt} {s} {e} {emotion}\n")
                emo_intervals.append({"emo": emotion, "start": float(s), "end": float(e)})
            zed[utt] = {
                "wav": paths[utt],
                "duration": float(_fmt(res.num_samples / SAMPLE_RATE)),
                "emotion": emo_intervals,
                "transcription": by_id[utt].text,
            }
        with atomic_write(data_dir / "emo_segments") as fh:
            fh.writelines(lines)
        with atomic_write(data_dir / "zed.json") as fh:
            json.dump(zed, fh, indent=2, sort_keys=True, allow_nan=False)
            fh.write("\n")


def _remove_stale_wavs(set_wav_dir: Path, set_name: str, keep: "set[str]") -> None:
    """Delete WAV files of an earlier, different run of this set."""
    pattern = re.compile(rf"^[a-z0-9]+-{re.escape(set_name)}-\d{{5}}\.wav$")
    stale = [p for p in set_wav_dir.iterdir() if pattern.match(p.name) and p.name not in keep]
    for path in stale:
        path.unlink()
    if stale:
        logger.info("%s: removed %d stale WAV files from %s", set_name, len(stale), set_wav_dir)


def _set_signature(set_name: str, options: CorpusOptions, wav_dir: Path) -> dict:
    opts = asdict(options)
    if set_name not in INTERVAL_SETS or not options.multi_sentence_every:
        # Added later; it changes train/dev only, and 0 gives the corpus of
        # before, whose finished sets stay valid.
        del opts["multi_sentence_every"]
    signature = {
        "corpus": "mini_emo",
        "tables": TABLES_VERSION,
        "set": set_name,
        "options": opts,
        "wav_dir": str(wav_dir),
    }
    return json.loads(json.dumps(signature))  # tuples -> lists, as read back


def _iter_results(
    specs: Sequence[UtteranceSpec], pool: "multiprocessing.pool.Pool | None", backend: str, desc: str
) -> Iterator[_Result]:
    if pool is None:
        _init_worker(backend)
        iterator: Iterable[_Result] = map(_render_and_write, specs)
    else:
        iterator = pool.imap_unordered(_render_and_write, specs, chunksize=8)
    yield from tqdm(iterator, total=len(specs), desc=desc, unit="utt", file=sys.stderr)


def generate_corpus(
    out_dir: "str | Path",
    options: CorpusOptions,
    wav_dir: "str | Path | None" = None,
    nj: int = 1,
    backend: str = "auto",
    force: bool = False,
    abs_paths: bool = False,
) -> Dict[str, List[UtteranceSpec]]:
    """Synthesize the corpus and write its data directories.

    Args:
        out_dir: Where ``<set>/`` data directories go.
        options: Content options (seed, sizes, noise).
        wav_dir: Root of the WAV files (default ``<out_dir>/../wav``).
        nj: Parallel worker processes (the output does not depend on it).
        backend: eSpeak back end (``auto``, ``ctypes``, ``program``).
        force: Regenerate sets that are already marked done.
        abs_paths: Write absolute paths to wav.scp.

    Returns:
        The utterance specs of every set (including skipped ones).

    Raises:
        ValueError: On bad options, or when a finished set was made with
            other options and ``force`` is false.
    """
    options.check()
    if nj < 1:
        raise ValueError(f"--nj must be >= 1, got {nj}")
    backend = resolve_backend(backend)
    out_dir = Path(out_dir)
    wav_root = Path(wav_dir) if wav_dir is not None else Path(os.path.normpath(out_dir / ".." / "wav"))
    pools = sentence_pools(options)
    plans = {name: plan_set(name, options, pools[name], wav_root) for name in SETS}
    logger.info(
        "mini_emo: seed=%d sizes=%s train/dev voices=%s test voices=%s",
        options.seed,
        {n: options.size(n) for n in SETS},
        ",".join(v.spk for v in TRAIN_VOICES),
        ",".join(v.spk for v in TEST_VOICES),
    )
    todo: List[str] = []
    for name in SETS:
        done = out_dir / name / ".done"
        signature = _set_signature(name, options, wav_root)
        if done.exists() and not force:
            previous = json.loads(done.read_text(encoding="utf-8"))
            if previous.get("tables") != TABLES_VERSION and {
                k: v for k, v in previous.items() if k != "tables"
            } == {k: v for k, v in signature.items() if k != "tables"}:
                # Same options, older table layout: the same audio, regenerated.
                logger.info("%s: written by an older version (tables %s), regenerating", name,
                            previous.get("tables", 1))
                todo.append(name)
                continue
            if previous != signature:
                raise ValueError(
                    f"{out_dir / name} was generated with other options ({previous['options']}); "
                    "use --force to regenerate it"
                )
            logger.info("%s: already done (%s), skipping", name, done)
            continue
        todo.append(name)
    pool = None
    if nj > 1 and any(plans[name] for name in todo):
        pool = multiprocessing.get_context("spawn").Pool(nj, initializer=_init_worker, initargs=(backend,))
    finished = False
    try:
        for name in todo:
            specs = plans[name]
            data_dir = out_dir / name
            done = data_dir / ".done"
            if done.exists():
                done.unlink()
            (wav_root / name).mkdir(parents=True, exist_ok=True)
            results = {r.utt_id: r for r in _iter_results(specs, pool, backend, name)}
            write_set(data_dir, specs, results, abs_paths)
            _remove_stale_wavs(wav_root / name, name, {Path(s.wav_path).name for s in specs})
            total = sum(r.num_samples for r in results.values()) / SAMPLE_RATE
            limited = sum(r.peak_limited for r in results.values())
            logger.info(
                "%s: %d utterances, %.2f h of audio, %d peak-limited -> %s",
                name, len(specs), total / 3600.0, limited, data_dir,
            )
            with atomic_write(done) as fh:
                json.dump(_set_signature(name, options, wav_root), fh, sort_keys=True, allow_nan=False)
                fh.write("\n")
        finished = True
    finally:
        if pool is not None:
            if finished:
                pool.close()
            else:  # an error or interrupt: do not wait for queued work
                pool.terminate()
            pool.join()
    return plans


def get_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m ent.synth.mini_emo",
        description="Synthesize the mini_emo emotional English corpus with eSpeak NG "
        "(Kaldi-style data dirs train, dev, test, test_sed).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out-dir", default="data", help="where the <set>/ data directories go")
    parser.add_argument(
        "--wav-dir", default=None, help="root of the WAV files (default: <out-dir>/../wav)"
    )
    parser.add_argument("--seed", type=int, default=0, help="master random seed")
    parser.add_argument("--nj", type=int, default=1, help="parallel worker processes")
    parser.add_argument("--num-train", type=int, default=2000, help="train utterances")
    parser.add_argument("--num-dev", type=int, default=200, help="dev utterances")
    parser.add_argument("--num-test", type=int, default=400, help="test utterances (balanced)")
    parser.add_argument("--num-test-sed", type=int, default=200, help="test_sed utterances")
    parser.add_argument("--noise-prob", type=float, default=0.3, help="probability of background noise")
    parser.add_argument(
        "--snr-range", type=float, nargs=2, default=[10.0, 30.0], metavar=("LOW", "HIGH"),
        help="SNR range of the background noise in dB",
    )
    parser.add_argument(
        "--noise-floor-db", type=float, nargs=2, default=[-90.0, -78.0], metavar=("LOW", "HIGH"),
        help="level range in dBFS of the faint noise floor every utterance gets (no digital silence)",
    )
    parser.add_argument(
        "--multi-sentence-every", type=int, default=0, metavar="N",
        help="every N-th train/dev utterance joins 2-3 sentences (neutral around emotional, like "
        "test_sed); 0: none",
    )
    parser.add_argument(
        "--backend", choices=("auto", "ctypes", "program"), default="auto",
        help="eSpeak NG back end: the library via ctypes (espeakng-loader) or the espeak-ng program",
    )
    parser.add_argument("--abs-paths", action="store_true", help="write absolute paths to wav.scp")
    parser.add_argument("--force", action="store_true", help="regenerate sets marked done")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Command-line entry point."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
    )
    options = CorpusOptions(
        seed=args.seed,
        num_train=args.num_train,
        num_dev=args.num_dev,
        num_test=args.num_test,
        num_test_sed=args.num_test_sed,
        noise_prob=args.noise_prob,
        snr_range=(float(args.snr_range[0]), float(args.snr_range[1])),
        noise_floor_db=(float(args.noise_floor_db[0]), float(args.noise_floor_db[1])),
        multi_sentence_every=args.multi_sentence_every,
    )
    generate_corpus(
        args.out_dir, options, wav_dir=args.wav_dir, nj=args.nj, backend=args.backend,
        force=args.force, abs_paths=args.abs_paths,
    )


if __name__ == "__main__":
    main()
