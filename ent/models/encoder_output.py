"""What the encoder of an :class:`~ent.models.transducer.EmotionTransducer` gives: one or two streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class EncoderOutput:
    """What :meth:`EmotionTransducer.encode` returns.

    Attributes:
        enc: Encoder outputs, read by the token joint (ENT), FENT's vocabulary
            joint and the CTC layer. (B, T, D_e)
        lengths: Encoder frames per utterance. (B,)
        enc_blank: FENT's blank-branch encoder outputs (a second layer
            weighting of a pretrained front end, :mod:`ent.nets.blank_branch`),
            read by the blank joint, the emotion joint and the head; None
            when the model has no such branch. (B, T, D_e)
    """

    enc: torch.Tensor
    lengths: torch.Tensor
    enc_blank: Optional[torch.Tensor] = None

    @property
    def blank(self) -> torch.Tensor:
        """What the blank joint, the emotion joint and the head read: ``enc_blank``, else ``enc``. (B, T, D_e)"""
        return self.enc if self.enc_blank is None else self.enc_blank
