"""Streaming decoding: words, word emotions and frame emotions while audio arrives.

A :class:`StreamingSession` takes the audio of one stream in pieces of any
size. Each :meth:`StreamingSession.accept` returns what the piece made new
(a :class:`PartialResult`); :meth:`StreamingSession.finalize` flushes the
rest and returns the complete :class:`~ent.decoding.writer.DecodeResult` too.
Nothing is computed twice:

1. :class:`~ent.features.online_fbank.OnlineFbank` computes each feature
   frame once, as soon as its last sample has arrived;
2. CMVN is applied to the new frames (the global statistics, or the
   speaker's given as ``speaker_cmvn``);
3. :meth:`ConformerEncoder.chunk_forward` encodes whole chunks of
   ``chunk_size`` encoder frames (attention and convolution caches carried);
4. greedy search goes on from where it stopped: the predictor state and the
   lattice node are carried from chunk to chunk (:class:`StreamingGreedy`,
   the rule of :mod:`ent.decoding.greedy`).

Every frame of an encoded chunk is decided in the same call: its emotion
(for FENT read from the blank branch) is known one chunk, plus the
subsampling look-ahead (:attr:`ConformerEncoder.frontend_lookahead` feature
frames: none with frame stacking, 50 ms with conv2d subsampling 6; and the
15 ms the fbank window reaches past its shift), after the audio of the
chunk's first frame arrived. Tokens are
never revised; a word is reported when the next word starts (or at the end),
the word still growing is given as ``partial_word``.

The results equal those of *simulated* streaming
(:func:`encode_chunked`: the whole utterance through the encoder with chunk
attention masks, then :func:`~ent.decoding.greedy.greedy_search`) with the
same chunk size and left context, and do not depend on how the audio is cut
into pieces. Streaming needs a model trained with
``encoder_conf: {dynamic_chunk_training: true}`` (causal convolutions).

Memory stays bounded over any stream length: the session ends a *segment* at
a pause once it is ``long_audio_min`` seconds long, or at ``long_audio_max``
(the causal rule of :class:`~ent.decoding.long_audio.PieceSplitter`), and
starts the next one with fresh encoder caches, so the encoder caches and the
encoder outputs and features kept for the utterance head cover one segment at
most. The results of the segments are stitched in stream time
(:class:`~ent.decoding.long_audio.ResultStitcher`): the final result equals
offline decoding of the whole audio with the same ``long_audio_*`` options
and simulated streaming (audio longer than ``long_audio_max``; up to
``long_audio_min`` no segment ends, and the result is that of the unsplit
audio). What grows with the stream is the result itself (token pieces, words
and one emotion name per encoder frame).

Example::

    recognizer = EmotionRecognizer.from_model_dir("exp/ent_streaming/packed", "model.pth")
    session = StreamingSession(recognizer, chunk_ms=320)
    for piece in microphone():            # float32 16 kHz pieces, any size
        update = session.accept(piece)
        for word in update.words:
            print(word.text, word.emotion, word.start, word.end)
    final = session.finalize().result     # DecodeResult: text, words, segments, ...
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from ent.decoding.greedy import PredictorRows, StepScorer
from ent.decoding.hypothesis import Hypothesis, TokenizerLike, UttEmotion, Word, utterance_emotion, words_with_times
from ent.decoding.long_audio import (
    DEFAULT_MAX_S,
    DEFAULT_MIN_S,
    DEFAULT_PAUSE_S,
    PieceSplitter,
    ResultStitcher,
    encoder_frames,
    frame_samples,
    shift_words,
)
from ent.decoding.writer import DecodeResult, make_result
from ent.features.online_fbank import OnlineFbank
from ent.models.encoder_output import EncoderOutput


def chunk_frames(chunk_ms: float, frame_shift: float) -> int:
    """Encoder frames per chunk for a chunk duration (nearest, at least 1).

    Args:
        chunk_ms: Chunk duration in milliseconds (> 0).
        frame_shift: Encoder frame shift in seconds (``model.frame_shift``).

    Returns:
        ``max(1, round(chunk_ms / (1000 * frame_shift)))``; e.g. with 40 ms
        frames 160, 320 and 640 ms give 4, 8 and 16 frames; with 60 ms frames
        3, 5 and 11 (180, 300, 660 ms).
    """
    if not chunk_ms > 0:
        raise ValueError(f"chunk_ms must be positive, got {chunk_ms}")
    if not frame_shift > 0:
        raise ValueError(f"frame_shift must be positive, got {frame_shift}")
    return max(1, int(round(chunk_ms / (1000.0 * frame_shift))))


def check_streaming_model(model: torch.nn.Module) -> None:
    """Refuse a model whose encoder cannot stream.

    Raises:
        ValueError: If the encoder has no chunk-wise mode or its convolutions
            look ahead (trained without ``dynamic_chunk_training``), or the
            model has a blank-branch layer weighting.
    """
    if getattr(model, "blank_branch", None) is not None:
        raise ValueError("FENT with a blank-branch layer weighting (a pretrained front end) does not stream")
    encoder = model.encoder
    if not hasattr(encoder, "init_streaming_state") or not getattr(encoder, "is_causal", False):
        raise ValueError(
            "the model is not a streaming model: its encoder's convolutions look ahead "
            "(train with encoder_conf: {dynamic_chunk_training: true})"
        )


def encode_chunked(
    model: torch.nn.Module,
    speech: Tensor,
    speech_lengths: Tensor,
    chunk_size: int,
    num_left_chunks: Optional[int] = None,
    speech_cmvn: Optional[Tensor] = None,
) -> EncoderOutput:
    """Simulated streaming: whole utterances through the encoder with chunk attention masks.

    Args:
        model: A streaming :class:`~ent.models.transducer.EmotionTransducer`
            (in eval mode).
        speech: 16 kHz waveforms, zero padded. (B, N)
        speech_lengths: Samples per utterance. (B,)
        chunk_size: Encoder frames per chunk.
        num_left_chunks: Earlier chunks visible (0: all); default the encoder's.
        speech_cmvn: Per-speaker feature statistics used instead of the
            global CMVN. (B, 2, F)

    Returns:
        The encoder outputs (without ``enc_blank``: a blank-branch layer
        weighting does not stream).
    """
    feats, feats_lens = model.frontend(speech, speech_lengths)
    return encode_chunked_feats(model, feats, feats_lens, chunk_size, num_left_chunks, speech_cmvn)


def encode_chunked_feats(
    model: torch.nn.Module,
    feats: Tensor,
    feats_lens: Tensor,
    chunk_size: int,
    num_left_chunks: Optional[int] = None,
    speech_cmvn: Optional[Tensor] = None,
) -> EncoderOutput:
    """:func:`encode_chunked` from frontend features (B, T0, F) of lengths (B,).

    For a caller that reads the features for something else too (the
    prosody functionals of the utterance head).
    """
    check_streaming_model(model)
    feats = model.normalize_feats(feats, feats_lens, speech_cmvn)
    enc_out, enc_lens = model.encoder(feats, feats_lens, chunk_size=chunk_size, num_left_chunks=num_left_chunks)
    return EncoderOutput(enc_out, enc_lens)


def min_samples(model: torch.nn.Module) -> int:
    """Shortest waveform (samples) that gives at least one encoder frame."""
    frames = getattr(model.encoder, "min_input_frames", 1)
    fb = model.frontend
    return int(fb.window_size + (frames - 1) * fb.window_shift)


# ------------------------------------------------------------------- search
class StreamingGreedy:
    """Greedy search of one utterance, carried across chunks of encoder frames.

    Follows the rule of :mod:`ent.decoding.greedy` exactly (node by node, up
    to ``max_symbols_per_frame`` tokens per frame, token and frame emotions
    at the emitting and leaving nodes), so feeding the frames of an utterance
    in any chunks gives the hypothesis :func:`~ent.decoding.greedy.greedy_search`
    gives for the whole encoder output.

    Args:
        model: An :class:`~ent.models.transducer.EmotionTransducer` in eval mode.
        max_symbols_per_frame: Most tokens emitted at one frame (>= 1).
    """

    def __init__(self, model: torch.nn.Module, max_symbols_per_frame: int = 3) -> None:
        if max_symbols_per_frame < 1:
            raise ValueError(f"max_symbols_per_frame must be >= 1, got {max_symbols_per_frame}")
        self.model = model
        self.max_symbols = max_symbols_per_frame
        self.num_classes = len(model.emotions)
        self._rows: Optional[PredictorRows] = None
        #: Emitted tokens, their frames, emotion ids and posteriors (C,).
        self.tokens: List[int] = []
        self.token_frames: List[int] = []
        self.token_emotions: List[int] = []
        self.token_posteriors: List[Tensor] = []
        #: Emotion id of every decided frame, and their posteriors (T, C).
        self.frame_emotions: List[int] = []
        self.frame_posteriors = torch.zeros(0, self.num_classes)
        #: Log-probability of the path so far.
        self.score = 0.0

    @property
    def num_frames(self) -> int:
        """Frames decided so far."""
        return len(self.frame_emotions)

    @torch.no_grad()
    def advance(self, enc_out: Tensor) -> None:
        """Decode the next encoder frames.

        Args:
            enc_out: The next frames of the utterance. (1, T_c, D_e)
        """
        if enc_out.dim() != 3 or enc_out.size(0) != 1:
            raise ValueError(f"enc_out must have shape (1, T, D_e), got {tuple(enc_out.shape)}")
        if enc_out.size(1) == 0:
            return
        model = self.model
        scorer = StepScorer(model, EncoderOutput(enc_out, torch.tensor([enc_out.size(1)], device=enc_out.device)))
        rows = scorer.start(1) if self._rows is None else self._rows
        utt = torch.zeros(1, dtype=torch.long, device=enc_out.device)
        frame_posts: List[Tensor] = []
        for j in range(enc_out.size(1)):
            t = self.num_frames
            frame = torch.full_like(utt, j)
            left = False
            for _ in range(self.max_symbols):
                logp = torch.log_softmax(scorer.token_logits(utt, frame, rows).float(), dim=-1)[0]
                emo_logits = scorer.emotion_logits(utt, frame, rows).float()[0]
                best = int(logp.argmax())
                self.score += float(logp[best].double())
                post = torch.softmax(emo_logits, dim=-1).cpu()
                emo = int(emo_logits.argmax())
                if best == model.blank_id:
                    self.frame_emotions.append(emo)
                    frame_posts.append(post)
                    left = True
                    break
                self.tokens.append(best)
                self.token_frames.append(t)
                self.token_emotions.append(emo)
                self.token_posteriors.append(post)
                rows = scorer.advance(rows, torch.full_like(utt, best))
            if not left:  # left after max_symbols tokens: the node after the last one
                emo_logits = scorer.emotion_logits(utt, frame, rows).float()[0]
                self.frame_emotions.append(int(emo_logits.argmax()))
                frame_posts.append(torch.softmax(emo_logits, dim=-1).cpu())
        self._rows = rows
        self.frame_posteriors = torch.cat([self.frame_posteriors, torch.stack(frame_posts)])

    def hypothesis(self, start: int = 0, end: Optional[int] = None) -> Hypothesis:
        """The path so far as a :class:`Hypothesis`, or with its tokens ``[start, end)`` only."""
        end = len(self.tokens) if end is None else end
        posts = self.token_posteriors[start:end]
        return Hypothesis(
            tokens=self.tokens[start:end],
            token_frames=self.token_frames[start:end],
            token_emotions=self.token_emotions[start:end],
            frame_emotions=list(self.frame_emotions),
            frame_posteriors=self.frame_posteriors,
            score=self.score,
            token_posteriors=torch.stack(posts) if posts else torch.zeros(0, self.num_classes),
        )


# ------------------------------------------------------------------ results
@dataclass
class StreamToken:
    """A token as it is emitted.

    Attributes:
        token_id: Token id.
        piece: Token text (sentencepiece piece).
        frame: Encoder frame where it was emitted.
        time: Start time of that frame in seconds.
        emotion: Emotion name at the emitting node.
        emotion_id: Its class id.
    """

    token_id: int
    piece: str
    frame: int
    time: float
    emotion: str
    emotion_id: int


@dataclass
class PartialResult:
    """What one :meth:`StreamingSession.accept` (or ``finalize``) made new.

    Attributes:
        tokens: Tokens emitted by this call (never revised later).
        words: Words completed by this call (a word is complete when the next
            word starts, or at the end), with times and emotions; they never
            change later.
        frame_emotions: Emotion names of the encoder frames decided by this call.
        first_frame: Index of the first of those frames in the utterance.
        frame_shift: Seconds per encoder frame.
        text: The whole transcript so far.
        partial_word: The word still growing (its text or emotion may
            change), or None.
        audio_seconds: Audio received so far.
        is_final: Whether this is the result of :meth:`StreamingSession.finalize`.
        result: ``finalize()`` only: the complete result (utterance emotion,
            all words, frame emotions and segments), equal to offline
            decoding with the same chunked encoder.
    """

    tokens: List[StreamToken]
    words: List[Word]
    frame_emotions: List[str]
    first_frame: int
    frame_shift: float
    text: str
    partial_word: Optional[Word]
    audio_seconds: float
    is_final: bool = False
    result: Optional[DecodeResult] = None

    @property
    def decided_until(self) -> float:
        """Time (s) up to which every frame's emotion is known."""
        return (self.first_frame + len(self.frame_emotions)) * self.frame_shift

    @property
    def is_empty(self) -> bool:
        """Whether nothing new was decided."""
        return not (self.tokens or self.words or self.frame_emotions or self.is_final)


# ------------------------------------------------------------------ session
class StreamingSession:
    """Decode one audio stream incrementally (see the module docstring).

    Args:
        recognizer_or_model: An :class:`~ent.decoding.recognizer.EmotionRecognizer`
            (model, tokenizer and decoding options are taken from it) or an
            :class:`~ent.models.transducer.EmotionTransducer`.
        tokenizer: The tokenizer (required with a bare model; overrides the
            recognizer's otherwise).
        chunk_ms: Chunk duration; rounded to whole encoder frames
            (:func:`chunk_frames`). :attr:`chunk_size` holds the result.
        num_left_chunks: Earlier chunks a chunk attends to (0: all); default
            the encoder's ``num_left_chunks``.
        max_symbols_per_frame: Greedy search; default the recognizer's
            options, else 3.
        utt_emotion_from: ``head`` or ``lattice`` (utterance emotion of the
            final result); default the recognizer's options, else ``head``.
        lattice_rule: ``max`` or ``mean`` (``lattice`` only).
        lattice_threshold: Peak posterior an emotion needs under ``max``.
        utt_id: Id of the final :class:`DecodeResult`.
        long_audio_max: Longest segment in seconds (0: one segment, memory
            unbounded); default the recognizer's options, else 60.
        long_audio_min: A segment may end at a pause once this long (s);
            default the recognizer's options, else 30.
        long_audio_pause: Pause that ends a segment (s); default the
            recognizer's options, else 0.3.
        speaker_cmvn: Statistics of the speaker, for a model trained with
            per-speaker CMVN: a :class:`~ent.features.cmvn.SpeakerStats`
            (feature mean and standard deviation (2, F), and for a model whose
            head has a prosody expert those of the prosody functionals
            (2, K); e.g. one value of
            :meth:`~ent.decoding.recognizer.EmotionRecognizer.speaker_stats`,
            or statistics of earlier audio of the same speaker), or a (2, F)
            array, the CMVN statistics alone. Without
            them the model's global CMVN is used (the utterance's own
            statistics are not known before its end).

    Raises:
        ValueError: If the model cannot stream (see :func:`check_streaming_model`)
            or no tokenizer is given with a bare model.
    """

    def __init__(
        self,
        recognizer_or_model: Any,
        tokenizer: Optional[TokenizerLike] = None,
        chunk_ms: float = 320.0,
        num_left_chunks: Optional[int] = None,
        max_symbols_per_frame: Optional[int] = None,
        utt_emotion_from: Optional[str] = None,
        lattice_rule: Optional[str] = None,
        lattice_threshold: Optional[float] = None,
        utt_id: str = "stream",
        speaker_cmvn: Optional[Any] = None,
        long_audio_max: Optional[float] = None,
        long_audio_min: Optional[float] = None,
        long_audio_pause: Optional[float] = None,
    ) -> None:
        options = None
        if isinstance(recognizer_or_model, torch.nn.Module):
            model = recognizer_or_model
        else:  # an EmotionRecognizer
            model = recognizer_or_model.model
            options = recognizer_or_model.options
            tokenizer = tokenizer if tokenizer is not None else recognizer_or_model.tokenizer
        if tokenizer is None:
            raise ValueError("a tokenizer is needed to decode with a bare model")
        check_streaming_model(model)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_symbols_per_frame = _pick(max_symbols_per_frame, options, "max_symbols_per_frame", 3)
        self.utt_emotion_from = _pick(utt_emotion_from, options, "utt_emotion_from", "head")
        self.lattice_rule = _pick(lattice_rule, options, "lattice_rule", "max")
        self.lattice_threshold = _pick(lattice_threshold, options, "lattice_threshold", 0.5)
        self.long_audio_max = _pick(long_audio_max, options, "long_audio_max", DEFAULT_MAX_S)
        self.long_audio_min = _pick(long_audio_min, options, "long_audio_min", DEFAULT_MIN_S)
        self.long_audio_pause = _pick(long_audio_pause, options, "long_audio_pause", DEFAULT_PAUSE_S)
        self.frame_shift: float = float(model.frame_shift)
        #: Encoder frames per chunk.
        self.chunk_size = chunk_frames(chunk_ms, self.frame_shift)
        self.num_left_chunks = num_left_chunks
        self.utt_id = utt_id
        self.emotions: List[str] = list(model.emotions)
        self.device = next(model.parameters()).device
        self.sample_rate = int(model.frontend.sample_rate)
        self.min_samples = min_samples(model)
        self.speaker_cmvn: Optional[Tensor] = None
        self.speaker_prosody: Optional[Tensor] = None
        self._align = frame_samples(model)
        # checks the segment lengths at once
        self._splitter = None if not self.long_audio_max > 0 else PieceSplitter(
            self.long_audio_max, self.long_audio_min, self.long_audio_pause, self._align, self.sample_rate)
        if speaker_cmvn is None and getattr(recognizer_or_model, "speaker_cmvn", False):
            logging.getLogger(__name__).warning(
                "this model was trained with per-speaker CMVN; streaming without speaker "
                "statistics (speaker_cmvn=...) uses its global CMVN instead")
        self.reset(speaker_cmvn=speaker_cmvn)

    @property
    def chunk_seconds(self) -> float:
        """Duration of one chunk (whole encoder frames)."""
        return self.chunk_size * self.frame_shift

    def reset(self, utt_id: Optional[str] = None, speaker_cmvn: Optional[Any] = None) -> None:
        """Forget the stream: the session is ready for a new one.

        Args:
            utt_id: Name of the new stream (default: keep).
            speaker_cmvn: Speaker statistics for the new stream (default:
                keep); see the class arguments.
        """
        if utt_id is not None:
            self.utt_id = utt_id
        if speaker_cmvn is not None:
            cmvn, prosody = speaker_cmvn if isinstance(speaker_cmvn, tuple) else (speaker_cmvn, None)
            width = self.model.frontend.output_size()
            stats = torch.as_tensor(np.asarray(cmvn, dtype=np.float32))
            if tuple(stats.shape) != (2, width):
                raise ValueError(f"speaker_cmvn: the CMVN statistics must have shape (2, {width}), "
                                 f"got {tuple(stats.shape)}")
            pros = None
            if prosody is not None:
                pros = torch.as_tensor(np.asarray(prosody, dtype=np.float32))
                if pros.dim() != 2 or pros.size(0) != 2:
                    raise ValueError(f"speaker_cmvn: the prosody statistics must have shape (2, K), "
                                     f"got {tuple(pros.shape)}")
                pros = pros.to(self.device)
            self.speaker_cmvn, self.speaker_prosody = stats.to(self.device), pros
        if self._splitter is not None:
            self._splitter.reset()
        model = self.model
        self._stitcher = ResultStitcher(self.emotions, self.emotions[model.neutral_id], self.frame_shift,
                                        self._align, self.utt_emotion_from, self.lattice_rule,
                                        self.lattice_threshold)
        self._samples = 0  # samples received
        self._segment_start = 0  # first sample of the current segment
        self._frames_reported = 0  # frame emotions reported in updates
        self._finished = False
        self._new_segment()

    def _new_segment(self) -> None:
        """Fresh front end, encoder caches and search for the next segment."""
        self._fbank = OnlineFbank(self.model.frontend)
        self._enc_state = self.model.encoder.init_streaming_state(
            self.chunk_size, self.num_left_chunks, batch_size=1, device=self.device
        )
        self._search = StreamingGreedy(self.model, self.max_symbols_per_frame)
        self._enc_chunks: List[Tensor] = []
        self._feat_chunks: List[Tensor] = []  # frontend features, for the head's prosody functionals
        self._words_done = 0  # tokens of the segment already grouped into reported words

    @property
    def num_samples(self) -> int:
        """Samples received so far."""
        return self._samples

    @property
    def num_segments(self) -> int:
        """Segments ended so far (see the module docstring)."""
        return self._stitcher.num_pieces

    def retained_tensor_bytes(self) -> int:
        """Bytes of the tensors the session keeps between calls (the stream's state, not its result).

        The encoder caches and pending frames, the encoder outputs and
        features kept for the utterance head, the search's frame and token
        posteriors and the front end's pending samples: bounded by one
        segment (``long_audio_max``), whatever the length of the stream.
        """
        state = self._enc_state
        tensors = [*self._enc_chunks, *self._feat_chunks, *state.att_caches, *state.conv_caches,
                   *(t for t in state.conv_inputs if t is not None), self._search.frame_posteriors,
                   *self._search.token_posteriors]
        if state.pending is not None:
            tensors.append(state.pending)
        return sum(t.numel() * t.element_size() for t in tensors) + 4 * self._fbank.pending_samples

    @torch.no_grad()
    def accept(self, samples: Union[np.ndarray, Tensor]) -> PartialResult:
        """Add the next piece of audio.

        Args:
            samples: 16 kHz mono float samples in [-1, 1], any number. (N,)

        Returns:
            What became known: new tokens, completed words, decided frames.

        Raises:
            ValueError: After :meth:`finalize` (call :meth:`reset` first), or
                on samples that are not one-dimensional floats or hold NaN/Inf
                values (the stream is then unchanged).
        """
        if self._finished:
            raise ValueError("the stream is finalized; call reset() to start a new one")
        if self._splitter is None:
            feats = self._fbank.accept(samples)
            self._samples = self._fbank.num_samples
            return self._step(feats, final=False)
        piece = samples.detach().cpu() if isinstance(samples, Tensor) else torch.from_numpy(np.asarray(samples))
        if piece.dim() != 1 or not piece.is_floating_point() or not bool(torch.isfinite(piece).all()):
            self._fbank.accept(piece)  # raises OnlineFbank's message before anything changes
        updates, pos, first = [], 0, self._samples
        for cut in self._splitter.accept(piece):
            self._samples = cut
            updates.append(self._step(self._fbank.accept(piece[pos: cut - first]), final=False))
            updates.append(self._end_segment(cut))
            pos = cut - first
        self._samples = first + len(piece)
        updates.append(self._step(self._fbank.accept(piece[pos:]), final=False))
        return _merge(updates)

    @torch.no_grad()
    def finalize(self) -> PartialResult:
        """End the stream: decode what is left and build the complete result.

        Audio shorter than the encoder needs (but not empty) is padded with
        silence, as offline decoding does; an empty stream gives an empty,
        neutral result.

        Returns:
            The last new tokens, words and frames, with ``result`` set.
        """
        if self._finished:
            raise ValueError("the stream is finalized; call reset() to start a new one")
        self._finished = True
        if self._stitcher.num_pieces == 0:  # one segment: the result of the whole stream
            update, result = self._finish_segment()
            update.result = result
            return update
        # several segments: the last one (unless empty), then the stitched result
        stitcher, start = self._stitcher, self._segment_start
        reported = self._frames_reported
        update = PartialResult([], [], [], reported, self.frame_shift, stitcher.text, None,
                               self.num_samples / self.sample_rate, is_final=True)
        last: List[str] = []
        if self._samples > start:
            update, segment = self._finish_segment()
            share = (self._samples - start) // self._align
            stitcher.add(segment, start, self._samples)
            last = segment.frame_emotions[share:]
        result = stitcher.result(self.utt_id, encoder_frames(self.model, self._samples), last)
        update.frame_emotions = result.frame_emotions[reported:]
        update.first_frame = reported
        self._frames_reported = len(result.frame_emotions)
        update.text = result.text
        update.audio_seconds = self.num_samples / self.sample_rate
        update.is_final = True
        update.result = result
        return update

    def _finish_segment(self) -> Tuple[PartialResult, DecodeResult]:
        """Close the current segment: its last update and its result (in segment time)."""
        feats = torch.zeros(0, self.model.frontend.output_size())
        received = self._fbank.num_samples
        if 0 < received < self.min_samples:  # padded with silence, as offline decoding does
            feats = self._fbank.accept(np.zeros(self.min_samples - received, dtype=np.float32))
        update = self._step(feats, final=True)
        return update, self._final_result()

    def _end_segment(self, cut: int) -> PartialResult:
        """End the segment at sample ``cut`` (a cut of the splitter) and start the next one."""
        update, segment = self._finish_segment()
        update.is_final = False
        self._stitcher.add(segment, self._segment_start, cut)
        self._segment_start = cut
        self._new_segment()
        return update

    # ------------------------------------------------------------- internals
    def _step(self, feats: Tensor, final: bool) -> PartialResult:
        """Normalise and encode new feature frames, then decode the completed frames."""
        model = self.model
        offset = self._segment_start // self._align  # first frame of the segment in the stream
        if final and self._fbank.num_samples == 0:
            enc = torch.zeros(1, 0, model.encoder.output_size(), device=self.device)
        else:
            x = feats.to(self.device).unsqueeze(0)
            if getattr(model, "head_prosody", False) and x.size(1) > 0:
                self._feat_chunks.append(x.clone())  # global CMVN normalizes in place
            if x.size(1) > 0:
                stats = None if self.speaker_cmvn is None else self.speaker_cmvn[None]
                x = model.normalize_feats(x, torch.tensor([x.size(1)], device=self.device), stats)
            enc = model.encoder.chunk_forward(x, self._enc_state, is_final=final)
        search = self._search
        first_frame, first_token = search.num_frames, len(search.tokens)
        if enc.size(1) > 0:
            self._enc_chunks.append(enc)
            search.advance(enc)
        tokens = [
            StreamToken(
                token_id=tok,
                piece=piece,
                frame=search.token_frames[i] + offset,
                time=(search.token_frames[i] + offset) * self.frame_shift,
                emotion=self.emotions[search.token_emotions[i]],
                emotion_id=search.token_emotions[i],
            )
            for i, (tok, piece) in enumerate(
                zip(search.tokens[first_token:], self.tokenizer.tokens(search.tokens[first_token:])),
                start=first_token,
            )
        ]
        words, partial = self._new_words(final)
        frames = [self.emotions[e] for e in search.frame_emotions[first_frame:]]
        if frames and self._stitcher.num_pieces:  # the previous segment's padding frames come first
            frames = self._stitcher.pending_frames()[: max(0, offset - self._frames_reported)] + frames
        text = self.tokenizer.decode(search.tokens)
        if self._stitcher.num_pieces:
            text = " ".join(t for t in (self._stitcher.text, text) if t)
        update = PartialResult(
            tokens=tokens,
            words=shift_words(words, offset, self.frame_shift),
            frame_emotions=frames,
            first_frame=self._frames_reported,
            frame_shift=self.frame_shift,
            text=text,
            partial_word=None if partial is None else shift_words([partial], offset, self.frame_shift)[0],
            audio_seconds=self.num_samples / self.sample_rate,
            is_final=final,
        )
        self._frames_reported += len(frames)
        return update

    def _new_words(self, final: bool) -> Tuple[List[Word], Optional[Word]]:
        """Words completed since the last call, and the word still open."""
        search = self._search
        tokens = search.tokens
        end = len(tokens)
        if not final:  # the last word stays open until the next word starts
            end = next(
                (i for i in range(len(tokens) - 1, self._words_done, -1) if self.tokenizer.is_word_start(tokens[i])),
                self._words_done,
            )
        words: List[Word] = []
        if end > self._words_done:
            words = self._words(self._words_done, end)
            self._words_done = end
        partial = None
        if not final and end < len(tokens):
            open_words = self._words(end, len(tokens))
            partial = open_words[0] if open_words else None
        return words, partial

    def _words(self, start: int, end: int) -> List[Word]:
        """Words of the tokens ``[start, end)`` (a whole number of words)."""
        hyp = self._search.hypothesis(start, end)
        return words_with_times(hyp, self.tokenizer, self.frame_shift, self.emotions)

    def _final_result(self) -> DecodeResult:
        """The complete result of the stream (as offline decoding writes it)."""
        model = self.model
        hyp = self._search.hypothesis()
        neutral = self.emotions[model.neutral_id]
        if hyp.num_frames == 0:
            utt_emo: Union[UttEmotion, int] = model.neutral_id
        else:
            enc_out = torch.cat(self._enc_chunks, dim=1)
            enc_lens = torch.tensor([enc_out.size(1)], device=self.device)
            prosody = None
            if getattr(model, "head_prosody", False):
                feats = torch.cat(self._feat_chunks, dim=1)
                stats = None if self.speaker_prosody is None else self.speaker_prosody[None]
                prosody = model.utterance_prosody(feats, torch.tensor([feats.size(1)], device=self.device), stats)
            (utt_emo,) = utterance_emotion(
                model, [hyp], enc_out, enc_lens, utt_emotion_from=self.utt_emotion_from,
                lattice_rule=self.lattice_rule, threshold=self.lattice_threshold, prosody=prosody,
            )
        return make_result(self.utt_id, hyp, self.tokenizer, utt_emo, self.frame_shift, self.emotions, neutral)


def _merge(updates: List[PartialResult]) -> PartialResult:
    """One update from consecutive ones (of one ``accept`` that ended segments)."""
    if len(updates) == 1:
        return updates[0]
    last = updates[-1]
    return PartialResult(
        tokens=[t for u in updates for t in u.tokens],
        words=[w for u in updates for w in u.words],
        frame_emotions=[e for u in updates for e in u.frame_emotions],
        first_frame=updates[0].first_frame,
        frame_shift=last.frame_shift,
        text=last.text,
        partial_word=last.partial_word,
        audio_seconds=last.audio_seconds,
    )


def _pick(value: Any, options: Any, name: str, default: Any) -> Any:
    """An explicit value, else the recognizer's option, else the default."""
    if value is not None:
        return value
    if options is not None:
        return getattr(options, name)
    return default


def decode_stream(
    session: StreamingSession,
    wave: np.ndarray,
    piece_samples: int,
    utt_id: Optional[str] = None,
    speaker_cmvn: Optional[Any] = None,
) -> Tuple[DecodeResult, List[PartialResult]]:
    """Feed a whole waveform to a fresh stream in pieces and finalize it.

    Args:
        session: The session (reset first).
        wave: The waveform. (N,)
        piece_samples: Samples per piece (>= 1).
        utt_id: Id of the result (default: the session's).
        speaker_cmvn: Speaker statistics for this stream (default: the
            session's; see :class:`StreamingSession`).

    Returns:
        The final result and every partial result (the last one is final).
    """
    if piece_samples < 1:
        raise ValueError(f"piece_samples must be >= 1, got {piece_samples}")
    session.reset(utt_id, speaker_cmvn)
    updates = [session.accept(wave[i : i + piece_samples]) for i in range(0, len(wave), piece_samples)]
    final = session.finalize()
    updates.append(final)
    if final.result is None:  # finalize() always sets it
        raise RuntimeError("finalize() returned no result")
    return final.result, updates
