"""The Emotion Neural Transducer (ENT) and factorized ENT (FENT).

Reference: S. Shen et al., "Emotion Neural Transducer for Fine-Grained Speech
Emotion Recognition", ICASSP 2024 (arXiv:2403.19224), Sec. 2.

Data flow (shapes for a batch of B utterances, T encoder frames, U tokens,
V tokens in the vocabulary including blank = 0, C emotion classes)::

    speech (B, N) -> fbank (B, T0, F) -> CMVN -> SpecAug (training only)
      -> encoder (B, T, D_e)
    text (B, U) -> predictor (B, U+1, D_p)

    ENT:  joint(enc, pred)                  -> token lattice   (B, T, U+1, V)
          emotion_joint(enc, pred)          -> emotion lattice (B, T, U+1, C)
          head(enc, pred[, prosody])        -> utterance emotion (B, C)
    FENT: blank_joint(enc, blank_pred)      -> (B, T, U+1, 1)   \\ concatenated:
          vocab_joint(enc, vocab_pred)      -> (B, T, U+1, V-1) /  token lattice
          emotion_joint(enc, blank_pred)    -> emotion lattice (B, T, U+1, C)
          head(enc, blank_pred[, prosody])  -> utterance emotion (B, C)
          lm_head(vocab_pred)               -> next-token logits (optional LM loss)

With ``head_prosody: true`` the head also has a prosody expert reading the
utterance's prosody functionals of the fbank + pitch features, normalized per
speaker (:mod:`ent.features.prosody`)::

    fbank (B, T0, F) -> functionals (B, K) -> speaker z-norm -> prosody (B, K)

Loss::

    rnnt_weight * L_rnnt + head_weight * L_ce + lattice_weight * L_lattice
      (+ lm_weight * L_lm, FENT only)

where ``L_ce`` is the head's cross entropy, plus that of the prosody expert
alone when there is one and it is not fitted before training
(``head_prosody_fit``).

``L_lattice`` is lattice max pooling (:mod:`ent.losses.lattice_max_pool`) for
utterances labelled at utterance level, and the supervised interval loss for
utterances that carry emotion intervals (``emo_segments``).

FENT with a second layer weighting of a pretrained front end
(:class:`~ent.features.ssl.SSLFrontend` with ``blank_weighting: true``)::

    speech -> SSL model -> weighted sum 1 -> encoder -> enc        (B, T, D_e)
                        -> weighted sum 2 -> pool, Linear, + enc -> enc_blank
    encode() returns [enc | enc_blank] (B, T, 2 D_e); the vocabulary joint and
    CTC read enc, the blank joint, emotion joint and head read enc_blank
    (:mod:`ent.nets.blank_branch`).
"""

from __future__ import annotations

from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel
from torch.nn import functional as F

from ent.features.cmvn import apply_cmvn
from ent.features.prosody import NUM_PROSODY, normalize_prosody, prosody_functionals
from ent.kernels.backends import LATTICE_BACKENDS, RNNT_BACKENDS, resolve_backend
from ent.losses.fused_lattice import fused_lattice_max_pool_loss, fused_supervised_lattice_loss
from ent.losses.lattice_max_pool import (
    check_topk,
    frame_labels_from_segments,
    normalize_lattice_mode,
    lattice_max_pool_loss,
    supervised_lattice_loss,
)
from ent.losses.rnnt import rnnt_loss
from ent.nets.blank_branch import (
    BlankBranchInput,
    Channels,
    SlicedJointNetwork,
    SlicedLinear,
    SlicedUtteranceHead,
)
from ent.nets.joint import JointNetwork
from ent.nets.utterance_head import UtteranceEmotionHead, combine_experts

VARIANTS: Tuple[str, ...] = ("ent", "fent")


def mixed_intervals(emo_intervals: torch.Tensor) -> torch.Tensor:
    """Which utterances' emotion intervals hold more than one emotion.

    Args:
        emo_intervals: (B, K, 3) ``(start_s, end_s, emotion_id)`` rows, padded with rows of -1.

    Returns:
        (B,) bool.
    """
    if emo_intervals.size(1) == 0:  # a batch without interval labels
        return torch.zeros(emo_intervals.size(0), dtype=torch.bool, device=emo_intervals.device)
    emo = emo_intervals[..., 2].double()
    valid = emo >= 0
    high = torch.where(valid, emo, torch.full_like(emo, -1)).amax(dim=1)
    low = torch.where(valid, emo, torch.full_like(emo, float("inf"))).amin(dim=1)
    return valid.any(dim=1) & (high != low)


class EmotionTransducer(AbsESPnetModel):
    """ENT or FENT: a transducer with an emotion lattice and an utterance emotion head.

    Args:
        vocab_size: V, tokens including ``<blank>`` (id 0).
        emotions: Emotion class names; their order defines the class ids.
        frontend: Feature extractor ``(speech (B, N), lens) -> (feats (B, T0, F), lens)``.
            A frontend with ``num_weightings == 2`` (an SSL front end with
            ``blank_weighting``; FENT only) also feeds FENT's blank/emotion
            branch, and :meth:`encode` then returns packed outputs (see the
            module docstring).
        normalize: Feature normalization (global CMVN) or ``None``.
        specaug: SpecAugment, applied in training only, or ``None``.
        encoder: ``(feats, lens) -> (enc_out (B, T, D_e), enc_lens)``.
        predictor: Token predictor (ENT), or the vocabulary predictor (FENT).
        blank_predictor: FENT's blank predictor (``None`` for ENT).
        variant: ``"ent"`` or ``"fent"``.
        joint_dim: Size of the joint spaces.
        emotion_joint_dim: Size of the emotion joint space (default ``joint_dim``).
        joint_activation: Activation of the joint networks.
        neutral: Name of the neutral class (lattice max pooling's "no emotion").
        lattice_mode: How utterances without intervals train the emotion
            lattice (:mod:`ent.losses.lattice_max_pool`): the authors' lattice
            max pooling ``one``, ``full_t`` or ``full_u``, which on utterance
            labels alone ends with every frame neutral, or a ranked mode that
            does not: ``mil`` (the most emotional node of an emotional
            utterance, the least neutral node of a neutral one) or ``topk``
            (the ``lattice_topk`` share of such nodes).
        lattice_topk: Share of the lattice nodes pooled by ``lattice_mode: topk``, in (0, 1].
        rnnt_weight: Weight of the RNN-T loss.
        head_weight: Weight of the utterance head's cross entropy.
        lattice_weight: Weight of the lattice loss.
        lm_weight: Weight of FENT's LM loss on the vocabulary predictor.
        head_dropout: Dropout before the utterance head's classifier.
        head_pooling: The head's encoder pooling, ``mean`` or ``stats``
            (mean and standard deviation; see
            :class:`~ent.nets.utterance_head.UtteranceEmotionHead`).
        head_hidden_dim: Size of the head's hidden layer (0: a linear head).
        label_smoothing: Label smoothing of the utterance head's cross entropy.
        head_prosody: Give the utterance head a prosody expert
            (:class:`~ent.nets.utterance_head.UtteranceEmotionHead`) reading the
            :data:`~ent.features.prosody.PROSODY_FUNCTIONALS` of the fbank +
            pitch features (needs ``pitch: true``). They are normalized with
            the speaker's statistics when ``speech_cmvn`` carries them
            (:func:`ent.features.cmvn.speaker_cmvn` with ``prosody=True``),
            else with global statistics accumulated over the training
            utterances (buffers ``prosody_stats``).
        head_prosody_fit: Fit the prosody expert on the training set before
            training, as a logistic regression (``ENTTask`` does it when it
            builds the optimizer; :meth:`fit_prosody_expert`), and keep it
            fixed. False: train it by gradient with its own cross entropy.
        head_prosody_l2: L2 weight of that logistic regression.
        head_skip_mixed: Leave utterances whose emotion intervals hold more
            than one emotion (e.g. neutral, then happy) out of the utterance
            head's cross entropy: their label names only a part of them, and
            pooling the whole utterance against it teaches the head that
            neutral-sounding speech is emotional. The supervised lattice loss
            still learns them frame by frame.
        frame_shift: Encoder frame shift in seconds (for interval labels).
        ctc_weight: Weight of an auxiliary CTC loss on the encoder output
            (a linear layer to the V tokens, blank shared). It speeds up the
            learning of the alignment, as ESPnet's transducer and icefall
            recipes use it; it is not used in decoding.
        lattice_backend: How the lattice losses are computed: ``auto`` (the
            fused kernels of :mod:`ent.losses.fused_lattice`: numba on CPU,
            the CUDA extension or numba CUDA on GPU), ``torch`` (materialize
            the emotion lattice), ``numba``, ``cuda`` or ``numba_cuda``. The
            fused kernels need ``joint_activation: tanh``; with another
            activation ``auto`` uses ``torch``.
        rnnt_backend: How the RNN-T loss is computed (:func:`ent.losses.rnnt.rnnt_loss`):
            ``auto`` (numba on CPU, torchaudio on GPU), ``torchaudio`` or ``numba``.
        fused_joint: On CPU tensors, compute whole lattices of joints with at
            most 64 outputs with the fused kernels of :mod:`ent.kernels.fused_joint`
            (the same results up to float rounding, faster); False: plain PyTorch.
    """

    def __init__(
        self,
        vocab_size: int,
        emotions: Sequence[str],
        frontend: torch.nn.Module,
        normalize: Optional[torch.nn.Module],
        specaug: Optional[torch.nn.Module],
        encoder: torch.nn.Module,
        predictor: torch.nn.Module,
        blank_predictor: Optional[torch.nn.Module] = None,
        variant: str = "ent",
        joint_dim: int = 256,
        emotion_joint_dim: Optional[int] = None,
        joint_activation: str = "tanh",
        neutral: str = "neutral",
        lattice_mode: str = "one",
        lattice_topk: float = 0.5,
        rnnt_weight: float = 1.0,
        head_weight: float = 1.0,
        lattice_weight: float = 1.0,
        lm_weight: float = 0.0,
        head_dropout: float = 0.0,
        head_pooling: str = "mean",
        head_hidden_dim: int = 0,
        label_smoothing: float = 0.0,
        head_skip_mixed: bool = False,
        head_prosody: bool = False,
        head_prosody_fit: bool = True,
        head_prosody_l2: float = 1.0e-3,
        frame_shift: float = 0.04,
        ctc_weight: float = 0.0,
        lattice_backend: str = "auto",
        rnnt_backend: str = "auto",
        fused_joint: bool = True,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown model variant {variant!r}; valid: {list(VARIANTS)}")
        if (variant == "fent") != (blank_predictor is not None):
            raise ValueError("a blank predictor is required for FENT and not allowed for ENT")
        if neutral not in emotions:
            raise ValueError(f"neutral class {neutral!r} is not among the emotions {list(emotions)}")
        if lm_weight > 0 and variant != "fent":
            raise ValueError("lm_weight > 0 needs the factorized model (variant: fent)")
        if lattice_backend not in LATTICE_BACKENDS:
            raise ValueError(f"unknown lattice backend {lattice_backend!r}; valid: {list(LATTICE_BACKENDS)}")
        if rnnt_backend not in RNNT_BACKENDS:
            raise ValueError(f"unknown RNN-T loss backend {rnnt_backend!r}; valid: {list(RNNT_BACKENDS)}")
        if joint_activation != "tanh" and lattice_backend not in ("auto", "torch"):
            raise ValueError(f"lattice_backend {lattice_backend!r} needs joint_activation 'tanh'")
        blank_branch = getattr(frontend, "num_weightings", 1) > 1
        if blank_branch and variant != "fent":
            raise ValueError("a frontend with a second (blank-branch) layer weighting needs variant: fent")
        if blank_branch and normalize is not None:
            raise ValueError("global CMVN is not supported with a blank-branch layer weighting")
        if head_prosody and not getattr(frontend, "pitch", False):
            raise ValueError("head_prosody needs the fbank frontend with pitch features (frontend_conf: {pitch: true})")
        self.blank_id = 0
        self.vocab_size = vocab_size
        self.emotions = list(emotions)
        self.neutral_id = self.emotions.index(neutral)
        self.variant = variant
        self.lattice_mode = normalize_lattice_mode(lattice_mode)
        self.lattice_topk = check_topk(lattice_topk)
        self.rnnt_weight = rnnt_weight
        self.head_weight = head_weight
        self.lattice_weight = lattice_weight
        self.lm_weight = lm_weight
        self.label_smoothing = label_smoothing
        self.head_skip_mixed = head_skip_mixed
        self.frame_shift = frame_shift
        self.ctc_weight = ctc_weight
        self.lattice_backend = lattice_backend if joint_activation == "tanh" else "torch"
        self.rnnt_backend = rnnt_backend

        self.frontend = frontend
        self.normalize = normalize
        self.specaug = specaug
        self.encoder = encoder
        self.predictor = predictor
        self.blank_predictor = blank_predictor
        enc_dim = encoder.output_size()
        pred_dim = predictor.output_size()
        num_classes = len(self.emotions)
        # Branch modules: the plain classes, or with a blank-branch weighting the
        # same classes reading their half of the packed [enc | enc_blank] output.
        vocab_joint_cls = blank_joint_cls = JointNetwork
        head_cls, ctc_cls = UtteranceEmotionHead, torch.nn.Linear
        if blank_branch:
            vocab_half = Channels(0, enc_dim, 2 * enc_dim)
            blank_half = Channels(enc_dim, 2 * enc_dim, 2 * enc_dim)
            vocab_joint_cls = partial(SlicedJointNetwork, vocab_half)
            blank_joint_cls = partial(SlicedJointNetwork, blank_half)
            head_cls, ctc_cls = partial(SlicedUtteranceHead, blank_half), partial(SlicedLinear, vocab_half)
        if variant == "ent":
            self.joint = JointNetwork(enc_dim, pred_dim, joint_dim, vocab_size, joint_activation)
            emo_pred_dim = pred_dim
        else:
            blank_dim = blank_predictor.output_size()
            self.blank_joint = blank_joint_cls(enc_dim, blank_dim, joint_dim, 1, joint_activation)
            self.vocab_joint = vocab_joint_cls(enc_dim, pred_dim, joint_dim, vocab_size - 1, joint_activation)
            self.lm_head = torch.nn.Linear(pred_dim, vocab_size - 1) if lm_weight > 0 else None
            emo_pred_dim = blank_dim
        self.emotion_joint = blank_joint_cls(
            enc_dim, emo_pred_dim, emotion_joint_dim or joint_dim, num_classes, joint_activation
        )
        for module in self.modules():
            if isinstance(module, JointNetwork):
                module.fused = bool(fused_joint)
        self.head_prosody = bool(head_prosody)
        self.head_prosody_fit = bool(head_prosody_fit)
        self.head_prosody_l2 = float(head_prosody_l2)
        self.head = head_cls(
            enc_dim, emo_pred_dim, num_classes, dropout=head_dropout,
            pooling=head_pooling, hidden_dim=head_hidden_dim,
            prosody_dim=NUM_PROSODY if head_prosody else 0,
        )
        if head_prosody:
            # Global normalization of the functionals (when no speaker statistics
            # are given): utterance count, sum and sum of squares over training.
            self.register_buffer("prosody_stats", torch.zeros(3, NUM_PROSODY, dtype=torch.float64))
        self.ctc_lin = ctc_cls(enc_dim, vocab_size) if ctc_weight > 0 else None
        #: FENT's blank-branch input from the frontend's second weighting (None: no such branch).
        self.blank_branch = (
            BlankBranchInput.for_encoder(frontend.output_size(), encoder) if blank_branch else None
        )

    # ----------------------------------------------------------------- encoder
    def encode(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        speech_cmvn: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Waveforms to encoder outputs.

        Args:
            speech: (B, N) 16 kHz waveforms, zero padded.
            speech_lengths: (B,) samples per utterance.
            speech_cmvn: (B, 2, F) per-utterance feature mean and standard
                deviation (per-speaker CMVN) used instead of ``normalize``;
                None: ``normalize``. (B, 2, F + K) with ``head_prosody``: the
                speaker's prosody statistics follow (:meth:`utterance_prosody`).

        Returns:
            enc_out: (B, T, D_e), or (B, T, 2 D_e) ``[enc | enc_blank]`` with a
                blank-branch weighting (module docstring); enc_lens: (B,).
        """
        enc_out, enc_lens, _ = self._encode(speech, speech_lengths, speech_cmvn, with_prosody=False)
        return enc_out, enc_lens

    def encode_with_prosody(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        speech_cmvn: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """:meth:`encode`, and the normalized prosody functionals the head reads.

        Returns:
            enc_out, enc_lens as :meth:`encode`; prosody (B, K), or None for a
            model without ``head_prosody``.
        """
        return self._encode(speech, speech_lengths, speech_cmvn, with_prosody=True)

    def _encode(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, speech_cmvn: Optional[torch.Tensor],
        with_prosody: bool,
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        if self.blank_branch is not None:
            if speech_cmvn is not None:
                raise ValueError("speech_cmvn (per-speaker CMVN) is not supported with a blank-branch weighting")
            enc_out, enc_lens = self._encode_with_blank_branch(speech, speech_lengths)
            return enc_out, enc_lens, None
        feats, feats_lens = self.frontend(speech, speech_lengths)
        prosody = self.utterance_prosody(feats, feats_lens, speech_cmvn) if with_prosody else None
        feats = self.normalize_feats(feats, feats_lens, speech_cmvn)
        if self.specaug is not None and self.training:
            feats, feats_lens = self.specaug(feats, feats_lens)
        enc_out, enc_lens = self.encoder(feats, feats_lens)
        return enc_out, enc_lens, prosody

    def fit_prosody_expert(self, prosody: torch.Tensor, labels: torch.Tensor) -> float:
        """Fit the head's prosody expert on normalized training functionals and freeze it.

        Args:
            prosody: (N, K) functionals normalized as :meth:`utterance_prosody`
                does (e.g. :func:`ent.features.cmvn.normalized_prosody_table`).
            labels: (N,) emotion ids.

        Returns:
            The final objective (see
            :meth:`~ent.nets.utterance_head.UtteranceEmotionHead.fit_prosody_expert`).
        """
        if not self.head_prosody:
            raise ValueError("this model has no prosody expert (head_prosody: false)")
        return self.head.fit_prosody_expert(prosody, labels, l2=self.head_prosody_l2)

    @property
    def speaker_stats_dim(self) -> int:
        """Columns of the per-speaker statistics (``speech_cmvn``) the model reads: F, or F + K with prosody."""
        return self.frontend.output_size() + (NUM_PROSODY if self.head_prosody else 0)

    @torch.no_grad()
    def utterance_prosody(
        self, feats: torch.Tensor, feats_lens: torch.Tensor, speech_cmvn: Optional[torch.Tensor] = None
    ) -> Optional[torch.Tensor]:
        """Normalized prosody functionals of unnormalized frontend features (``head_prosody`` only).

        In training mode the global statistics (buffer ``prosody_stats``) are
        updated with the batch first.

        Args:
            feats: (B, T0, F) frontend features before CMVN; feats_lens: (B,).
            speech_cmvn: (B, 2, F + K) speaker statistics whose last K columns
                normalize the functionals; None or (B, 2, F): the global
                statistics.

        Returns:
            (B, K) normalized functionals, or None without ``head_prosody``.
        """
        if not self.head_prosody:
            return None
        funcs = prosody_functionals(feats, feats_lens, self.frontend.n_mels)
        if self.training:
            f64 = funcs.double()
            update = torch.stack([torch.ones_like(f64), f64, f64 * f64]).sum(dim=1)
            self.prosody_stats += update
        num_feats = self.frontend.output_size()
        if speech_cmvn is not None and speech_cmvn.size(-1) == num_feats + NUM_PROSODY:
            mean, std = speech_cmvn[:, 0, num_feats:], speech_cmvn[:, 1, num_feats:]
        else:
            count, total, total_sq = self.prosody_stats
            if float(count[0]) == 0:
                raise ValueError("no prosody statistics: this model was not trained, and no speaker statistics "
                                 "with prosody were given")
            mean = total / count
            std = (total_sq / count - mean * mean).clamp(min=0.0).sqrt()
        return normalize_prosody(funcs.double(), mean.double(), std.double()).to(funcs.dtype)

    def normalize_feats(
        self, feats: torch.Tensor, feats_lens: torch.Tensor, speech_cmvn: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """CMVN of frontend features: the speaker's statistics if given, else ``normalize``.

        Args:
            feats: (B, T, F) features; feats_lens: (B,).
            speech_cmvn: (B, 2, F) per-speaker mean and standard deviation, or None.

        Returns:
            (B, T, F) normalized features (unchanged without any statistics).
        """
        if speech_cmvn is not None:
            return apply_cmvn(feats, feats_lens, speech_cmvn[..., : feats.size(-1)])
        if self.normalize is not None:
            feats, _ = self.normalize(feats, feats_lens)
        return feats

    def _encode_with_blank_branch(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """FENT with a second layer weighting: packed ``[enc | enc_blank]`` (B, T, 2 D_e).

        SpecAugment (training only) sees both weighted sums concatenated, so
        its time warping and time masks are the same for the two streams
        (frequency masks fall anywhere in the 2 F channels).
        """
        (feats, blank_feats), feats_lens = self.frontend.forward_weightings(speech, speech_lengths)
        if self.specaug is not None and self.training:
            both, feats_lens = self.specaug(torch.cat([feats, blank_feats], dim=-1), feats_lens)
            feats, blank_feats = both.split(feats.size(-1), dim=-1)
        enc_out, enc_lens = self.encoder(feats, feats_lens)
        enc_blank = self.blank_branch(enc_out, enc_lens, blank_feats, feats_lens)
        return torch.cat([enc_out, enc_blank], dim=-1), enc_lens

    # -------------------------------------------------------------- predictors
    def predict(self, text: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Predictor outputs for the token lattice and for the emotion branch.

        Args:
            text: (B, U) token ids, padded with -1.

        Returns:
            token_pred: (B, U+1, D_p) the (vocabulary) predictor's outputs.
            emo_pred: (B, U+1, D_p') the outputs the emotion branch reads
                (the same tensor for ENT, the blank predictor's for FENT).
        """
        token_pred = self.predictor(text)
        emo_pred = token_pred if self.blank_predictor is None else self.blank_predictor(text)
        return token_pred, emo_pred

    def token_logits(
        self, enc_out: torch.Tensor, token_pred: torch.Tensor, emo_pred: torch.Tensor
    ) -> torch.Tensor:
        """Token logits for every pair of encoder frame and predictor position.

        Leading dimensions broadcast, e.g. enc_out (B, T, 1, D_e) with
        predictor outputs (B, 1, U+1, D_p) give the lattice (B, T, U+1, V);
        enc_out (B, D_e) with (B, D_p) give one step (B, V).
        """
        if self.variant == "ent":
            return self.joint(enc_out, token_pred)
        blank = self.blank_joint(enc_out, emo_pred)
        vocab = self.vocab_joint(enc_out, token_pred)
        return torch.cat([blank, vocab], dim=-1)

    def emotion_logits(self, enc_out: torch.Tensor, emo_pred: torch.Tensor) -> torch.Tensor:
        """Emotion logits (the emotion lattice when given lattice-shaped inputs)."""
        return self.emotion_joint(enc_out, emo_pred)

    # ---------------------------------------------------------------- training
    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        emotion: torch.Tensor,
        emo_intervals: Optional[torch.Tensor] = None,
        speech_cmvn: Optional[torch.Tensor] = None,
        **kwargs: torch.Tensor,
    ) -> Tuple[torch.Tensor, Dict[str, Optional[torch.Tensor]], torch.Tensor]:
        """Compute the training loss.

        Args:
            speech: (B, N) waveforms; speech_lengths: (B,).
            text: (B, U) token ids padded with -1; text_lengths: (B,).
            emotion: (B,) utterance emotion ids (-1: unknown, left out of the
                emotion losses).
            emo_intervals: optional (B, K, 3) emotion intervals
                ``(start_s, end_s, emotion_id)`` padded with rows of -1.
                Utterances with at least one interval are trained with the
                supervised lattice loss instead of lattice max pooling.
            speech_cmvn: optional (B, 2, F) per-speaker feature statistics
                (see :meth:`encode`).

        Returns:
            loss, stats (loss terms and the head's accuracy), batch size.
        """
        batch = speech.shape[0]
        text = text[:, : int(text_lengths.max())] if text.shape[1] > 0 else text
        enc_out, enc_lens, prosody = self.encode_with_prosody(speech, speech_lengths, speech_cmvn)
        token_pred, emo_pred = self.predict(text)
        enc4 = enc_out.unsqueeze(2)

        logits = self.token_logits(enc4, token_pred.unsqueeze(1), emo_pred.unsqueeze(1))
        labels = text.clamp(min=0)
        loss_rnnt = rnnt_loss(
            logits, labels, enc_lens, text_lengths, blank_id=self.blank_id, backend=self.rnnt_backend
        )
        loss_ctc = self._ctc_loss(enc_out, enc_lens, text, text_lengths) if self.ctc_lin is not None else None

        loss_lattice = self._lattice_loss(enc_out, emo_pred, enc_lens, text_lengths, emotion, emo_intervals)

        expert_logits = self.head.forward_parts(enc_out, enc_lens, emo_pred, text_lengths, prosody)
        head_logits = combine_experts(*expert_logits)
        head_target = emotion
        if self.head_skip_mixed and emo_intervals is not None:
            head_target = torch.where(mixed_intervals(emo_intervals), torch.full_like(emotion, -1), emotion)
        # a fitted (frozen) prosody expert has nothing to learn
        experts = [expert_logits[0]] + ([expert_logits[1]] if self.head.prosody_trainable else [])
        if bool((head_target >= 0).any()):
            loss_ce = sum(
                F.cross_entropy(logits, head_target, ignore_index=-1, label_smoothing=self.label_smoothing)
                for logits in experts
            )
        else:  # no utterance of the batch trains the head (a mean over none would be NaN)
            loss_ce = sum(logits.sum() * 0.0 for logits in experts)
        loss = (
            self.rnnt_weight * loss_rnnt
            + self.head_weight * loss_ce
            + self.lattice_weight * loss_lattice
        )
        stats: Dict[str, Optional[torch.Tensor]] = {
            "loss_rnnt": loss_rnnt.detach(),
            "loss_ce": loss_ce.detach(),
            "loss_lattice": loss_lattice.detach(),
        }
        if loss_ctc is not None:
            loss = loss + self.ctc_weight * loss_ctc
            stats["loss_ctc"] = loss_ctc.detach()
        if self.variant == "fent" and self.lm_head is not None and self.lm_weight > 0:
            loss_lm = self._lm_loss(token_pred, text)
            loss = loss + self.lm_weight * loss_lm
            stats["loss_lm"] = loss_lm.detach()
        known = emotion >= 0
        acc = (head_logits.argmax(-1)[known] == emotion[known]).float().mean() if known.any() else None
        stats["acc_emo"] = None if acc is None else acc.detach()
        stats["loss"] = loss.detach()
        loss, stats, weight = force_gatherable((loss, stats, batch), loss.device)
        return loss, stats, weight

    def _lattice_loss(
        self,
        enc_out: torch.Tensor,
        emo_pred: torch.Tensor,
        enc_lens: torch.Tensor,
        label_lens: torch.Tensor,
        emotion: torch.Tensor,
        emo_intervals: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """Lattice max pooling, or the supervised loss for utterances with intervals.

        The fused back ends never build the (B, T, U+1, C) emotion lattice;
        ``lattice_backend: torch`` does (see :mod:`ent.losses.fused_lattice`).

        Args:
            enc_out: (B, T, D_e) encoder outputs.
            emo_pred: (B, U+1, D_p') predictor outputs of the emotion branch.
            enc_lens, label_lens, emotion: (B,).
            emo_intervals: (B, K, 3) or None.
        """
        if resolve_backend(self.lattice_backend, enc_out.device) == "torch":
            emo_lattice = self.emotion_logits(enc_out.unsqueeze(2), emo_pred.unsqueeze(1))
            pool_loss = partial(lattice_max_pool_loss, emo_lattice)
            interval_loss = partial(supervised_lattice_loss, emo_lattice)
        else:
            joint = self.emotion_joint
            fused_inputs = (
                joint.project_encoder(enc_out), joint.project_predictor(emo_pred),
                joint.lin_out.weight, joint.lin_out.bias,
            )
            pool_loss = partial(fused_lattice_max_pool_loss, *fused_inputs, backend=self.lattice_backend)
            interval_loss = partial(
                fused_supervised_lattice_loss, *fused_inputs, backend=self.lattice_backend
            )
        has_iv = torch.zeros_like(emotion, dtype=torch.bool)
        if emo_intervals is not None and emo_intervals.numel() > 0:
            has_iv = (emo_intervals[..., 2] >= 0).any(dim=1)
        pooled_labels = torch.where(has_iv, torch.full_like(emotion, -1), emotion)
        per_utt = pool_loss(
            enc_lens, label_lens, pooled_labels,
            mode=self.lattice_mode, neutral_id=self.neutral_id, reduction="none", topk=self.lattice_topk,
        )
        total = per_utt.sum()
        count = (pooled_labels >= 0).sum()
        if bool(has_iv.any()):
            frame_labels = self.interval_frame_labels(emo_intervals, has_iv, enc_out.shape[1])
            per_sup = interval_loss(enc_lens, label_lens, frame_labels.to(enc_out.device), reduction="none")
            total = total + per_sup.sum()
            count = count + has_iv.sum()
        return total / count.clamp(min=1)

    def interval_frame_labels(
        self, emo_intervals: torch.Tensor, has_iv: torch.Tensor, num_frames: int
    ) -> torch.Tensor:
        """Per-frame labels from interval rows (neutral outside intervals, -1 when unlabelled).

        Args:
            emo_intervals: (B, K, 3) ``(start_s, end_s, emotion_id)`` rows, -1 padded.
            has_iv: (B,) which utterances carry intervals.
            num_frames: T.

        Returns:
            (B, T) long frame labels.
        """
        rows: List[torch.Tensor] = []
        for b in range(emo_intervals.shape[0]):
            if not bool(has_iv[b]):
                rows.append(torch.full((num_frames,), -1, dtype=torch.long))
                continue
            segs = [
                (float(s), float(e), int(k))
                for s, e, k in emo_intervals[b].tolist()
                if k >= 0
            ]
            rows.append(frame_labels_from_segments(segs, num_frames, self.frame_shift, self.neutral_id))
        return torch.stack(rows)

    def _ctc_loss(
        self, enc_out: torch.Tensor, enc_lens: torch.Tensor, text: torch.Tensor, text_lengths: torch.Tensor
    ) -> torch.Tensor:
        """Auxiliary CTC loss, summed over each utterance and averaged over the batch.

        Args:
            enc_out: (B, T, D_e); enc_lens: (B,); text: (B, U) padded with -1; text_lengths: (B,).
        """
        log_probs = torch.log_softmax(self.ctc_lin(enc_out).float(), dim=-1).transpose(0, 1)
        targets = torch.cat([text[b, : int(text_lengths[b])] for b in range(text.shape[0])])
        loss = F.ctc_loss(
            log_probs, targets, enc_lens, text_lengths, blank=self.blank_id,
            reduction="sum", zero_infinity=True,
        )
        return loss / text.shape[0]

    def _lm_loss(self, token_pred: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """FENT's LM loss: the vocabulary predictor predicts the next token.

        Args:
            token_pred: (B, U+1, D_p); text: (B, U) padded with -1.
        """
        logits = self.lm_head(token_pred[:, :-1])  # (B, U, V-1)
        target = torch.where(text > 0, text - 1, torch.full_like(text, -1))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-1)

    def collect_feats(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """Features for ESPnet's statistics collection. feats: (B, T0, F)."""
        feats, feats_lengths = self.frontend(speech, speech_lengths)
        return {"feats": feats, "feats_lengths": feats_lengths}
