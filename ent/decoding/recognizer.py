"""From audio to emotion-annotated transcripts with a trained model.

:class:`EmotionRecognizer` loads a model directory (what training or
``ent.bin.pack_model`` wrote: ``config.yaml``, a checkpoint, the token list and
the CMVN statistics it names) and decodes batches of waveforms into
:class:`~ent.decoding.writer.DecodeResult` objects: text, words with times and
emotions, the emotion of every encoder frame, and the utterance emotion. It
serves the ``inference`` and ``transcribe`` command-line tools.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import yaml

from ent.decoding.beam_search import modified_beam_search
from ent.decoding.greedy import greedy_search
from ent.decoding.emotion_smoothing import smooth_hypothesis
from ent.decoding.hypothesis import Hypothesis, utterance_emotion, with_frame_emotions
from ent.decoding.long_audio import (
    DEFAULT_MAX_S,
    DEFAULT_MIN_S,
    DEFAULT_PAUSE_S,
    check_piece_lengths,
    decode_long_batch,
    long_audio_samples,
)
from ent.decoding.segmentation import piece_frames, split_at_pauses, stitch_frames
from ent.decoding.streaming import encode_chunked_feats, min_samples
from ent.decoding.writer import DecodeResult, make_result
from ent.lm.ngram import PACKED_LM_NAME, NgramLM, NgramScorer
from ent.utils.checkpoint_io import load_checkpoint
from ent.models.encoder_output import EncoderOutput
from ent.models.model_config import migrate_model_config
from ent.utils.errors import DataError

PathLike = Union[str, Path]
SEARCHES = ("greedy", "modified_beam_search")
BatchStats = Tuple[torch.Tensor, Optional[torch.Tensor]]
"""Speaker statistics of a batch: CMVN (B, 2, F) and prosody (B, 2, K) or None."""
MIN_PIECE_S = 0.2
"""Shortest piece for the frame emotions (frame_emotion_min_piece), in seconds."""


@dataclass
class DecodeOptions:
    """Decoding options (the keys of ``conf/decode.yaml``).

    Attributes:
        search: ``greedy`` or ``modified_beam_search``.
        beam: Beam size of modified beam search.
        max_symbols_per_frame: Most tokens emitted per frame (greedy and
            beam search; 1 in beam search is icefall's modified beam search,
            which drops tokens when a model emits more than one per frame).
        utt_emotion_from: ``head`` (utterance head) or ``lattice`` (pooled
            frame posteriors along the decoded path).
        lattice_rule: ``max`` or ``mean`` pooling for ``utt_emotion_from: lattice``.
        lattice_threshold: Peak posterior an emotion needs under ``max``.
        batch_size: Utterances decoded together.
        frame_switch_penalty: Offline decoding: smooth the frame emotions into
            the best piecewise-constant path, each change of emotion costing
            this many nats of log posterior
            (:func:`~ent.decoding.emotion_smoothing.smooth_frame_emotions`);
            each token then takes the smoothed emotion of its frame. 0: the
            per-frame decisions.
        lm_weight: Shallow fusion weight of a token n-gram LM in modified
            beam search (:mod:`ent.lm.ngram`; the LM file comes with
            ``--lm`` or as ``lm.arpa`` in a packed model). 0: no LM.
        token_bonus: Modified beam search: added to the score of every
            emitted token (offsets the LM's preference for fewer tokens).
        frame_emotion_pause: Frame emotions by pieces: cut each utterance
            in the middle of every pause of at least this many seconds; the
            frame emotions of an utterance so cut come from a greedy search
            of each piece on its own encoder output, and each token takes the
            emotion of its frame (see :mod:`ent.decoding.segmentation`). The
            words and the head's utterance emotion still come from the whole
            utterance. 0: the frame emotions of the whole utterance's search.
        frame_emotion_min_piece: Shortest piece in seconds (shorter ones are
            merged into a neighbour), >= 0.2.
        long_audio_max: Audio longer than this many seconds is decoded in
            pieces of at most this length, one after the other, and the
            pieces' results are stitched in the time of the whole audio
            (:mod:`ent.decoding.long_audio`); memory then depends on the
            piece, not the recording. Also the longest segment of a
            :class:`~ent.decoding.streaming.StreamingSession`. 0: never split.
        long_audio_min: A piece may end at a pause once it is this long (s;
            at most ``long_audio_max``, a larger value counts as that).
        long_audio_pause: A pause of this many seconds ends a piece (frames
            20 dB below the piece's loud frames); without one, a piece is cut
            at ``long_audio_max``.
    """

    search: str = "modified_beam_search"
    beam: int = 4
    max_symbols_per_frame: int = 3
    utt_emotion_from: str = "head"
    lattice_rule: str = "max"
    lattice_threshold: float = 0.5
    batch_size: int = 16
    frame_switch_penalty: float = 0.0
    lm_weight: float = 0.0
    token_bonus: float = 0.0
    frame_emotion_pause: float = 0.0
    frame_emotion_min_piece: float = 0.5
    long_audio_max: float = DEFAULT_MAX_S
    long_audio_min: float = DEFAULT_MIN_S
    long_audio_pause: float = DEFAULT_PAUSE_S

    def __post_init__(self) -> None:
        if self.search not in SEARCHES:
            raise ValueError(f"unknown search {self.search!r}; valid: {list(SEARCHES)}")
        if self.beam < 1 or self.max_symbols_per_frame < 1 or self.batch_size < 1:
            raise ValueError("beam, max_symbols_per_frame and batch_size must be >= 1")
        if self.frame_switch_penalty < 0:
            raise ValueError(f"frame_switch_penalty must be >= 0, got {self.frame_switch_penalty}")
        if self.lm_weight < 0:
            raise ValueError(f"lm_weight must be >= 0, got {self.lm_weight}")
        if (self.lm_weight > 0 or self.token_bonus != 0) and self.search != "modified_beam_search":
            raise ValueError("lm_weight and token_bonus need search: modified_beam_search")
        if self.frame_emotion_pause < 0:
            raise ValueError(f"frame_emotion_pause must be >= 0, got {self.frame_emotion_pause}")
        if self.frame_emotion_min_piece < MIN_PIECE_S:
            raise ValueError(f"frame_emotion_min_piece must be >= {MIN_PIECE_S}, got {self.frame_emotion_min_piece}")
        if self.long_audio_max < 0:
            raise ValueError(f"long_audio_max must be >= 0 (0: never split), got {self.long_audio_max}")
        if self.long_audio_max > 0:
            check_piece_lengths(self.long_audio_max, self.long_audio_min, self.long_audio_pause)

    @classmethod
    def from_yaml(cls, path: Optional[PathLike], overrides: Mapping[str, Any] = ()) -> "DecodeOptions":
        """Read a decoding config; ``overrides`` (non-None values) win over the file."""
        conf: Dict[str, Any] = {}
        if path is not None:
            with open(path, encoding="utf-8") as fh:
                loaded = yaml.safe_load(fh) or {}
            if not isinstance(loaded, dict):
                raise DataError(path, None, "expected a mapping of decoding options")
            conf.update(loaded)
        conf.update({k: v for k, v in dict(overrides).items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(conf) - known)
        if unknown:
            raise DataError(path, None, f"unknown decoding option(s) {unknown}; valid: {sorted(known)}")
        try:
            return cls(**conf)
        except (TypeError, ValueError) as err:  # a bad value: name the config (or the command line)
            raise DataError(path if path is not None else "decoding options", None, str(err)) from None


class EmotionRecognizer:
    """A trained ENT/FENT model with its tokenizer, ready to decode.

    Args:
        model: The EmotionTransducer.
        tokenizer: The tokenizer it was trained with.
        options: Decoding options.
        speaker_cmvn: Whether the model was trained with per-speaker CMVN
            (``speaker_cmvn: true``); :meth:`decode` then takes the
            statistics of each utterance's speaker, or falls back to the
            model's global CMVN.
        device: Where to run.
        lm: Token n-gram LM over the tokenizer's token list, fused with
            ``options.lm_weight`` (required when that weight is positive).

    Raises:
        ValueError: If ``options.lm_weight > 0`` and there is no LM.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, options: DecodeOptions,
                 device: str = "cpu", speaker_cmvn: bool = False, lm: Optional[NgramLM] = None) -> None:
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.options = options
        self.device = device
        self.speaker_cmvn = speaker_cmvn
        self._warned_global_cmvn = False
        if options.lm_weight > 0 and lm is None:
            raise ValueError("lm_weight > 0 needs a language model (--lm FILE.arpa, or lm.arpa in a packed model)")
        if lm is not None and options.lm_weight == 0:
            logging.info("an LM is given but lm_weight is 0: decoding without it")
        self.lm = NgramScorer(lm, tokenizer.token_list) if lm is not None and options.lm_weight > 0 else None

    @classmethod
    def from_model_dir(
        cls,
        model_dir: PathLike,
        model_file: str = "valid.loss.ave.pth",
        options: Optional[DecodeOptions] = None,
        device: str = "cpu",
        lm_file: Optional[PathLike] = None,
    ) -> "EmotionRecognizer":
        """Load ``<model_dir>/config.yaml`` and ``<model_dir>/<model_file>``.

        The language model is ``lm_file``, else ``<model_dir>/lm.arpa`` when a
        packed model holds one; it is read only if ``options.lm_weight > 0``.

        A config of the old layout (every model option in ``model_conf``) is
        migrated (:func:`ent.models.model_config.migrate_model_config`).

        Relative paths in the config (token list, CMVN statistics, a
        pretrained front end's ``model_dir``) of a packed model
        (``ent.bin.pack_model``; its config has ``packed_from``) are taken
        inside the model directory only, so that a ``tokens/`` or
        ``feats_stats.npz`` in the current directory never replaces the
        pack's own. Those of a training directory are taken relative to the
        current directory first (where a recipe trained the model), then to
        the model directory.

        Raises:
            DataError: If a file is missing, naming it, or the config or the
                checkpoint does not give a model (e.g. an option this version
                does not know), or the checkpoint is refused (it holds more
                than tensors and plain data) or unreadable (truncated).
        """
        from ent.tasks.ent_task import ENTTask
        from ent.text.tokenizer import Tokenizer

        model_dir = Path(model_dir)
        config_file = model_dir / "config.yaml"
        checkpoint = model_dir / model_file
        for path in (config_file, checkpoint):
            if not path.is_file():
                raise DataError(path, None, "not found (is this a trained ENT model directory?)")
        with open(config_file, encoding="utf-8") as fh:
            args = yaml.safe_load(fh)
        try:  # a model trained before the model options were grouped
            args = migrate_model_config(args, str(config_file))
        except ValueError as exc:
            raise DataError(config_file, None, str(exc)) from None
        packed = "packed_from" in args
        args["token_dir"] = str(_resolve(args["token_dir"], model_dir, config_file, packed))
        stats = (args.get("normalize_conf") or {}).get("stats_file")
        if stats:
            args["normalize_conf"]["stats_file"] = str(_resolve(stats, model_dir, config_file, packed))
        ssl_dir = (args.get("frontend_conf") or {}).get("model_dir") if args.get("frontend") == "ssl" else None
        if ssl_dir:
            expanded = os.path.expandvars(os.path.expanduser(str(ssl_dir)))
            inside = not Path(expanded).is_absolute() and (model_dir / expanded).exists()
            if inside and (packed or not Path(expanded).exists()):
                args["frontend_conf"]["model_dir"] = str(model_dir / expanded)
        import argparse

        namespace = argparse.Namespace(**args)
        try:
            model = ENTTask.build_model(namespace)
        except (TypeError, ValueError) as exc:
            # e.g. a key a later version no longer knows (frontend_conf, model_conf, ...)
            raise DataError(config_file, None, f"cannot build the model from this config: {exc}") from exc
        state = load_checkpoint(checkpoint)  # weights only: a crafted file is refused, not run
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(checkpoint, None, f"does not fit the model of {config_file.name}: {first}") from exc
        logging.info(f"loaded {checkpoint} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters)")
        tokenizer = Tokenizer.from_dir(args["token_dir"])
        options = options or DecodeOptions()
        lm = None
        if options.lm_weight > 0:
            if lm_file is None and (model_dir / PACKED_LM_NAME).is_file():
                lm_file = model_dir / PACKED_LM_NAME
            if lm_file is not None:
                if not Path(lm_file).is_file():
                    raise DataError(lm_file, None, "LM file not found")
                lm = NgramLM.read_arpa(lm_file)
                logging.info(f"loaded the {lm.order}-gram LM {lm_file} (weight {options.lm_weight})")
        return cls(model, tokenizer, options, device,
                   speaker_cmvn=bool(args.get("speaker_cmvn", False)), lm=lm)

    def speaker_stats(self, data: Any, utt_ids: Sequence[str], nj: int = 1) -> Dict[str, Any]:
        """Per-speaker CMVN statistics of a data directory for :meth:`decode`.

        Args:
            data: A :class:`~ent.data.datadir.DataDir`.
            utt_ids: The utterances to decode (an utterance without
                ``utt2spk`` entry is its own speaker).

        Returns:
            ``{utt: SpeakerStats}``, with the prosody statistics for a model whose
            head has a prosody expert (see :func:`ent.features.cmvn.speaker_cmvn`).
        """
        from ent.features.cmvn import speaker_cmvn

        return speaker_cmvn(data, self.model.frontend, nj=nj, utt_ids=utt_ids,
                            prosody=bool(getattr(self.model, "head_prosody", False)))

    @torch.no_grad()
    def decode(
        self,
        utt_ids: Sequence[str],
        waves: Sequence[np.ndarray],
        chunk_size: Optional[int] = None,
        num_left_chunks: Optional[int] = None,
        cmvn: Optional[Sequence[Any]] = None,
    ) -> List[DecodeResult]:
        """Decode one batch of waveforms.

        Args:
            utt_ids: Utterance ids (B).
            waves: 16 kHz mono float32 waveforms (B), any lengths.
            chunk_size: Simulated streaming: encode with chunk attention masks
                of this many encoder frames (a streaming model only; see
                :func:`~ent.decoding.streaming.encode_chunked`). None: full context.
            num_left_chunks: Earlier chunks visible with ``chunk_size`` (0:
                all); default the encoder's.
            cmvn: Per-utterance speaker statistics (B :class:`~ent.features.cmvn.SpeakerStats`
                from :meth:`speaker_stats`, or B (2, F) CMVN statistics alone)
                for a model trained with per-speaker
                CMVN. Without them such a model uses its global CMVN (on
                ``mini_emo`` test, ENT before pitch: UA 67.0 % against 76.8 % with the
                speaker statistics, and 49.8 % with each utterance's own
                statistics, which remove the emotion's level); other models
                ignore them.

        Returns:
            One :class:`DecodeResult` per utterance, in input order. A
            waveform longer than ``options.long_audio_max`` is decoded in
            pieces (:func:`~ent.decoding.long_audio.decode_long`).
        """
        limit = long_audio_samples(self)
        if limit is not None and any(len(w) > limit for w in waves):
            return decode_long_batch(self, utt_ids, waves, chunk_size, num_left_chunks, cmvn)
        model = self.model
        speech, lengths = self._pad(waves)
        stats: Optional[BatchStats] = None
        if self.speaker_cmvn and cmvn is not None:
            if len(cmvn) != len(waves):
                raise ValueError(f"{len(cmvn)} cmvn statistics for {len(waves)} waveforms")
            stats = batch_speaker_stats(cmvn, self.device)
        elif self.speaker_cmvn and not self._warned_global_cmvn:
            logging.warning("this model was trained with per-speaker CMVN; without speaker statistics "
                            "it uses its global CMVN (emotions are less accurate)")
            self._warned_global_cmvn = True
        enc, prosody = self._encode(speech, lengths, stats, chunk_size, num_left_chunks)
        opts = self.options
        hyps = self._search(enc)
        if opts.frame_emotion_pause > 0:
            hyps = self._frame_emotions_by_pieces(hyps, waves, stats, chunk_size, num_left_chunks)
        if opts.frame_switch_penalty > 0:
            hyps = [smooth_hypothesis(hyp, opts.frame_switch_penalty) for hyp in hyps]
        utt_emos = utterance_emotion(
            model, hyps, enc.blank, enc.lengths, utt_emotion_from=opts.utt_emotion_from,
            lattice_rule=opts.lattice_rule, threshold=opts.lattice_threshold, prosody=prosody,
        )
        neutral = model.emotions[model.neutral_id]
        return [
            make_result(utt, hyp, self.tokenizer, emo, model.frame_shift, model.emotions, neutral)
            for utt, hyp, emo in zip(utt_ids, hyps, utt_emos)
        ]

    def _pad(self, waves: Sequence[np.ndarray]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Waveforms as a zero-padded batch (B, N_max) and their lengths (B,), on the device."""
        lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
        speech = torch.zeros(len(waves), int(lengths.max()))
        for i, w in enumerate(waves):
            speech[i, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
        return speech.to(self.device), lengths.to(self.device)

    def _encode(
        self, speech: torch.Tensor, lengths: torch.Tensor, stats: Optional[BatchStats],
        chunk_size: Optional[int], num_left_chunks: Optional[int], with_prosody: bool = True,
    ) -> Tuple[EncoderOutput, Optional[torch.Tensor]]:
        """Encoder outputs and the head's prosody functionals (B, K) or None."""
        model = self.model
        cmvn, prosody_stats = stats if stats is not None else (None, None)
        if chunk_size is None:
            if not with_prosody:
                return model.encode(speech, lengths, cmvn), None
            return model.encode_with_prosody(speech, lengths, cmvn, prosody_stats)
        feats, feats_lens = model.frontend(speech, lengths)
        prosody = None
        if with_prosody and model.head_prosody:  # the functionals read the whole utterance's features
            prosody = model.utterance_prosody(feats, feats_lens, prosody_stats)
        enc = encode_chunked_feats(model, feats, feats_lens, chunk_size, num_left_chunks, cmvn)
        return enc, prosody

    def _search(self, enc: EncoderOutput) -> List[Hypothesis]:
        """The configured search over encoder outputs."""
        opts = self.options
        if opts.search == "greedy":
            return greedy_search(self.model, enc, max_symbols_per_frame=opts.max_symbols_per_frame)
        return modified_beam_search(self.model, enc, beam=opts.beam, lm=self.lm,
                                    lm_weight=opts.lm_weight, token_bonus=opts.token_bonus,
                                    max_symbols_per_frame=opts.max_symbols_per_frame)

    def _frame_emotions_by_pieces(
        self, hyps: List[Hypothesis], waves: Sequence[np.ndarray], stats: Optional[BatchStats],
        chunk_size: Optional[int], num_left_chunks: Optional[int],
    ) -> List[Hypothesis]:
        """``hyps`` with the frame emotions of their pause-delimited pieces (``frame_emotion_pause``).

        Utterances without a pause keep their own. The pieces of the others
        are encoded as one batch and searched greedily.

        Args:
            hyps: Hypotheses of the whole utterances (B).
            waves: Their waveforms (B).
            stats: Speaker statistics of each utterance (:func:`batch_speaker_stats`), or None.
        """
        opts = self.options
        sample_rate = int(self.model.frontend.sample_rate)
        align = int(round(self.model.frame_shift * sample_rate))
        spans = [split_at_pauses(np.asarray(w), opts.frame_emotion_pause, opts.frame_emotion_min_piece, align,
                                 sample_rate=sample_rate) for w in waves]
        cut = [b for b, sp in enumerate(spans) if len(sp) > 1]
        if not cut:
            return hyps
        owners = [b for b in cut for _ in spans[b]]
        speech, lengths = self._pad([waves[b][s:e] for b in cut for s, e in spans[b]])
        piece_stats = None
        if stats is not None:
            owner_index = torch.tensor(owners, device=stats[0].device)
            piece_stats = tuple(None if x is None else x[owner_index] for x in stats)
        enc, _ = self._encode(speech, lengths, piece_stats, chunk_size, num_left_chunks, with_prosody=False)
        pieces = greedy_search(self.model, enc, max_symbols_per_frame=opts.max_symbols_per_frame)
        out, k = list(hyps), 0
        for b in cut:
            n = len(spans[b])
            counts = piece_frames(spans[b], align, hyps[b].num_frames)
            out[b] = with_frame_emotions(hyps[b], *stitch_frames(pieces[k: k + n], counts))
            k += n
        return out

    @property
    def min_samples(self) -> int:
        """Shortest waveform the encoder accepts (shorter ones are padded with silence)."""
        return min_samples(self.model)


def batch_speaker_stats(stats: Sequence[Any], device: Union[str, torch.device] = "cpu") -> BatchStats:
    """Stack the speaker statistics of a batch: ``(speech_cmvn (B, 2, F), speaker_prosody (B, 2, K) or None)``.

    Args:
        stats: One :class:`~ent.features.cmvn.SpeakerStats` per utterance, or
            one (2, F) array of CMVN statistics alone.

    Raises:
        ValueError: If some utterances have prosody statistics and some do not.
    """
    parts = [s if isinstance(s, tuple) else (s, None) for s in stats]
    cmvn = torch.as_tensor(np.stack([np.asarray(c, dtype=np.float32) for c, _ in parts])).to(device)
    has_prosody = [p is not None for _, p in parts]
    if any(has_prosody) and not all(has_prosody):
        raise ValueError("some speaker statistics of the batch have prosody statistics and some do not")
    prosody = None
    if parts and all(has_prosody):
        prosody = torch.as_tensor(np.stack([np.asarray(p, dtype=np.float32) for _, p in parts])).to(device)
    return cmvn, prosody


def _resolve(path: str, model_dir: Path, config_file: Path, packed: bool = False) -> Path:
    """Find a file named in a model config: as given, else inside the model dir.

    A packed model's relative paths are looked up inside the model dir only.
    """
    given = Path(path)
    inside = [model_dir / path, model_dir / given.name]
    candidates = inside if packed and not given.is_absolute() else [given] + inside
    for cand in candidates:
        if cand.exists():
            return cand
    where = str(model_dir) if packed and not given.is_absolute() else f". and {model_dir}"
    raise DataError(config_file, None, f"'{path}' not found (looked in {where})")
