"""CTA-RNN: channel- and temporal-wise attention RNN on the layers of a pretrained ASR encoder.

Reference: C. Chen and P. Zhang, "CTA-RNN: Channel and Temporal-wise
Attention RNN Leveraging Pre-trained ASR Embeddings for Speech Emotion
Recognition", Interspeech 2022 (arXiv:2203.17023), Sec. 2 (the embeddings of
several layers of a pretrained end-to-end ASR encoder; an attention over
their channels, one over time, and an RNN classifier) and Sec. 3 (setup).

Data flow (B utterances, L selected encoder blocks, T encoder frames, D the
encoder dimension, H the RNN units per direction, C classes)::

    speech (B, N) -> frozen ASR encoder -> H_l (B, T, D), l = 1..L   (stacked: (B, L, T, D))
    channel-wise attention:
        s = time mean of every (layer, feature) channel         (B, L, D)
        alpha = softmax over the L layers of MLP(s)             (B, L, D)
        x_t = sum_l alpha_l * H_l,t                             (B, T, D)
    BiLSTM(x)                                                   (B, T, 2H)
    temporal-wise attention: beta_t = softmax_t(v^T tanh(W h_t)), e = sum_t beta_t h_t   (B, 2H)
    Linear(e)                                                   (B, C)

The channel-wise attention is a squeeze-and-excitation over the L x D
channels (squeeze: the mean over the utterance's frames; excitation: a
bottleneck MLP), normalized over the layers, so that every feature of the
fused frame is a convex combination of the same feature in the selected
layers; the temporal-wise attention is additive attention pooling of the RNN
outputs.

Deviations from the paper:

* The pretrained ASR encoder is the toolkit's own trained ENT/FENT encoder
  (:class:`~ent.models.ser.asr_encoder.ASREncoder`, frozen; a Conformer of a
  few blocks trained on the recipe's training set), not the large ESPnet
  Conformer trained on thousands of hours of speech that the paper reads.
  Its block outputs are the "embeddings"; ``layers`` picks them.
* Only the abstract of the paper could be consulted while writing this
  module: the exact forms of the two attentions above (the squeeze by the
  time mean, the softmax over layers, additive attention pooling after the
  RNN) are our reading of "capture the emotional salient parts of the
  embeddings in both the channel and temporal directions", not formulas
  copied from Sec. 2.
* Padding is masked everywhere (time mean, packed LSTM, masked softmax), so
  an utterance's posteriors do not depend on its batch.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch

from ent.models.ser.abs_ser_model import AbsSERModel
from ent.models.ser.asr_encoder import DEFAULT_CHECKPOINT, ASREncoder
from ent.models.ser.masked import AttentivePooling, PackedLSTM, length_mask, masked_mean


class ChannelWiseAttention(torch.nn.Module):
    """Squeeze-and-excitation over the (layer, feature) channels, softmax-normalized over the layers.

    Args:
        num_layers: L.
        dim: D.
        reduction: Bottleneck factor of the excitation MLP (hidden size ``L * D // reduction``).
    """

    def __init__(self, num_layers: int, dim: int, reduction: int = 4) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        channels = num_layers * dim
        self.num_layers, self.dim = num_layers, dim
        self.excite = torch.nn.Sequential(
            torch.nn.Linear(channels, max(1, channels // reduction)),
            torch.nn.ReLU(),
            torch.nn.Linear(max(1, channels // reduction), channels),
        )

    def forward(self, stacked: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Fuse the layers.

        Args:
            stacked: (B, L, T, D) layer embeddings, zero at padding frames.
            lengths: (B,) valid frames.

        Returns:
            fused (B, T, D) and the weights alpha (B, L, D) (summing to one over L).
        """
        b, l, t, d = stacked.shape
        squeezed = masked_mean(stacked.permute(0, 2, 1, 3).reshape(b, t, l * d), lengths)  # (B, L*D)
        alpha = torch.softmax(self.excite(squeezed).view(b, l, d), dim=1)
        return torch.einsum("bld,bltd->btd", alpha, stacked), alpha


class CTARNN(AbsSERModel):
    """CTA-RNN (module docstring) on the blocks of a frozen ENT encoder.

    Args:
        emotions: Emotion class names (their order defines the ids).
        ent_dir: The trained ENT/FENT experiment directory whose encoder is read
            (``config.yaml`` and ``checkpoint``).
        checkpoint: Checkpoint file in ``ent_dir``.
        layers: 1-based encoder blocks whose outputs are the embeddings
            (negative: from the end); None: all blocks.
        channel_reduction: Bottleneck factor of the channel-wise attention's MLP.
        rnn_hidden: H, LSTM units per direction.
        rnn_layers: Stacked BiLSTM layers.
        attention_size: Hidden size of the temporal-wise attention's scorer.
        dropout: Dropout on the fused embeddings and before the classifier.
        label_smoothing: Label smoothing of the cross entropy.
    """

    def __init__(
        self,
        emotions: Sequence[str],
        ent_dir: str,
        checkpoint: str = DEFAULT_CHECKPOINT,
        layers: Optional[Sequence[int]] = None,
        channel_reduction: int = 4,
        rnn_hidden: int = 128,
        rnn_layers: int = 1,
        attention_size: int = 128,
        dropout: float = 0.2,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(emotions, label_smoothing)
        self.asr_encoder = ASREncoder.from_experiment(ent_dir, checkpoint)
        n = self.asr_encoder.num_blocks
        self.layers = self.asr_encoder.check_layers(layers if layers is not None else range(1, n + 1))
        dim = self.asr_encoder.output_size()
        self.channel_attention = ChannelWiseAttention(len(self.layers), dim, channel_reduction)
        self.dropout = torch.nn.Dropout(dropout)
        self.rnn = PackedLSTM(dim, rnn_hidden, num_layers=rnn_layers, bidirectional=True, dropout=dropout)
        self.temporal_attention = AttentivePooling(self.rnn.output_size(), attention_size)
        self.classifier = torch.nn.Linear(self.rnn.output_size(), self.num_classes)

    def forward_with_attention(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, speech_cmvn: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Logits and the attention weights.

        Args:
            speech: (B, N) waveforms; speech_lengths: (B,);
            speech_cmvn: (B, 2, F[+K]) per-speaker statistics or None.

        Returns:
            logits (B, C); ``{"channel": (B, L, D), "temporal": (B, T)}``.
        """
        hidden, lens = self.asr_encoder(speech, speech_lengths, speech_cmvn, layers=self.layers)
        if int(lens.min()) < 1:
            raise ValueError(f"an utterance of {int(speech_lengths.min())} samples gives no encoder frame")
        stacked = torch.stack(hidden, dim=1)  # (B, L, T, D)
        fused, alpha = self.channel_attention(stacked, lens)
        out = self.rnn(self.dropout(fused), lens)
        out = out.masked_fill(~length_mask(lens, out.size(1)).unsqueeze(-1), 0.0)
        pooled, beta = self.temporal_attention(out, lens)
        return self.classifier(self.dropout(pooled)), {"channel": alpha, "temporal": beta}

    def emotion_logits(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs: torch.Tensor
    ) -> torch.Tensor:
        """(B, C) logits of ``speech`` (B, N), ``speech_lengths`` (B,); reads ``speech_cmvn`` (B, 2, F)."""
        logits, _ = self.forward_with_attention(speech, speech_lengths, kwargs.get("speech_cmvn"))
        return logits


__all__ = ["CTARNN", "ChannelWiseAttention"]
