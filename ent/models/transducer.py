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

With ``head_conf: {prosody: true}`` the head also has a prosody expert reading
the utterance's prosody functionals of the fbank + pitch features, normalized
per speaker (:mod:`ent.features.prosody`)::

    fbank (B, T0, F) -> functionals (B, K) -> speaker z-norm -> prosody (B, K)

Loss (:class:`~ent.models.model_config.LossConf`)::

    rnnt_weight * L_rnnt + head_weight * L_ce + lattice_weight * L_lattice
      + ctc_weight * L_ctc (+ predictor_lm_weight * L_lm, FENT only)

where ``L_ce`` is the head's cross entropy, plus that of the prosody expert
alone while it is trainable (training fits it before the first step and
freezes it, :meth:`EmotionTransducer.fit_prosody_expert`).

``L_lattice`` is lattice max pooling (:mod:`ent.losses.lattice_max_pool`) for
utterances labelled at utterance level, and the supervised interval loss for
utterances that carry emotion intervals (``emo_segments``).

The model's options are grouped in :mod:`ent.models.model_config`
(``model_conf``, ``joint_conf``, ``head_conf``, ``loss_conf``); the compute
back ends are a run-time choice (:class:`~ent.kernels.backends.ComputeBackends`).

FENT with a second layer weighting of a pretrained front end
(:class:`~ent.features.ssl.SSLFrontend` with ``blank_weighting: true``)::

    speech -> SSL model -> weighted sum 1 -> encoder -> enc        (B, T, D_e)
                        -> weighted sum 2 -> pool, Linear, + enc -> enc_blank
    encode() returns EncoderOutput(enc, lengths, enc_blank): the vocabulary
    joint and CTC read enc, the blank joint, emotion joint and head read
    enc_blank (:mod:`ent.nets.blank_branch`). Without that weighting
    ``enc_blank`` is None and every branch reads ``enc``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel
from torch.nn import functional as F

from ent.features.cmvn import apply_cmvn
from ent.features.prosody import NUM_PROSODY, normalize_prosody, prosody_functionals
from ent.kernels.backends import ComputeBackends, resolve_backend
from ent.losses.fused_lattice import fused_lattice_max_pool_loss, fused_supervised_lattice_loss
from ent.losses.lattice_max_pool import (
    check_topk,
    frame_labels_from_segments,
    normalize_lattice_mode,
    lattice_max_pool_loss,
    supervised_lattice_loss,
)
from ent.losses.rnnt import rnnt_loss
from ent.models.encoder_output import EncoderOutput
from ent.models.model_config import HeadConf, JointConf, LossConf, group_conf
from ent.nets.blank_branch import BlankBranchInput
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
            branch, and :meth:`encode` then returns ``enc_blank`` too (see the
            module docstring).
        normalize: Feature normalization (global CMVN) or ``None``.
        specaug: SpecAugment, applied in training only, or ``None``.
        encoder: ``(feats, lens) -> (enc_out (B, T, D_e), enc_lens)``.
        predictor: Token predictor (ENT), or the vocabulary predictor (FENT).
        blank_predictor: FENT's blank predictor (``None`` for ENT).
        variant: ``"ent"`` or ``"fent"``.
        neutral: Name of the neutral class (lattice max pooling's "no emotion").
        joint_conf: The joint networks (:class:`~ent.models.model_config.JointConf`
            or its mapping; None: the defaults).
        head_conf: The utterance head (:class:`~ent.models.model_config.HeadConf`).
        loss_conf: The loss (:class:`~ent.models.model_config.LossConf`).
        backends: Compute back ends of the losses and joints (not part of the
            model's configuration; None: :meth:`ComputeBackends.from_env`,
            i.e. ``auto`` unless the environment says otherwise). With a joint
            activation other than ``tanh`` the ``auto`` lattice back end is ``torch``.

    The encoder frame shift :attr:`frame_shift` (seconds, for interval
    labels and output times) is the frontend's frame shift times the
    encoder's subsampling factor.
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
        neutral: str = "neutral",
        joint_conf: Union[None, JointConf, Mapping[str, Any]] = None,
        head_conf: Union[None, HeadConf, Mapping[str, Any]] = None,
        loss_conf: Union[None, LossConf, Mapping[str, Any]] = None,
        backends: Optional[ComputeBackends] = None,
    ) -> None:
        super().__init__()
        joint = group_conf(JointConf, joint_conf, "joint_conf")
        head = group_conf(HeadConf, head_conf, "head_conf")
        loss = group_conf(LossConf, loss_conf, "loss_conf")
        if variant not in VARIANTS:
            raise ValueError(f"unknown model variant {variant!r}; valid: {list(VARIANTS)}")
        if (variant == "fent") != (blank_predictor is not None):
            raise ValueError("a blank predictor is required for FENT and not allowed for ENT")
        if neutral not in emotions:
            raise ValueError(f"neutral class {neutral!r} is not among the emotions {list(emotions)}")
        if loss.predictor_lm_weight > 0 and variant != "fent":
            raise ValueError("loss_conf.predictor_lm_weight > 0 needs the factorized model (variant: fent)")
        blank_branch = getattr(frontend, "num_weightings", 1) > 1
        if blank_branch and variant != "fent":
            raise ValueError("a frontend with a second (blank-branch) layer weighting needs variant: fent")
        if blank_branch and normalize is not None:
            raise ValueError("global CMVN is not supported with a blank-branch layer weighting")
        if head.prosody and not getattr(frontend, "pitch", False):
            raise ValueError("head_conf.prosody needs the fbank frontend with pitch features "
                             "(frontend_conf: {pitch: true})")
        self.joint_conf, self.head_conf, self.loss_conf = joint, head, loss
        self.blank_id = 0
        self.vocab_size = vocab_size
        self.emotions = list(emotions)
        self.neutral_id = self.emotions.index(neutral)
        self.variant = variant
        self.lattice_mode = normalize_lattice_mode(loss.lattice_mode)
        self.lattice_topk = check_topk(loss.lattice_topk)
        self.head_prosody = bool(head.prosody)
        self.head_skip_mixed = bool(head.skip_mixed)
        #: Encoder frame shift in seconds (derived, not an option).
        self.frame_shift = frontend.frame_shift_ms / 1000.0 * encoder.subsampling_factor

        self.frontend = frontend
        self.normalize = normalize
        self.specaug = specaug
        self.encoder = encoder
        self.predictor = predictor
        self.blank_predictor = blank_predictor
        enc_dim = encoder.output_size()
        pred_dim = predictor.output_size()
        num_classes = len(self.emotions)
        if variant == "ent":
            self.joint = JointNetwork(enc_dim, pred_dim, joint.dim, vocab_size, joint.activation)
            emo_pred_dim = pred_dim
        else:
            blank_dim = blank_predictor.output_size()
            self.blank_joint = JointNetwork(enc_dim, blank_dim, joint.dim, 1, joint.activation)
            self.vocab_joint = JointNetwork(enc_dim, pred_dim, joint.dim, vocab_size - 1, joint.activation)
            self.lm_head = torch.nn.Linear(pred_dim, vocab_size - 1) if loss.predictor_lm_weight > 0 else None
            emo_pred_dim = blank_dim
        self.emotion_joint = JointNetwork(
            enc_dim, emo_pred_dim, joint.emotion_dim or joint.dim, num_classes, joint.activation
        )
        self.head = UtteranceEmotionHead(
            enc_dim, emo_pred_dim, num_classes, dropout=head.dropout,
            prosody_dim=NUM_PROSODY if head.prosody else 0,
        )
        if head.prosody:
            # Global normalization of the functionals (when no speaker statistics
            # are given): utterance count, sum and sum of squares over training.
            self.register_buffer("prosody_stats", torch.zeros(3, NUM_PROSODY, dtype=torch.float64))
        self.ctc_lin = torch.nn.Linear(enc_dim, vocab_size) if loss.ctc_weight > 0 else None
        #: FENT's blank-branch input from the frontend's second weighting (None: no such branch).
        self.blank_branch = (
            BlankBranchInput.for_encoder(frontend.output_size(), encoder) if blank_branch else None
        )
        self.set_backends(ComputeBackends.from_env() if backends is None else backends)

    def set_backends(self, backends: ComputeBackends) -> None:
        """Choose the compute back ends (a run-time choice, not saved with the model).

        Raises:
            ValueError: If a fused lattice back end is asked for with a joint
                activation other than ``tanh``.
        """
        tanh = self.joint_conf.activation == "tanh"
        if not tanh and backends.lattice not in ("auto", "torch"):
            raise ValueError(f"lattice backend {backends.lattice!r} needs joint_conf.activation 'tanh'")
        self.backends = backends
        #: The lattice back end in use (``torch`` for a joint activation other than tanh).
        self.lattice_backend = backends.lattice if tanh else "torch"
        self.rnnt_backend = backends.rnnt
        for module in self.modules():
            if isinstance(module, JointNetwork):
                module.fused = bool(backends.fused_joint)

    # ----------------------------------------------------------------- encoder
    def encode(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        speech_cmvn: Optional[torch.Tensor] = None,
    ) -> EncoderOutput:
        """Waveforms to encoder outputs.

        Args:
            speech: (B, N) 16 kHz waveforms, zero padded.
            speech_lengths: (B,) samples per utterance.
            speech_cmvn: (B, 2, F) per-utterance feature mean and standard
                deviation (per-speaker CMVN) used instead of ``normalize``;
                None: ``normalize``.

        Returns:
            The encoder outputs (with ``enc_blank`` for a blank-branch layer
            weighting, see the module docstring).
        """
        enc, _ = self._encode(speech, speech_lengths, speech_cmvn, None, with_prosody=False)
        return enc

    def encode_with_prosody(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        speech_cmvn: Optional[torch.Tensor] = None,
        speaker_prosody: Optional[torch.Tensor] = None,
    ) -> Tuple[EncoderOutput, Optional[torch.Tensor]]:
        """:meth:`encode`, and the normalized prosody functionals the head reads.

        Args:
            speaker_prosody: (B, 2, K) the speaker's mean and standard
                deviation of the prosody functionals (:meth:`utterance_prosody`);
                None: the global statistics.

        Returns:
            The encoder outputs as :meth:`encode`; prosody (B, K), or None for a
            model without ``head_conf.prosody``.
        """
        return self._encode(speech, speech_lengths, speech_cmvn, speaker_prosody, with_prosody=True)

    def _encode(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, speech_cmvn: Optional[torch.Tensor],
        speaker_prosody: Optional[torch.Tensor], with_prosody: bool,
    ) -> Tuple[EncoderOutput, Optional[torch.Tensor]]:
        if self.blank_branch is not None:
            if speech_cmvn is not None:
                raise ValueError("speech_cmvn (per-speaker CMVN) is not supported with a blank-branch weighting")
            return self._encode_with_blank_branch(speech, speech_lengths), None
        feats, feats_lens = self.frontend(speech, speech_lengths)
        prosody = self.utterance_prosody(feats, feats_lens, speaker_prosody) if with_prosody else None
        feats = self.normalize_feats(feats, feats_lens, speech_cmvn)
        if self.specaug is not None and self.training:
            feats, feats_lens = self.specaug(feats, feats_lens)
        enc_out, enc_lens = self.encoder(feats, feats_lens)
        return EncoderOutput(enc_out, enc_lens), prosody

    def fit_prosody_expert(self, prosody: torch.Tensor, labels: torch.Tensor) -> float:
        """Fit the head's prosody expert on normalized training functionals and freeze it.

        ``ENTTask`` does it on the training set when it builds the optimizer;
        until then the expert is trainable and learns by gradient with its
        own cross entropy.

        Args:
            prosody: (N, K) functionals normalized as :meth:`utterance_prosody`
                does (e.g. :func:`ent.features.cmvn.normalized_prosody_table`).
            labels: (N,) emotion ids.

        Returns:
            The final objective (see
            :meth:`~ent.nets.utterance_head.UtteranceEmotionHead.fit_prosody_expert`).
        """
        if not self.head_prosody:
            raise ValueError("this model has no prosody expert (head_conf.prosody: false)")
        return self.head.fit_prosody_expert(prosody, labels, l2=self.head_conf.prosody_l2)

    @torch.no_grad()
    def utterance_prosody(
        self, feats: torch.Tensor, feats_lens: torch.Tensor, speaker_prosody: Optional[torch.Tensor] = None
    ) -> Optional[torch.Tensor]:
        """Normalized prosody functionals of unnormalized frontend features (``head_conf.prosody`` only).

        In training mode the global statistics (buffer ``prosody_stats``) are
        updated with the batch first.

        Args:
            feats: (B, T0, F) frontend features before CMVN; feats_lens: (B,).
            speaker_prosody: (B, 2, K) the speaker's mean and standard
                deviation of the functionals (:class:`ent.features.cmvn.SpeakerStats`);
                None: the global statistics.

        Returns:
            (B, K) normalized functionals, or None without ``head_conf.prosody``.
        """
        if not self.head_prosody:
            return None
        funcs = prosody_functionals(feats, feats_lens, self.frontend.n_mels)
        if self.training:
            f64 = funcs.double()
            update = torch.stack([torch.ones_like(f64), f64, f64 * f64]).sum(dim=1)
            self.prosody_stats += update
        if speaker_prosody is not None:
            if tuple(speaker_prosody.shape) != (funcs.size(0), 2, NUM_PROSODY):
                raise ValueError(f"speaker_prosody must have shape ({funcs.size(0)}, 2, {NUM_PROSODY}), "
                                 f"got {tuple(speaker_prosody.shape)}")
            mean, std = speaker_prosody[:, 0], speaker_prosody[:, 1]
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
            if speech_cmvn.dim() != 3 or speech_cmvn.size(1) != 2 or speech_cmvn.size(-1) != feats.size(-1):
                raise ValueError(f"speech_cmvn must have shape (B, 2, {feats.size(-1)}), "
                                 f"got {tuple(speech_cmvn.shape)}")
            return apply_cmvn(feats, feats_lens, speech_cmvn)
        if self.normalize is not None:
            feats, _ = self.normalize(feats, feats_lens)
        return feats

    def _encode_with_blank_branch(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> EncoderOutput:
        """FENT with a second layer weighting: ``enc`` and ``enc_blank``, each (B, T, D_e).

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
        return EncoderOutput(enc_out, enc_lens, enc_blank)

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
        self, enc_out: torch.Tensor, token_pred: torch.Tensor, emo_pred: torch.Tensor,
        enc_blank: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Token logits for every pair of encoder frame and predictor position.

        Leading dimensions broadcast, e.g. enc_out (B, T, 1, D_e) with
        predictor outputs (B, 1, U+1, D_p) give the lattice (B, T, U+1, V);
        enc_out (B, D_e) with (B, D_p) give one step (B, V).

        Args:
            enc_out: :attr:`EncoderOutput.enc`.
            token_pred, emo_pred: :meth:`predict`'s outputs.
            enc_blank: What FENT's blank joint reads, shaped as ``enc_out``
                (:attr:`EncoderOutput.enc_blank`); None: ``enc_out``.
        """
        if self.variant == "ent":
            return self.joint(enc_out, token_pred)
        blank = self.blank_joint(enc_out if enc_blank is None else enc_blank, emo_pred)
        vocab = self.vocab_joint(enc_out, token_pred)
        return torch.cat([blank, vocab], dim=-1)

    def emotion_logits(self, enc_blank: torch.Tensor, emo_pred: torch.Tensor) -> torch.Tensor:
        """Emotion logits (the emotion lattice when given lattice-shaped inputs).

        Args:
            enc_blank: What the emotion branch reads: :attr:`EncoderOutput.blank`.
            emo_pred: The emotion branch's predictor outputs (:meth:`predict`).
        """
        return self.emotion_joint(enc_blank, emo_pred)

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
        speaker_prosody: Optional[torch.Tensor] = None,
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
            speaker_prosody: optional (B, 2, K) per-speaker prosody statistics
                (see :meth:`encode_with_prosody`).

        Returns:
            loss, stats (loss terms and the head's accuracy), batch size.
        """
        batch = speech.shape[0]
        loss_conf = self.loss_conf
        text = text[:, : int(text_lengths.max())] if text.shape[1] > 0 else text
        enc, prosody = self.encode_with_prosody(speech, speech_lengths, speech_cmvn, speaker_prosody)
        enc_out, enc_lens, enc_blank = enc.enc, enc.lengths, enc.blank
        token_pred, emo_pred = self.predict(text)

        logits = self.token_logits(
            enc_out.unsqueeze(2), token_pred.unsqueeze(1), emo_pred.unsqueeze(1),
            enc_blank=None if enc.enc_blank is None else enc_blank.unsqueeze(2),
        )
        labels = text.clamp(min=0)
        loss_rnnt = rnnt_loss(
            logits, labels, enc_lens, text_lengths, blank_id=self.blank_id, backend=self.rnnt_backend
        )
        loss_ctc = self._ctc_loss(enc_out, enc_lens, text, text_lengths) if self.ctc_lin is not None else None

        loss_lattice = self._lattice_loss(enc_blank, emo_pred, enc_lens, text_lengths, emotion, emo_intervals)

        expert_logits = self.head.forward_parts(enc_blank, enc_lens, emo_pred, text_lengths, prosody)
        head_logits = combine_experts(*expert_logits)
        head_target = emotion
        if self.head_skip_mixed and emo_intervals is not None:
            head_target = torch.where(mixed_intervals(emo_intervals), torch.full_like(emotion, -1), emotion)
        # a fitted (frozen) prosody expert has nothing to learn
        experts = [expert_logits[0]] + ([expert_logits[1]] if self.head.prosody_trainable else [])
        if bool((head_target >= 0).any()):
            loss_ce = sum(
                F.cross_entropy(logits, head_target, ignore_index=-1, label_smoothing=loss_conf.label_smoothing)
                for logits in experts
            )
        else:  # no utterance of the batch trains the head (a mean over none would be NaN)
            loss_ce = sum(logits.sum() * 0.0 for logits in experts)
        loss = (
            loss_conf.rnnt_weight * loss_rnnt
            + loss_conf.head_weight * loss_ce
            + loss_conf.lattice_weight * loss_lattice
        )
        stats: Dict[str, Optional[torch.Tensor]] = {
            "loss_rnnt": loss_rnnt.detach(),
            "loss_ce": loss_ce.detach(),
            "loss_lattice": loss_lattice.detach(),
        }
        if loss_ctc is not None:
            loss = loss + loss_conf.ctc_weight * loss_ctc
            stats["loss_ctc"] = loss_ctc.detach()
        if self.variant == "fent" and self.lm_head is not None and loss_conf.predictor_lm_weight > 0:
            loss_lm = self._lm_loss(token_pred, text)
            loss = loss + loss_conf.predictor_lm_weight * loss_lm
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
            enc_out: (B, T, D_e) what the emotion branch reads (:attr:`EncoderOutput.blank`).
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
