"""The contract of an utterance-level speech emotion recognition (SER) baseline.

The toolkit hosts the field's SER systems beside ENT and FENT so that they
train on the same data dirs, with the same splits, the same dev-only model
selection and the same scorer (``ent.bin.score``). Each system is one module
of :mod:`ent.models.ser` with a subclass of :class:`AbsSERModel`.

A batch is the one the ENT task builds (:mod:`ent.data.dataset`)::

    speech          (B, N) float32 waveforms, 16 kHz, zero padded
    speech_lengths  (B,)   samples
    emotion         (B,)   class ids; -1: unknown (left out of the loss)
    text            (B, U) token ids of the recipe's token list, padded with -1
    text_lengths    (B,)
    speech_cmvn     (B, 2, F) optional per-speaker fbank statistics

A model computes its own features from ``speech`` (fbank, MFCC,
spectrogram, a local SSL model, a frozen ENT encoder); only
:meth:`emotion_logits` is required. Models that train an auxiliary objective
(e.g. the ASR branch of a joint ASR-SER model) override :meth:`forward` and
add their terms to the stats.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Dict, Optional, Sequence, Tuple

import torch
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel
from torch.nn import functional as F


class AbsSERModel(AbsESPnetModel):
    """An utterance emotion classifier trained with cross entropy.

    Args:
        emotions: Emotion class names; their order defines the class ids.
        label_smoothing: Label smoothing of the cross entropy.
    """

    def __init__(self, emotions: Sequence[str], label_smoothing: float = 0.0) -> None:
        super().__init__()
        if len(emotions) < 2:
            raise ValueError(f"an emotion classifier needs at least two classes, got {list(emotions)}")
        self.emotions: Tuple[str, ...] = tuple(emotions)
        self.label_smoothing = float(label_smoothing)

    @property
    def num_classes(self) -> int:
        """C, the number of emotion classes."""
        return len(self.emotions)

    @abstractmethod
    def emotion_logits(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs: torch.Tensor
    ) -> torch.Tensor:
        """Utterance emotion logits.

        Args:
            speech: (B, N) waveforms; speech_lengths: (B,).
            **kwargs: further batch entries (``speech_cmvn``, ...); a model
                ignores those it does not use.

        Returns:
            (B, C) logits. An utterance's logits must not depend on the other
            utterances of the batch or on its padding.
        """

    def posteriors(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs: torch.Tensor
    ) -> torch.Tensor:
        """(B, C) emotion posteriors (softmax of :meth:`emotion_logits`)."""
        return self.emotion_logits(speech, speech_lengths, **kwargs).softmax(dim=-1)

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        emotion: torch.Tensor,
        **kwargs: torch.Tensor,
    ) -> Tuple[torch.Tensor, Dict[str, Optional[torch.Tensor]], torch.Tensor]:
        """Cross entropy of the utterance emotion.

        Returns:
            loss, stats (``loss``, ``loss_ce``, ``acc_emo``), batch size.
        """
        logits = self.emotion_logits(speech, speech_lengths, **kwargs)
        loss, stats = self.emotion_loss(logits, emotion)
        return force_gatherable((loss, stats, speech.shape[0]), loss.device)

    def emotion_loss(
        self, logits: torch.Tensor, emotion: torch.Tensor
    ) -> Tuple[torch.Tensor, Dict[str, Optional[torch.Tensor]]]:
        """Cross entropy over the utterances with a known emotion, and its stats.

        Args:
            logits: (B, C); emotion: (B,) class ids, -1 unknown.

        Returns:
            loss (a scalar, 0 with a gradient when no utterance is known) and stats.
        """
        known = emotion >= 0
        if bool(known.any()):
            loss = F.cross_entropy(logits, emotion, ignore_index=-1, label_smoothing=self.label_smoothing)
            acc = (logits.argmax(-1)[known] == emotion[known]).float().mean().detach()
        else:
            loss, acc = logits.sum() * 0.0, None
        return loss, {"loss": loss.detach(), "loss_ce": loss.detach(), "acc_emo": acc}

    def collect_feats(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """ESPnet's statistics hook: the baselines keep their own normalization."""
        return {}
