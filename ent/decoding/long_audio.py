"""Long audio: decode a recording piece by piece and stitch the pieces back in utterance time.

A Conformer encoder attends over the whole input, so decoding a recording in
one pass needs memory that grows with the square of its length (a 20-minute
recording: more than 20 GB). Audio longer than ``long_audio_max`` seconds
(:class:`~ent.decoding.recognizer.DecodeOptions`) is therefore cut into
pieces of at most that length, each piece is decoded on its own, one after
the other, and the pieces' results are joined into one result of the whole
recording: memory is bounded by the piece, not by the recording. Audio up to
``long_audio_max`` decodes exactly as before (one piece).

Where to cut (:class:`PieceSplitter`)
-------------------------------------
The cuts are chosen *causally*, from the audio before the cut only, so that a
live stream (:class:`~ent.decoding.streaming.StreamingSession`) can cut itself
at the same places as offline decoding and both give the same result. Frame
energies are those of :mod:`ent.decoding.segmentation` (25 ms windows every
10 ms); a frame is a pause frame when its energy is at least
:data:`~ent.features.prosody.PAUSE_DB` below the 90th percentile of the
energies of the current piece so far (a histogram of 0.1 dB bins, so the
state stays bounded). Candidate cuts lie on multiples of the encoder frame
(``align`` samples from the start of the audio), so the frames of every piece
line up with those of the whole recording. At a candidate ``p``:

* a *hard cut* is made when the piece has reached ``long_audio_max`` (its
  largest multiple of ``align``);
* otherwise, once the piece is at least ``long_audio_min`` long, a cut is made
  when the last ``long_audio_pause`` seconds before ``p`` are all pause frames
  (the cut falls inside the pause; the rest of the pause begins the next
  piece).

Stitching (:class:`ResultStitcher`)
-----------------------------------
Piece ``k`` starts at sample ``s_k`` (a multiple of ``align``), i.e. at
encoder frame ``s_k / align`` of the recording:

* **frames**: every piece but the last covers exactly its
  ``(s_{k+1} - s_k) / align`` frames: its own frame emotions, padded with its
  last one (the subsampling of a piece gives one or two frames fewer than its
  share). The last piece keeps its own frames. The whole is then fitted (cut,
  or padded with the last emotion) to the frame count of unsplit decoding
  (:func:`encoder_frames`; with the fbank front end that count already equals
  the sum, except when the last piece is shorter than a few frames), so
  ``frame_emotions`` has one entry per encoder frame of the recording;
* **words**: times shifted by the piece's first frame (exact multiples of the
  frame shift, as unsplit decoding gives them); **tokens** concatenated;
  **text**: the pieces' texts joined with a space; **score**: the sum;
  **segments**: recomputed from the stitched frame emotions;
* **utterance emotion**: with ``utt_emotion_from: head``, the
  duration-weighted mean of the pieces' head posteriors (each piece's weight is
  its number of samples), then the argmax. With ``lattice``, the pieces'
  pooled scores are pooled again exactly as the rule pools frames: ``max`` is
  the element-wise maximum (the maximum over all frames of the recording), then
  the rule's threshold decides; ``mean`` is the mean weighted by each piece's
  frame count (the mean over all frames), then the argmax.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Deque, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ent.data.audio import TARGET_SAMPLE_RATE
from ent.decoding.hypothesis import Word, frames_to_segments, lattice_utterance_emotion
from ent.decoding.segmentation import HOP_S, LOUD_QUANTILE, WINDOW_S
from ent.decoding.writer import DecodeResult
from ent.features.prosody import PAUSE_DB

DEFAULT_MAX_S = 60.0
"""Default longest piece (s): audio up to this length decodes in one piece."""
# A stream does not know its length: it may end a segment at a pause once the
# segment is DEFAULT_MIN_S long. 30 s keeps the utterances of emotion corpora
# (mini_emo's mixes reach 20 s, IEMOCAP's longest turns about 35 s) in one
# segment, so that streaming them gives what it gave before segments existed.
DEFAULT_MIN_S = 30.0
"""Default shortest piece (s) that may end at a pause (a hard cut can leave a shorter last piece)."""
DEFAULT_PAUSE_S = 0.3
"""Default pause (s) that ends a piece."""

_DB_LOW, _DB_HIGH, _DB_BIN = -110.0, 50.0, 0.1
_POWER_FLOOR = 1e-10  # as ent.decoding.segmentation: silence is -100 dB
_BLOCK = 16000  # samples processed per step of PieceSplitter.accept (bounded buffers)


class PieceSplitter:
    """Causal cut positions of a stream of audio (the rule of the module docstring).

    Feed the audio in any pieces; the cut positions do not depend on how it is
    cut into pieces (each candidate is decided from the same samples with
    the same array shapes).

    Args:
        max_s: Longest piece in seconds (> 0).
        min_s: Shortest piece that may end at a pause, in seconds (> 0; above
            ``max_s`` it counts as ``max_s``: hard cuts only).
        pause_s: Pause that ends a piece, in seconds (> 0).
        align: Cuts fall on multiples of this many samples (the encoder frame).
        sample_rate: Sample rate of the audio.
        pause_db: A frame is a pause frame this far below the piece's loud level.

    Raises:
        ValueError: On lengths out of range, or ``max_s`` shorter than one ``align``.
    """

    def __init__(self, max_s: float, min_s: float, pause_s: float, align: int,
                 sample_rate: int = TARGET_SAMPLE_RATE, pause_db: float = PAUSE_DB) -> None:
        check_piece_lengths(max_s, min_s, pause_s)
        if align < 1:
            raise ValueError(f"align must be >= 1, got {align}")
        self.align = int(align)
        self.max_samples = int(max_s * sample_rate) // self.align * self.align
        if self.max_samples < self.align:
            raise ValueError(f"long_audio_max {max_s} s is shorter than one encoder frame ({align} samples)")
        self.min_samples = min(self.max_samples, math.ceil(min_s * sample_rate / self.align) * self.align)
        self.win = int(round(WINDOW_S * sample_rate))
        self.hop = int(round(HOP_S * sample_rate))
        self.pause_frames = max(1, math.ceil(pause_s / HOP_S - 1e-9))
        self.pause_db = float(pause_db)
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self._carry = np.zeros(0, dtype=np.float32)  # samples from _carry_start on
        self._carry_start = 0
        self._received = 0
        self._next_frame = 0  # first frame whose energy is not computed yet
        self._next_cut = self.align  # next candidate position
        self._piece_start = 0
        self._hist = np.zeros(int(round((_DB_HIGH - _DB_LOW) / _DB_BIN)) + 1, dtype=np.int64)
        self._recent: Deque[float] = deque(maxlen=self.pause_frames)

    @property
    def piece_start(self) -> int:
        """First sample of the current piece."""
        return self._piece_start

    def accept(self, samples: Union[np.ndarray, torch.Tensor]) -> List[int]:
        """Take the next samples; return the cuts decided with them.

        Args:
            samples: The next samples of the stream. (N,)

        Returns:
            Cut positions (sample indices from the start of the stream, in
            order, each within the samples received so far).
        """
        x = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
        if x.ndim != 1:
            raise ValueError(f"samples must be one-dimensional, got shape {x.shape}")
        cuts: List[int] = []
        for i in range(0, len(x), _BLOCK):
            self._carry = np.concatenate([self._carry, x[i:i + _BLOCK].astype(np.float32)])
            self._received += min(_BLOCK, len(x) - i)
            while self._next_cut <= self._received:
                if self._decide(self._next_cut):
                    cuts.append(self._next_cut)
                self._next_cut += self.align
            keep_from = self._next_frame * self.hop
            self._carry = self._carry[keep_from - self._carry_start:]
            self._carry_start = keep_from
        return cuts

    def _decide(self, p: int) -> bool:
        """Compute the frames that end by ``p``, then whether to cut at ``p``."""
        last = (p - self.win) // self.hop  # last frame ending at or before p
        if last >= self._next_frame:
            first = self._next_frame
            start = first * self.hop - self._carry_start
            span = self._carry[start: start + (last - first) * self.hop + self.win].astype(np.float64)
            frames = np.lib.stride_tricks.sliding_window_view(span, self.win)[:: self.hop]
            energy = 10.0 * np.log10(np.mean(frames * frames, axis=1) + _POWER_FLOOR)
            starts = np.arange(first, last + 1) * self.hop
            inside = energy[starts >= self._piece_start]
            bins = np.clip(((inside - _DB_LOW) / _DB_BIN).astype(np.int64), 0, len(self._hist) - 1)
            np.add.at(self._hist, bins, 1)
            self._recent.extend(energy.tolist())
            self._next_frame = last + 1
        length = p - self._piece_start
        cut = length >= self.max_samples
        if not cut and length >= self.min_samples and len(self._recent) == self.pause_frames and self._hist.any():
            counts = np.cumsum(self._hist)
            rank = max(1, math.ceil(LOUD_QUANTILE * counts[-1]))
            loud = _DB_LOW + (int(np.searchsorted(counts, rank)) + 0.5) * _DB_BIN
            cut = max(self._recent) <= loud - self.pause_db
        if cut:
            self._piece_start = p
            self._hist[:] = 0
        return cut


def check_piece_lengths(max_s: float, min_s: float, pause_s: float) -> None:
    """Refuse piece lengths out of range (see :class:`PieceSplitter`)."""
    if not max_s > 0:
        raise ValueError(f"long_audio_max must be > 0, got {max_s}")
    if not 0 < pause_s <= min(min_s, max_s):
        raise ValueError(f"need 0 < long_audio_pause <= long_audio_min and long_audio_max, got "
                         f"{pause_s}, {min_s} and {max_s}")


def split_long_audio(wave: np.ndarray, max_s: float, min_s: float, pause_s: float, align: int,
                     sample_rate: int = TARGET_SAMPLE_RATE) -> List[Tuple[int, int]]:
    """Pieces of a recording by :class:`PieceSplitter`.

    Args:
        wave: The recording. (N,)
        max_s, min_s, pause_s, align, sample_rate: See :class:`PieceSplitter`.

    Returns:
        ``[start, end)`` sample ranges covering ``[0, N)`` in order, none
        empty; ``[(0, N)]`` when nothing is cut.
    """
    cuts = [c for c in PieceSplitter(max_s, min_s, pause_s, align, sample_rate).accept(wave) if c < len(wave)]
    bounds = [0] + cuts + [len(wave)]
    return list(zip(bounds[:-1], bounds[1:]))


def encoder_frames(model: torch.nn.Module, num_samples: int) -> Optional[int]:
    """Encoder frames of unsplit decoding of ``num_samples`` samples, None if the front end cannot tell.

    Uses the front end's ``num_frames`` (fbank) and the encoder's
    ``subsampled_lengths``.
    """
    num_frames = getattr(model.frontend, "num_frames", None)
    lengths = getattr(model.encoder, "subsampled_lengths", None)
    if num_frames is None or lengths is None:
        return None
    return int(lengths(torch.tensor([int(num_frames(int(num_samples)))]))[0])


def shift_time(seconds: float, frames: int, frame_shift: float) -> float:
    """A time on the frame grid (``f * frame_shift``) moved by ``frames`` frames: ``(f + frames) * frame_shift``."""
    return (int(round(seconds / frame_shift)) + frames) * frame_shift


def shift_words(words: Sequence[Word], frames: int, frame_shift: float) -> List[Word]:
    """Words of a piece in the time of the recording (the piece starts at frame ``frames``)."""
    if frames == 0:
        return list(words)
    return [Word(w.text, shift_time(w.start, frames, frame_shift), shift_time(w.end, frames, frame_shift),
                 w.emotion, w.emotion_id, list(w.tokens)) for w in words]


def fit_frames(frames: Sequence[str], count: int, fill: str) -> List[str]:
    """``frames`` cut, or padded with their last entry (``fill`` when empty), to ``count`` entries."""
    if len(frames) >= count:
        return list(frames[:count])
    return list(frames) + [frames[-1] if frames else fill] * (count - len(frames))


class ResultStitcher:
    """Join the results of consecutive pieces into the result of the recording (module docstring).

    Args:
        emotions: Emotion names by class id.
        neutral: The neutral class.
        frame_shift: Seconds per encoder frame.
        align: Samples per encoder frame (pieces start at multiples of it).
        utt_emotion_from: ``head`` or ``lattice`` (how the pieces' emotion scores pool).
        lattice_rule: ``max`` or ``mean`` (``lattice`` only).
        lattice_threshold: Peak posterior an emotion needs under ``max``.
    """

    def __init__(self, emotions: Sequence[str], neutral: str, frame_shift: float, align: int,
                 utt_emotion_from: str = "head", lattice_rule: str = "max", lattice_threshold: float = 0.5) -> None:
        self.emotions = list(emotions)
        self.neutral = neutral
        self.frame_shift = float(frame_shift)
        self.align = int(align)
        self.utt_emotion_from = utt_emotion_from
        self.lattice_rule = lattice_rule
        self.lattice_threshold = lattice_threshold
        self.texts: List[str] = []
        self.tokens: List[str] = []
        self.words: List[Word] = []
        self.frames: List[str] = []
        self.score = 0.0
        self._pooled: Optional[torch.Tensor] = None
        self._weight = 0.0
        self._end = 0  # end sample of the last piece added
        self._pad = 0  # frames still owed to the last piece (added when the next one starts)

    @property
    def num_pieces(self) -> int:
        """Pieces added so far."""
        return len(self.texts)

    @property
    def text(self) -> str:
        """The joined text so far."""
        return " ".join(t for t in self.texts if t)

    def pending_frames(self) -> List[str]:
        """The padding frames the last piece is owed, once the next one starts."""
        return [self.frames[-1] if self.frames else self.neutral] * self._pad

    def add(self, piece: DecodeResult, start: int, end: int) -> None:
        """Add the next piece.

        Args:
            piece: Its result (in the piece's own time).
            start: Its first sample in the recording (the previous piece's end).
            end: Its end sample (``start`` + its length).
        """
        if start != self._end or start % self.align or end < start:
            raise ValueError(f"piece [{start}, {end}) does not follow the piece ending at {self._end} "
                             f"on the {self.align}-sample frame grid")
        self.frames += self.pending_frames()
        offset = start // self.align
        if len(self.frames) != offset:
            raise ValueError(f"{len(self.frames)} frames before a piece that starts at frame {offset}")
        self.texts.append(piece.text)
        self.tokens += piece.tokens
        self.words += shift_words(piece.words, offset, self.frame_shift)
        share = (end - start) // self.align
        own = list(piece.frame_emotions[:share])
        self.frames += own
        self._pad = share - len(own)
        self.score += float(piece.score)
        self._end = end
        if piece.emotion_scores:
            scores = torch.tensor([piece.emotion_scores[name] for name in self.emotions], dtype=torch.float64)
            self._pool(scores, float(end - start) if self.utt_emotion_from == "head" else len(piece.frame_emotions))

    def _pool(self, scores: torch.Tensor, weight: float) -> None:
        if self.utt_emotion_from == "lattice" and self.lattice_rule == "max":
            self._pooled = scores if self._pooled is None else torch.maximum(self._pooled, scores)
            return
        if weight <= 0:
            return
        self._pooled = scores * weight if self._pooled is None else self._pooled + scores * weight
        self._weight += weight

    def result(self, utt: str, total_frames: Optional[int], last_frames: Sequence[str] = ()) -> DecodeResult:
        """The stitched result.

        Args:
            utt: Utterance id.
            total_frames: Encoder frames of the whole recording (unsplit
                decoding; :func:`encoder_frames`), or None: what the pieces give.
            last_frames: Frame emotions of the last piece beyond its share (the
                last piece is added with its own length as share, so none
                normally; see :func:`stitch_pieces`).
        """
        frames = self.frames + list(last_frames)
        if total_frames is not None:
            frames = fit_frames(frames, total_frames, self.neutral)
        ids = {name: i for i, name in enumerate(self.emotions)}
        neutral_id = ids[self.neutral]
        scores = None
        emo_id = neutral_id
        if self._pooled is not None:
            pooled = self._pooled
            if not (self.utt_emotion_from == "lattice" and self.lattice_rule == "max"):
                pooled = pooled / self._weight
            if self.utt_emotion_from == "lattice" and self.lattice_rule == "max":
                emo_id, _ = lattice_utterance_emotion(pooled[None].float(), neutral_id, "max", self.lattice_threshold)
            else:
                emo_id = int(pooled.argmax())
            scores = {name: float(v) for name, v in zip(self.emotions, pooled.tolist())}
        return DecodeResult(
            utt=utt, text=self.text, tokens=list(self.tokens), emotion=self.emotions[emo_id], words=list(self.words),
            frame_emotions=frames, frame_shift=self.frame_shift,
            segments=frames_to_segments([ids[f] for f in frames], self.frame_shift, self.emotions, self.neutral),
            score=self.score, emotion_scores=scores,
        )


def stitch_pieces(utt: str, pieces: Sequence[DecodeResult], spans: Sequence[Tuple[int, int]],
                  stitcher: ResultStitcher, total_frames: Optional[int]) -> DecodeResult:
    """The result of a recording from its pieces' results (a fresh ``stitcher``).

    Args:
        utt: Utterance id.
        pieces: The pieces' results, in order.
        spans: Their ``[start, end)`` sample ranges (from :func:`split_long_audio`).
        stitcher: An empty :class:`ResultStitcher` (gives the emotions and pooling).
        total_frames: Encoder frames of the unsplit recording, or None.
    """
    if len(pieces) != len(spans) or not pieces:
        raise ValueError(f"{len(pieces)} piece results for {len(spans)} pieces")
    for k, (piece, (start, end)) in enumerate(zip(pieces, spans)):
        if k + 1 < len(pieces):
            stitcher.add(piece, start, end)
        else:  # the last piece keeps all its frames
            share = (end - start) // stitcher.align
            stitcher.add(piece, start, end)
            return stitcher.result(utt, total_frames, piece.frame_emotions[share:])
    raise AssertionError("unreachable")


def decode_long_batch(recognizer: Any, utt_ids: Sequence[str], waves: Sequence[np.ndarray],
                      chunk_size: Optional[int] = None, num_left_chunks: Optional[int] = None,
                      cmvn: Optional[Sequence[np.ndarray]] = None) -> List[DecodeResult]:
    """:meth:`EmotionRecognizer.decode` of a batch in which some waveforms are longer than ``long_audio_max``.

    The others are decoded together as before; each long one piece by piece
    (:func:`decode_long`).
    """
    limit = long_audio_samples(recognizer)
    results: List[Optional[DecodeResult]] = [None] * len(waves)
    short = [i for i, w in enumerate(waves) if limit is None or len(w) <= limit]
    if short:
        decoded = recognizer.decode([utt_ids[i] for i in short], [waves[i] for i in short], chunk_size,
                                    num_left_chunks, None if cmvn is None else [cmvn[i] for i in short])
        for i, result in zip(short, decoded):
            results[i] = result
    for i in (i for i in range(len(waves)) if results[i] is None):
        results[i] = decode_long(recognizer, utt_ids[i], waves[i], chunk_size, num_left_chunks,
                                 None if cmvn is None else cmvn[i])
    return [r for r in results if r is not None]


def long_audio_samples(recognizer: Any) -> Optional[int]:
    """Longest waveform (samples) the recognizer decodes in one piece; None: no limit."""
    max_s = recognizer.options.long_audio_max
    if not max_s > 0:
        return None
    return int(max_s * int(recognizer.model.frontend.sample_rate))


def piece_stitcher(model: torch.nn.Module, options: Any) -> ResultStitcher:
    """An empty :class:`ResultStitcher` for a model and its decoding options."""
    return ResultStitcher(
        model.emotions, model.emotions[model.neutral_id], float(model.frame_shift), frame_samples(model),
        options.utt_emotion_from, options.lattice_rule, options.lattice_threshold,
    )


def frame_samples(model: torch.nn.Module) -> int:
    """Samples per encoder frame (the cut grid)."""
    return int(round(float(model.frame_shift) * int(model.frontend.sample_rate)))


def decode_long(recognizer: Any, utt: str, wave: np.ndarray, chunk_size: Optional[int] = None,
                num_left_chunks: Optional[int] = None, cmvn: Optional[np.ndarray] = None) -> DecodeResult:
    """Decode one long recording piece by piece and stitch the pieces (module docstring).

    Args:
        recognizer: An :class:`~ent.decoding.recognizer.EmotionRecognizer`.
        utt: Utterance id.
        wave: The recording. (N,)
        chunk_size, num_left_chunks: Simulated streaming of every piece
            (see :meth:`~ent.decoding.recognizer.EmotionRecognizer.decode`).
        cmvn: Speaker statistics of the recording ((2, F) or (2, F + K)), used
            for every piece.
    """
    model, opts = recognizer.model, recognizer.options
    sample_rate = int(model.frontend.sample_rate)
    spans = split_long_audio(wave, opts.long_audio_max, opts.long_audio_min, opts.long_audio_pause,
                             frame_samples(model), sample_rate)
    pieces = []
    shortest = recognizer.min_samples
    for start, end in spans:
        piece = wave[start:end]
        if len(piece) < shortest:  # a short last piece: padded with silence, as a short file
            piece = np.pad(piece, (0, shortest - len(piece)))
        (result,) = recognizer.decode([utt], [piece], chunk_size, num_left_chunks,
                                      None if cmvn is None else [cmvn])
        pieces.append(result)
    return stitch_pieces(utt, pieces, spans, piece_stitcher(model, opts), encoder_frames(model, len(wave)))
