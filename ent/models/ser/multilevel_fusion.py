"""Co-attention fusion of MFCC, spectrogram and pretrained-model features (multi-level acoustic information).

Reference: H. Zou, Y. Si, C. Chen, D. Rajan and E. S. Chng, "Speech Emotion
Recognition with Co-Attention based Multi-level Acoustic Information",
ICASSP 2022 (arXiv:2203.15326), Sec. 2 (three branches: MFCC through a
BiLSTM, the spectrogram through a CNN, wav2vec 2.0 features; a co-attention
module fuses them) and Sec. 3 (setup).

Data flow (B utterances; T1, T2, T3 frames of the three branches; C classes)::

    speech (B, N) -> MFCC (torchaudio)        -> utterance CMVN -> BiLSTM       M (B, T1, 2H)
                  -> log power spectrogram    -> utterance CMVN -> CNN          P (B, T2, K)
                     (CNN: conv 3x3 / BatchNorm / ReLU / max-pool 2x2 blocks, then mean over frequency)
                  -> pretrained model (third branch)           -> Linear       W (B, T3, d)
    co-attention: the third branch's utterance vector w = mean_t W guides an
                  attention over the frames of each other branch:
                     a_M = softmax_t(v_M^T tanh(U_M M_t + Q_M w)),  m = sum_t a_M,t M_t
                     a_P = softmax_t(v_P^T tanh(U_P P_t + Q_P w)),  p = sum_t a_P,t P_t
    fused [m; p; w] -> Linear -> ReLU -> Linear -> (B, C)

The third branch is

* ``ssl_conf``: wav2vec 2.0 (or HuBERT / WavLM) from a **local directory**
  through :class:`~ent.features.ssl.SSLFrontend` (nothing is ever
  downloaded; its ``finetune`` option decides whether it is trained), as in
  the paper; or
* ``ent_dir``: when no such weights exist (``mini_emo``), the toolkit's
  trained ENT encoder, frozen (:class:`~ent.models.ser.asr_encoder.ASREncoder`),
  block ``ent_layer``. This is the configured default on ``mini_emo``
  (``egs/mini_emo/ser1/conf/train_multilevel_fusion.yaml``).

Deviations from the paper:

* On ``mini_emo`` the third branch is the frozen ENT encoder, not wav2vec
  2.0 (above).
* Only the abstract of the paper could be consulted while writing this
  module: the branch sizes, the exact co-attention (the third branch's
  utterance vector as the query of additive attentions over the MFCC and
  spectrogram frames) and the classifier are our reading of "fused by a
  co-attention module", not formulas copied from Sec. 2.
* MFCC and spectrogram frames are computed without centering
  (``center: false``: every valid frame lies inside the utterance) and with
  log mel energies instead of torchaudio's dB scale with ``top_db`` (which
  would depend on the padding); each utterance is normalized over its own
  frames. With the masks after every CNN layer and packed LSTMs, an
  utterance's posteriors do not depend on its batch (in eval mode).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch
import torchaudio

from ent.features.ssl import SSLFrontend
from ent.models.ser.abs_ser_model import AbsSERModel
from ent.models.ser.asr_encoder import DEFAULT_CHECKPOINT, ASREncoder, pretrained_acoustic_encoder
from ent.models.ser.masked import PackedLSTM, length_mask, masked_mean, masked_softmax, utterance_cmvn

SAMPLE_RATE = 16000


def frame_count(num_samples: torch.Tensor, window: int, hop: int) -> torch.Tensor:
    """Frames of an uncentered STFT: ``1 + (N - window) // hop``, 0 when ``N < window``.

    Args:
        num_samples: (B,) samples.
    """
    return torch.where(num_samples >= window, (num_samples - window) // hop + 1, torch.zeros_like(num_samples))


class GuidedAttention(torch.nn.Module):
    """Additive attention over a sequence, guided by a query vector (one side of the co-attention).

    Args:
        input_size: Size of the attended frames.
        query_size: Size of the query vector.
        attention_size: Hidden size of the scorer.
    """

    def __init__(self, input_size: int, query_size: int, attention_size: int) -> None:
        super().__init__()
        self.key = torch.nn.Linear(input_size, attention_size)
        self.query = torch.nn.Linear(query_size, attention_size, bias=False)
        self.score = torch.nn.Linear(attention_size, 1, bias=False)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, query: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Attend.

        Args:
            x: (B, T, D_x) frames; lengths: (B,); query: (B, D_q).

        Returns:
            pooled (B, D_x) and the weights (B, T) (summing to one over the valid frames).
        """
        scores = self.score(torch.tanh(self.key(x) + self.query(query).unsqueeze(1))).squeeze(-1)
        weights = masked_softmax(scores, length_mask(lengths, x.size(1)))
        return torch.bmm(weights.unsqueeze(1), x).squeeze(1), weights


class SpectrogramCNN(torch.nn.Module):
    """Conv 3x3 / BatchNorm / ReLU / max-pool 2x2 blocks on (time, frequency), masked by the valid frames.

    Args:
        channels: Output channels of each block.
    Shapes:
        ``forward(x: (B, T, F), lengths: (B,))`` returns ``(B, T', channels[-1])``
        (mean over the remaining frequency bins) and ``T'`` (B,) = ``lengths // 2**len(channels)``.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        blocks = []
        in_ch = 1
        for ch in channels:
            blocks.append(torch.nn.Sequential(
                torch.nn.Conv2d(in_ch, ch, 3, padding=1), torch.nn.BatchNorm2d(ch), torch.nn.ReLU(),
                torch.nn.MaxPool2d(2),
            ))
            in_ch = ch
        self.blocks = torch.nn.ModuleList(blocks)
        self.out_channels = in_ch

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """See the class."""
        x = x.unsqueeze(1)  # (B, 1, T, F)
        for block in self.blocks:
            x = x * length_mask(lengths, x.size(2))[:, None, :, None].to(x.dtype)
            x = block(x)
            lengths = lengths // 2
        x = x * length_mask(lengths, x.size(2))[:, None, :, None].to(x.dtype)
        return x.mean(dim=3).transpose(1, 2), lengths


class MultiLevelAcousticFusion(AbsSERModel):
    """Zou et al.'s three-branch co-attention fusion (module docstring).

    Args:
        emotions: Emotion class names (their order defines the ids).
        ent_dir: Trained ENT/FENT experiment directory whose frozen encoder is
            the third branch (exclusive with ``ssl_conf``).
        checkpoint: Checkpoint file in ``ent_dir``.
        ent_layer: 1-based ENT encoder block read (negative: from the end).
        ssl_conf: :class:`~ent.features.ssl.SSLFrontend` options (``model_dir``
            a local wav2vec 2.0 directory) for the third branch.
        n_mfcc: MFCC coefficients.
        n_mels: Mel bands of the MFCC.
        n_fft: Window (and FFT) length in samples of the MFCC and spectrogram.
        hop_length: Frame shift in samples.
        mfcc_hidden: LSTM units per direction of the MFCC branch.
        cnn_channels: Channels of the spectrogram CNN's blocks.
        ssl_dim: d, the projection of the third branch.
        attention_size: Hidden size of the co-attention scorers.
        hidden_dim: Hidden layer of the classifier.
        dropout: Dropout before the classifier layers.
        label_smoothing: Label smoothing of the cross entropy.
    """

    def __init__(
        self,
        emotions: Sequence[str],
        ent_dir: Optional[str] = None,
        checkpoint: str = DEFAULT_CHECKPOINT,
        ent_layer: int = -1,
        ssl_conf: Optional[Mapping[str, Any]] = None,
        n_mfcc: int = 40,
        n_mels: int = 40,
        n_fft: int = 400,
        hop_length: int = 160,
        mfcc_hidden: int = 64,
        cnn_channels: Sequence[int] = (16, 32, 64),
        ssl_dim: int = 128,
        attention_size: int = 64,
        hidden_dim: int = 128,
        dropout: float = 0.3,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(emotions, label_smoothing)
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)
        self.mfcc = torchaudio.transforms.MFCC(
            sample_rate=SAMPLE_RATE, n_mfcc=n_mfcc, log_mels=True,
            melkwargs={"n_fft": n_fft, "hop_length": hop_length, "n_mels": n_mels, "center": False},
        )
        self.spectrogram = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=hop_length, center=False)
        self.mfcc_rnn = PackedLSTM(n_mfcc, mfcc_hidden, bidirectional=True)
        self.cnn = SpectrogramCNN(cnn_channels)
        # the third branch
        self.asr_encoder: Optional[ASREncoder]
        self.ssl: Optional[SSLFrontend]
        self.asr_encoder, self.ssl = pretrained_acoustic_encoder(ent_dir, ssl_conf, checkpoint, role="third branch")
        if self.asr_encoder is not None:
            self.ent_layer = self.asr_encoder.check_layers([ent_layer])[0]
        third = self.asr_encoder if self.asr_encoder is not None else self.ssl
        self.ssl_proj = torch.nn.Linear(third.output_size(), ssl_dim)
        self.att_mfcc = GuidedAttention(self.mfcc_rnn.output_size(), ssl_dim, attention_size)
        self.att_spec = GuidedAttention(self.cnn.out_channels, ssl_dim, attention_size)
        fused = self.mfcc_rnn.output_size() + self.cnn.out_channels + ssl_dim
        self.classifier = torch.nn.Sequential(
            torch.nn.Dropout(dropout), torch.nn.Linear(fused, hidden_dim), torch.nn.ReLU(),
            torch.nn.Dropout(dropout), torch.nn.Linear(hidden_dim, self.num_classes),
        )

    # ------------------------------------------------------------ the branches
    def spectral_features(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """MFCC (B, T, n_mfcc) and log power spectrogram (B, T, n_fft/2+1), normalized per utterance, and T (B,)."""
        lens = frame_count(speech_lengths, self.n_fft, self.hop_length)
        if int(lens.min()) < 1:
            raise ValueError(f"an utterance of {int(speech_lengths.min())} samples is shorter than one "
                             f"{self.n_fft}-sample frame")
        t = int(lens.max())
        wave = speech[:, : (t - 1) * self.hop_length + self.n_fft]
        mfcc = self.mfcc(wave).transpose(1, 2)[:, :t]
        spec = torch.log(self.spectrogram(wave).transpose(1, 2)[:, :t] + 1.0e-6)
        return utterance_cmvn(mfcc, lens), utterance_cmvn(spec, lens), lens

    def third_branch(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, speech_cmvn: Optional[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The pretrained model's frames (B, T3, D) and counts (B,)."""
        if self.asr_encoder is not None:
            hidden, lens = self.asr_encoder(speech, speech_lengths, speech_cmvn, layers=[self.ent_layer])
            return hidden[0], lens
        return self.ssl(speech, speech_lengths)

    def forward_with_attention(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, speech_cmvn: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Logits (B, C) and the co-attention weights ``{"mfcc": (B, T1), "spectrogram": (B, T2)}``.

        Args:
            speech: (B, N); speech_lengths: (B,); speech_cmvn: (B, 2, F[+K]) or None.
        """
        mfcc, spec, lens = self.spectral_features(speech, speech_lengths)
        m = self.mfcc_rnn(mfcc, lens)
        p, p_lens = self.cnn(spec, lens)
        if int(p_lens.min()) < 1:
            raise ValueError(f"an utterance of {int(speech_lengths.min())} samples is too short for the CNN")
        w_frames, w_lens = self.third_branch(speech, speech_lengths, speech_cmvn)
        if int(w_lens.min()) < 1:
            raise ValueError(f"an utterance of {int(speech_lengths.min())} samples gives no pretrained-model frame")
        w = masked_mean(self.ssl_proj(w_frames), w_lens)
        m_vec, a_m = self.att_mfcc(m, lens, w)
        p_vec, a_p = self.att_spec(p, p_lens, w)
        logits = self.classifier(torch.cat([m_vec, p_vec, w], dim=-1))
        return logits, {"mfcc": a_m, "spectrogram": a_p}

    def emotion_logits(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs: torch.Tensor
    ) -> torch.Tensor:
        """(B, C) logits of ``speech`` (B, N), ``speech_lengths`` (B,); reads ``speech_cmvn`` (B, 2, F)."""
        logits, _ = self.forward_with_attention(speech, speech_lengths, kwargs.get("speech_cmvn"))
        return logits
