"""Attention-based fully convolutional network on the spectrogram (Zhang, Du, Wang & Zhang, APSIPA 2018).

Zhang et al. ("Attention Based Fully Convolutional Network for Speech
Emotion Recognition", arXiv 1806.01506) treat an utterance's spectrogram as
an image of any width: the convolutional layers of AlexNet (no fully
connected layers, hence "fully convolutional", so no cutting into fixed-size
segments) turn it into a grid of feature vectors, one per time-frequency
region, and an attention layer weighs the regions,

    e_i = v^T tanh(W a_i + b),   alpha = softmax(e),   c = sum_i alpha_i a_i,

before a linear classifier of the utterance vector ``c`` (the paper's model
section). With few labelled utterances they initialize the convolutional
layers from AlexNet trained on ImageNet (their transfer learning
experiments), which helped on IEMOCAP.

This implementation:

* **Input**: the log power spectrogram (Hamming window ``win_ms``, hop
  ``hop_ms``, bins up to ``max_freq_hz``; 16-bit sample scale, floored at a
  power of one quantization step), frequency on the image's vertical
  axis, time on its horizontal axis, normalized per frequency bin with
  running statistics of the training frames (a masked batch normalization:
  padded frames never enter the statistics, and evaluation uses the running
  ones, so an utterance's posteriors do not depend on its batch).
* **Convolutions**: AlexNet's five layers (kernels 11/5/3/3/3, the first with
  stride 4, max pooling 3/2 after the first two), ``channels`` wide:
  ``[64, 192, 384, 256, 256]`` is AlexNet's width and can load ImageNet
  weights; the mini_emo config uses a narrower stack for the CPU.
  AlexNet's last max pooling is left out (the attention pools instead).
* **Batch normalization** (``batch_norm: true``, a deviation): a
  :class:`MaskedChannelNorm` between each convolution and its ReLU, with
  statistics of the valid regions only. AlexNet trained from random weights
  without it did not learn here (mini_emo, 4 emotions: training accuracy
  0.26-0.42 and dev UA 42 % after 3 epochs; with it, dev UA 75 % after 4
  epochs, see ``egs/mini_emo/ser1/RESULTS.md``); AlexNet itself had local
  response normalization after its first two layers, which torchvision's
  ImageNet weights do without. Leave it off to load those weights as they
  were trained.
* **ImageNet weights** (``pretrained_path``): a local torchvision AlexNet
  checkpoint (``alexnet-owt-7be5be79.pth``, a plain state dict; torchvision
  itself is not needed). The first layer's RGB filters are summed over the
  colour channels, which is exactly the network applied to a grey image
  copied into the three channels. Without a path the weights are random
  (Kaiming) initializations; no weights are ever downloaded.
* **Padding**: each layer's output beyond the utterance's own length is set
  to zero, so that an utterance in a padded batch gives what it gives alone
  (the spectrogram frames never read past the waveform's end).

Deviations from the paper: the paper's spectrogram settings and its
classifier on ``c`` are not reproduced exactly (here one dropout and one
linear layer); the input normalization and the batch normalization are ours.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ent.features.cmvn import apply_cmvn
from ent.features.fbank import Fbank
from ent.models.ser.abs_ser_model import AbsSERModel

SAMPLE_RATE = 16000
INT16_SCALE = 32768.0
ALEXNET_CHANNELS = (64, 192, 384, 256, 256)
# (kernel, stride, padding, max pooling after it) of AlexNet's convolutional layers
_ALEXNET_LAYERS = ((11, 4, 2, True), (5, 1, 2, True), (3, 1, 1, False), (3, 1, 1, False), (3, 1, 1, False))
_POOL = (3, 2)  # max pooling kernel and stride (no padding)
# indices of the convolutions in torchvision's alexnet().features
_TORCHVISION_CONV_INDEX = (0, 3, 6, 8, 10)


def _conv_length(length: Tensor, kernel: int, stride: int, padding: int) -> Tensor:
    return torch.div(length + 2 * padding - kernel, stride, rounding_mode="floor") + 1


class MaskedBatchNorm(nn.Module):
    """Per-bin normalization with running statistics of the valid (unpadded) frames.

    Args:
        num_bins: F, the frequency bins.
        momentum: Weight of a batch in the running statistics.
        eps: Variance floor.
    """

    def __init__(self, num_bins: int, momentum: float = 0.05, eps: float = 1.0e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(num_bins))
        self.register_buffer("running_var", torch.ones(num_bins))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Normalize.

        Args:
            x: (B, F, T) features; mask: (B, T) true on valid frames.

        Returns:
            (B, F, T) normalized features, zero on padded frames.
        """
        m = mask.unsqueeze(1).to(x.dtype)
        if self.training:
            count = m.sum().clamp(min=1.0)
            mean = (x * m).sum(dim=(0, 2)) / count
            var = (((x - mean[None, :, None]) ** 2) * m).sum(dim=(0, 2)) / count
            with torch.no_grad():
                if bool(self.initialized):
                    self.running_mean.lerp_(mean.detach(), self.momentum)
                    self.running_var.lerp_(var.detach(), self.momentum)
                else:  # the first batch sets the statistics (no drift from 0/1)
                    self.running_mean.copy_(mean.detach())
                    self.running_var.copy_(var.detach())
                    self.initialized.fill_(True)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean[None, :, None]) / torch.sqrt(var[None, :, None] + self.eps) * m


class MaskedChannelNorm(nn.Module):
    """Batch normalization of a convolutional feature map over its valid regions only.

    Like ``nn.BatchNorm2d`` (per channel, learnt scale and shift), but the
    training statistics leave out the regions beyond each utterance's length,
    so that padding never enters them; evaluation uses the running statistics.

    Args:
        channels: C, the feature map's channels.
        momentum: Weight of a batch in the running statistics.
        eps: Variance floor.
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1.0e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Normalize.

        Args:
            x: (B, C, F, T) feature map; mask: (B, T) true on valid regions.

        Returns:
            (B, C, F, T) normalized, scaled and shifted map (padded regions: not zeroed).
        """
        if self.training:
            m = mask[:, None, None, :].to(x.dtype)
            count = (m.sum() * x.shape[2]).clamp(min=1.0)
            mean = (x * m).sum(dim=(0, 2, 3)) / count
            var = (((x - mean[None, :, None, None]) ** 2) * m).sum(dim=(0, 2, 3)) / count
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * count / (count - 1).clamp(min=1.0), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight / torch.sqrt(var + self.eps)
        return (x - mean[None, :, None, None]) * scale[None, :, None, None] + self.bias[None, :, None, None]


class AttentionFCN(AbsSERModel):
    """AlexNet-style fully convolutional network with attention over time-frequency regions.

    Args:
        emotions: Emotion class names.
        input: ``spectrogram`` (the paper's: log power spectrogram) or
            ``fbank`` (the toolkit's Kaldi log-mel fbank, :class:`~ent.features.fbank.Fbank`,
            with ``fbank_conf``), normalized with the speaker statistics of
            the batch's ``speech_cmvn`` when the task gives them (``speaker_cmvn: true``
            with the same fbank options), else with the running statistics.
        fbank_conf: :class:`~ent.features.fbank.Fbank` options of ``input: fbank``.
        channels: Output channels of the five convolutional layers
            (AlexNet: ``[64, 192, 384, 256, 256]``).
        win_ms: Spectrogram window (Hamming) in ms.
        hop_ms: Spectrogram hop in ms.
        n_fft: FFT size (at least the window's samples).
        max_freq_hz: Highest frequency kept (bins above are dropped).
        attention_dim: Size of the attention layer's hidden projection ``W``.
        dropout: Dropout on the attended vector before the classifier.
        pretrained_path: A local torchvision AlexNet state dict for the
            convolutional layers (needs AlexNet's ``channels``); ``None``:
            random initialization.
        batch_norm: A :class:`MaskedChannelNorm` after each convolution
            (before its ReLU).
        label_smoothing: Label smoothing of the cross entropy.
    """

    def __init__(
        self,
        emotions: Sequence[str],
        input: str = "spectrogram",
        fbank_conf: Optional[dict] = None,
        channels: Sequence[int] = ALEXNET_CHANNELS,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_fft: int = 512,
        max_freq_hz: float = 4000.0,
        attention_dim: int = 128,
        dropout: float = 0.3,
        pretrained_path: Optional[str] = None,
        batch_norm: bool = False,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(emotions, label_smoothing)
        if len(channels) != len(_ALEXNET_LAYERS):
            raise ValueError(f"channels: {len(_ALEXNET_LAYERS)} layers, got {list(channels)}")
        self.win = int(round(win_ms * SAMPLE_RATE / 1000))
        self.hop = int(round(hop_ms * SAMPLE_RATE / 1000))
        if n_fft < self.win:
            raise ValueError(f"n_fft {n_fft} is shorter than the window ({self.win} samples)")
        self.n_fft = n_fft
        self.num_bins = min(n_fft // 2 + 1, int(math.floor(max_freq_hz * n_fft / SAMPLE_RATE)) + 1)
        self.register_buffer("window", torch.hamming_window(self.win), persistent=False)
        if input not in ("spectrogram", "fbank"):
            raise ValueError(f"input must be spectrogram or fbank, not {input!r}")
        self.input = input
        self.fbank: Optional[Fbank] = None
        if input == "fbank":
            self.fbank = Fbank(**(fbank_conf or {}))
            self.num_bins = self.fbank.output_size()
        elif fbank_conf:
            raise ValueError("fbank_conf is only for input: fbank")
        self.norm = MaskedBatchNorm(self.num_bins)
        convs: List[nn.Conv2d] = []
        in_ch = 1
        for out_ch, (kernel, stride, padding, _) in zip(channels, _ALEXNET_LAYERS):
            convs.append(nn.Conv2d(in_ch, int(out_ch), kernel, stride, padding))
            in_ch = int(out_ch)
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList([MaskedChannelNorm(conv.out_channels) for conv in convs]) if batch_norm else None
        self.pool = nn.MaxPool2d(*_POOL)
        self.att_proj = nn.Linear(in_ch, attention_dim)
        self.att_vector = nn.Linear(attention_dim, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(in_ch, self.num_classes)
        if pretrained_path:
            self.load_imagenet(pretrained_path)
        self.pretrained_path = pretrained_path

    # -------------------------------------------------------------- ImageNet
    def load_imagenet(self, path: str) -> None:
        """Load AlexNet's convolutional weights from a local torchvision checkpoint.

        Raises:
            ValueError: If the file is missing or its shapes do not fit.
        """
        if not Path(path).is_file():
            raise ValueError(f"pretrained_path: {path} not found (a local torchvision AlexNet state dict)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        for conv, index in zip(self.convs, _TORCHVISION_CONV_INDEX):
            weight, bias = state.get(f"features.{index}.weight"), state.get(f"features.{index}.bias")
            if weight is None or bias is None:
                raise ValueError(f"pretrained_path: {path} has no features.{index} (not an AlexNet state dict)")
            if index == 0:
                weight = weight.sum(dim=1, keepdim=True)  # RGB filters on a grey image
            if weight.shape != conv.weight.shape:
                raise ValueError(f"pretrained_path: features.{index} is {tuple(weight.shape)}, the model's layer "
                                 f"{tuple(conv.weight.shape)} (ImageNet weights need channels {list(ALEXNET_CHANNELS)})")
            with torch.no_grad():
                conv.weight.copy_(weight)
                conv.bias.copy_(bias)
        logging.info(f"AttentionFCN: ImageNet AlexNet convolutions loaded from {path}")

    # ---------------------------------------------------------------- inputs
    def spectrogram(self, speech: Tensor, speech_lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """Log power spectrogram, frames within each utterance only.

        Args:
            speech: (B, N) waveforms; speech_lengths: (B,).

        Returns:
            (B, F, T) log power (zero on padded frames) and (B,) frame counts.
        """
        if speech.shape[1] < self.win:
            speech = nn.functional.pad(speech, (0, self.win - speech.shape[1]))
        frames = speech.unfold(1, self.win, self.hop)  # (B, T, win): no frame reads past the batch
        power = torch.fft.rfft(frames * self.window, n=self.n_fft).abs().pow(2)[..., : self.num_bins]
        lengths = torch.div(speech_lengths - self.win, self.hop, rounding_mode="floor").clamp(min=0) + 1
        mask = torch.arange(frames.shape[1], device=speech.device)[None, :] < lengths[:, None]
        # on the 16-bit integer scale, floored at a power of 1 (one quantization step): silent
        # frames sit at 0 instead of far below speech (a floor near 0 would make the per-bin
        # statistics measure silence, not speech)
        logspec = torch.log(power * INT16_SCALE**2 + 1.0).transpose(1, 2) * mask.unsqueeze(1)
        return logspec, lengths

    # ---------------------------------------------------------------- model
    def image(
        self, speech: Tensor, speech_lengths: Tensor, speech_cmvn: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        """The normalized time-frequency image of each utterance.

        Args:
            speech: (B, N) waveforms; speech_lengths: (B,).
            speech_cmvn: (B, 2, F) speaker mean and std of the fbank features (``input: fbank``).

        Returns:
            (B, F, T) image (zero on padded frames) and (B,) frame counts.
        """
        if self.fbank is not None:
            feats, lengths = self.fbank(speech, speech_lengths)  # (B, T, F)
            mask = torch.arange(feats.shape[1], device=feats.device)[None, :] < lengths[:, None]
            if speech_cmvn is not None:
                if speech_cmvn.shape[-1] != feats.shape[-1]:
                    raise ValueError(f"speech_cmvn has {speech_cmvn.shape[-1]} dims, the fbank {feats.shape[-1]}: "
                                     "give the task the same speaker_cmvn_conf as fbank_conf")
                return apply_cmvn(feats, lengths, speech_cmvn).transpose(1, 2), lengths
            return self.norm(feats.transpose(1, 2), mask), lengths
        x, lengths = self.spectrogram(speech, speech_lengths)
        mask = torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]
        return self.norm(x, mask), lengths

    def feature_map(
        self, speech: Tensor, speech_lengths: Tensor, speech_cmvn: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """The convolutional feature grid of each utterance.

        Returns:
            (B, C, F', T') features, (B, T') valid mask of the regions, (B,) T' of each utterance.
        """
        x, lengths = self.image(speech, speech_lengths, speech_cmvn)
        x = x.unsqueeze(1)  # (B, 1, F, T)
        for i, (conv, (kernel, stride, padding, pool)) in enumerate(zip(self.convs, _ALEXNET_LAYERS)):
            x = conv(x)
            lengths = _conv_length(lengths, kernel, stride, padding)
            if bool((lengths < (_POOL[0] if pool else 1)).any()) or x.shape[2] < (_POOL[0] if pool else 1):
                raise ValueError("an utterance is too short for the convolutions "
                                 f"(at least {self.min_samples()} samples)")
            if self.norms is not None:
                x = self.norms[i](x, torch.arange(x.shape[3], device=x.device)[None, :] < lengths[:, None])
            x = torch.relu(x)
            if pool:
                x = self.pool(x)
                lengths = _conv_length(lengths, _POOL[0], _POOL[1], 0)
            if x.shape[2] < 1 or x.shape[3] < 1 or bool((lengths < 1).any()):
                raise ValueError("an utterance is too short for the convolutions "
                                 f"(at least {self.min_samples()} samples)")
            mask = torch.arange(x.shape[3], device=x.device)[None, :] < lengths[:, None]
            x = x * mask[:, None, None, :].to(x.dtype)
        return x, mask, lengths

    def min_samples(self) -> int:
        """The shortest waveform that leaves at least one region after the convolutions."""
        frames = 1
        while True:
            length = torch.tensor([frames])
            for kernel, stride, padding, pool in _ALEXNET_LAYERS:
                length = _conv_length(length, kernel, stride, padding)
                if pool:
                    length = _conv_length(length, _POOL[0], _POOL[1], 0)
            if int(length) >= 1:
                return (frames - 1) * self.hop + self.win
            frames += 1

    def attention(
        self, speech: Tensor, speech_lengths: Tensor, speech_cmvn: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Attention over the time-frequency regions.

        Args:
            speech: (B, N) waveforms; speech_lengths: (B,); speech_cmvn: (B, 2, F) or None.

        Returns:
            (B, C) attended vectors, (B, F', T') attention weights (zero on
            padded regions; each utterance's sum to one) and (B, F', T', C) region vectors.
        """
        fmap, mask, _ = self.feature_map(speech, speech_lengths, speech_cmvn)
        regions = fmap.permute(0, 2, 3, 1)  # (B, F', T', C)
        scores = self.att_vector(torch.tanh(self.att_proj(regions))).squeeze(-1)  # (B, F', T')
        valid = mask[:, None, :].expand_as(scores)
        scores = scores.masked_fill(~valid, float("-inf"))
        weights = scores.flatten(1).softmax(dim=-1).view_as(scores)
        pooled = (weights.unsqueeze(-1) * regions).sum(dim=(1, 2))
        return pooled, weights, regions

    def emotion_logits(self, speech: Tensor, speech_lengths: Tensor, **kwargs: Tensor) -> Tensor:
        """(B, C) logits of (B, N) waveforms with (B,) lengths (and (B, 2, F) ``speech_cmvn``, if given)."""
        pooled, _, _ = self.attention(speech, speech_lengths, kwargs.get("speech_cmvn"))
        return self.classifier(self.dropout(pooled))
