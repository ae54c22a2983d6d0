"""Joint ASR-SER training with the ASR hidden states and the ASR text output fused by hierarchical co-attention.

Reference: Y. Li, P. Bell and C. Lai, "Fusing ASR Outputs in Joint Training
for Speech Emotion Recognition", ICASSP 2022 (arXiv:2110.15684), Sec. 2
(joint ASR-SER training on wav2vec 2.0; the ASR outputs fused into the
emotion classifier; hierarchical co-attention fusion of the ASR hidden
states and the ASR text output) and Sec. 3 (setup).

Data flow (B utterances, T acoustic frames, U' hypothesis tokens, d the
fusion size, V tokens with blank = 0, C classes)::

    speech (B, N) -> acoustic encoder -> low-level frames A (B, T, D), top frames Z (B, T, D)
    ASR branch:   S = Z + FFN(LayerNorm(Z))       ASR hidden states (B, T, D)
                  CTC(Linear(S)) against text     (the auxiliary loss, weight asr_weight)
                  greedy CTC hypothesis           (B, U') token ids (no gradient)
    text:         [<s>; hypothesis] -> embedding -> BiLSTM -> E (B, U'+1, d)
    level 1 (frames):  A' = co-att(A <- S), S' = co-att(S <- A);  F = Linear([A'; S'])   (B, T, d)
    level 2 (words):   F' = co-att(F <- E),  E' = co-att(E <- F)
    pooling:           attentive pooling of F' and of E', concatenated   (B, 2d)
    classifier:        Linear -> (B, C)

    loss = cross entropy + asr_weight * CTC

``co-att(X <- Y)`` is multi-head attention with queries X and keys/values Y
(padding of Y masked), added to X and layer-normalized. The hierarchy goes
from the frame-synchronous streams (acoustic and ASR hidden states, first
level) to the token-level stream (the ASR text output, second level).

The acoustic encoder is either

* ``ent_dir``: the toolkit's trained ENT/FENT encoder
  (:class:`~ent.models.ser.asr_encoder.ASREncoder`): A is block
  ``acoustic_layer`` and Z the encoder output. By default it is **frozen**
  and the trainable top is the ASR branch above (a residual feed-forward
  block whose output layer starts at zero, and the CTC layer, initialized
  from the ENT model's own CTC layer when it has one, so the ASR branch
  starts as the ENT model's CTC recognizer); ``finetune_encoder: true``
  trains the encoder jointly, as the paper fine-tunes wav2vec 2.0; or
* ``ssl_conf``: a local wav2vec 2.0 / HuBERT / WavLM model through
  :class:`~ent.features.ssl.SSLFrontend` (its ``finetune`` option decides
  whether it is trained): A and Z are its learned weighted sum of hidden
  states (the paper's setting, except that it fine-tunes the whole model).

Text input: the emotion classifier reads the ASR **hypothesis** in training
as in evaluation (``train_text: hypothesis``, the default, as the paper
fuses the ASR outputs in joint training); ``train_text: reference`` feeds
the reference transcript (``text``) in training instead (the hypothesis is
always used in evaluation, and whenever ``text`` is absent).

Deviations from the paper:

* The text output is embedded with a trained token embedding and a BiLSTM
  over the recipe's token list (characters on mini_emo), not with a
  pretrained word-level language model.
* Only the abstract of the paper could be consulted while writing this
  module: the residual ASR top, the two-level order of the co-attentions,
  their residual/LayerNorm form and the attentive pooling are our reading of
  "ASR hidden and text output fused with hierarchical co-attention", not
  formulas copied from Sec. 2.
* Everything is masked by the valid lengths (an utterance's posteriors do
  not depend on its batch); an empty hypothesis leaves the text stream with
  its start token only.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from espnet2.torch_utils.device_funcs import force_gatherable
from torch.nn import functional as F

from ent.features.ssl import SSLFrontend
from ent.models.ser.abs_ser_model import AbsSERModel
from ent.models.ser.asr_encoder import DEFAULT_CHECKPOINT, ASREncoder, pretrained_acoustic_encoder
from ent.models.ser.masked import AttentivePooling, PackedLSTM, length_mask

TRAIN_TEXTS = ("hypothesis", "reference")


class CoAttention(torch.nn.Module):
    """``X <- Y``: multi-head attention from the queries X to the keys/values Y, residual, LayerNorm.

    Args:
        dim: d, the size of X and Y.
        heads: Attention heads.
        dropout: Dropout on the attention weights and the residual branch.
    """

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.attention = torch.nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.dropout = torch.nn.Dropout(dropout)
        self.norm = torch.nn.LayerNorm(dim)

    def forward(
        self, x: torch.Tensor, x_lens: torch.Tensor, y: torch.Tensor, y_lens: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Attend.

        Args:
            x: (B, Tx, d) queries; x_lens: (B,).
            y: (B, Ty, d) keys and values; y_lens: (B,) >= 1.

        Returns:
            (B, Tx, d) outputs (zero at X's padding) and the weights (B, Tx, Ty)
            (averaged over heads, summing to one over Y's valid positions).
        """
        key_padding = ~length_mask(y_lens, y.size(1))
        att, weights = self.attention(x, y, y, key_padding_mask=key_padding, need_weights=True)
        out = self.norm(x + self.dropout(att))
        return out.masked_fill(~length_mask(x_lens, x.size(1)).unsqueeze(-1), 0.0), weights


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> List[List[int]]:
    """Greedy CTC hypotheses: the best token of every frame, repeats merged, blanks removed.

    Args:
        log_probs: (B, T, V); lengths: (B,).

    Returns:
        B lists of token ids.
    """
    best = log_probs.argmax(dim=-1).cpu()
    out = []
    for b, n in enumerate(lengths.tolist()):
        seq = torch.unique_consecutive(best[b, : int(n)]).tolist()
        out.append([t for t in seq if t != blank])
    return out


class ASROutputFusion(AbsSERModel):
    """Li et al.'s joint ASR-SER model with hierarchical co-attention fusion (module docstring).

    Args:
        emotions: Emotion class names (their order defines the ids).
        ent_dir: Trained ENT/FENT experiment directory whose encoder is the
            acoustic encoder (exclusive with ``ssl_conf``).
        checkpoint: Checkpoint file in ``ent_dir``.
        finetune_encoder: Train the ENT encoder jointly; False: frozen, with
            the trainable ASR top.
        acoustic_layer: 1-based ENT encoder block read as the low-level
            acoustic stream A (negative: from the end).
        ssl_conf: :class:`~ent.features.ssl.SSLFrontend` options (``model_dir``
            a local directory) for a wav2vec 2.0-style acoustic encoder.
        vocab_size: V, tokens of ``text`` with blank = 0; default the ENT
            model's (required with ``ssl_conf``).
        asr_weight: Weight of the CTC loss beside the cross entropy.
        train_text: ``hypothesis`` or ``reference`` (module docstring).
        asr_hidden: Hidden size of the ASR top's feed-forward block.
        fusion_dim: d, the size of the fused streams.
        heads: Attention heads of the co-attentions.
        text_embed_dim: Token embedding size of the text stream.
        dropout: Dropout in the fusion and before the classifier.
        label_smoothing: Label smoothing of the cross entropy.
    """

    def __init__(
        self,
        emotions: Sequence[str],
        ent_dir: Optional[str] = None,
        checkpoint: str = DEFAULT_CHECKPOINT,
        finetune_encoder: bool = False,
        acoustic_layer: int = 1,
        ssl_conf: Optional[Mapping[str, Any]] = None,
        vocab_size: Optional[int] = None,
        asr_weight: float = 0.3,
        train_text: str = "hypothesis",
        asr_hidden: int = 256,
        fusion_dim: int = 128,
        heads: int = 4,
        text_embed_dim: int = 64,
        dropout: float = 0.1,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(emotions, label_smoothing)
        if train_text not in TRAIN_TEXTS:
            raise ValueError(f"train_text must be one of {list(TRAIN_TEXTS)}, got {train_text!r}")
        self.asr_weight = float(asr_weight)
        self.train_text = train_text
        self.asr_encoder: Optional[ASREncoder]
        self.ssl: Optional[SSLFrontend]
        self.asr_encoder, self.ssl = pretrained_acoustic_encoder(ent_dir, ssl_conf, checkpoint, finetune_encoder)
        init_ctc: Optional[torch.nn.Linear] = None
        if self.asr_encoder is not None:
            self.acoustic_layer = self.asr_encoder.check_layers([acoustic_layer])[0]
            vocab_size = vocab_size or self.asr_encoder.vocab_size
            init_ctc = self.asr_encoder.ctc_lin
        dim = (self.asr_encoder if self.asr_encoder is not None else self.ssl).output_size()
        if not vocab_size:
            raise ValueError("vocab_size is needed (the ENT checkpoint does not tell it, or ssl_conf is used)")
        self.vocab_size = int(vocab_size)

        # ASR branch: residual feed-forward top (output layer at zero) and CTC layer.
        self.asr_norm = torch.nn.LayerNorm(dim)
        self.asr_ffn = torch.nn.Sequential(
            torch.nn.Linear(dim, asr_hidden), torch.nn.ReLU(), torch.nn.Dropout(dropout),
            torch.nn.Linear(asr_hidden, dim),
        )
        torch.nn.init.zeros_(self.asr_ffn[-1].weight)
        torch.nn.init.zeros_(self.asr_ffn[-1].bias)
        self.ctc = torch.nn.Linear(dim, self.vocab_size)
        if init_ctc is not None and init_ctc.weight.shape == self.ctc.weight.shape:
            with torch.no_grad():
                self.ctc.weight.copy_(init_ctc.weight)
                self.ctc.bias.copy_(init_ctc.bias)

        # Text stream: token embedding (+ a start token, id V) and a BiLSTM.
        self.embed = torch.nn.Embedding(self.vocab_size + 1, text_embed_dim)
        self.text_rnn = PackedLSTM(text_embed_dim, fusion_dim // 2, bidirectional=True)
        self.text_proj = torch.nn.Linear(self.text_rnn.output_size(), fusion_dim)

        # Hierarchical co-attention.
        self.acoustic_proj = torch.nn.Linear(dim, fusion_dim)
        self.hidden_proj = torch.nn.Linear(dim, fusion_dim)
        self.att_a_from_s = CoAttention(fusion_dim, heads, dropout)
        self.att_s_from_a = CoAttention(fusion_dim, heads, dropout)
        self.frame_fusion = torch.nn.Linear(2 * fusion_dim, fusion_dim)
        self.att_f_from_e = CoAttention(fusion_dim, heads, dropout)
        self.att_e_from_f = CoAttention(fusion_dim, heads, dropout)
        self.pool_frames = AttentivePooling(fusion_dim, fusion_dim)
        self.pool_tokens = AttentivePooling(fusion_dim, fusion_dim)
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(2 * fusion_dim, self.num_classes)

    # ------------------------------------------------------------ the branches
    def acoustic(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, speech_cmvn: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Low-level frames A, top frames Z (both (B, T, D)) and the frame counts (B,).

        Args:
            speech: (B, N); speech_lengths: (B,); speech_cmvn: (B, 2, F[+K]) or None.
        """
        if self.asr_encoder is not None:
            hidden, lens = self.asr_encoder(speech, speech_lengths, speech_cmvn)
            low, top = hidden[self.acoustic_layer - 1 if self.acoustic_layer > 0 else self.acoustic_layer], hidden[-1]
        else:
            top, lens = self.ssl(speech, speech_lengths)
            low = top
        if int(lens.min()) < 1:
            raise ValueError(f"an utterance of {int(speech_lengths.min())} samples gives no acoustic frame")
        return low, top, lens

    def asr_hidden(self, top: torch.Tensor) -> torch.Tensor:
        """ASR hidden states S (B, T, D) of the top frames Z (B, T, D)."""
        return top + self.asr_ffn(self.asr_norm(top))

    def text_tokens(self, hyps: List[List[int]], device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        """``[<s>; tokens]`` padded (B, U'+1) and lengths (B,)."""
        seqs = [torch.tensor([self.vocab_size] + h, dtype=torch.long) for h in hyps]
        lens = torch.tensor([len(s) for s in seqs], dtype=torch.long, device=device)
        return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True).to(device), lens

    def fuse(
        self, low: torch.Tensor, hidden: torch.Tensor, lens: torch.Tensor, tokens: torch.Tensor,
        token_lens: torch.Tensor,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Hierarchical co-attention and the classifier.

        Args:
            low: (B, T, D) acoustic frames A; hidden: (B, T, D) ASR hidden states S;
            lens: (B,) frames; tokens: (B, U) text ids with the start token; token_lens: (B,).

        Returns:
            logits (B, C) and the attention weights (``frames_from_text`` (B, T, U),
            ``text_from_frames`` (B, U, T), ``frame_pool`` (B, T), ``token_pool`` (B, U), ...).
        """
        a = self.acoustic_proj(low)
        s = self.hidden_proj(hidden)
        a1, w_as = self.att_a_from_s(a, lens, s, lens)
        s1, w_sa = self.att_s_from_a(s, lens, a, lens)
        frames = self.frame_fusion(torch.cat([a1, s1], dim=-1))
        frames = frames.masked_fill(~length_mask(lens, frames.size(1)).unsqueeze(-1), 0.0)
        text = self.text_proj(self.text_rnn(self.embed(tokens), token_lens))
        frames2, w_fe = self.att_f_from_e(frames, lens, text, token_lens)
        text2, w_ef = self.att_e_from_f(text, token_lens, frames, lens)
        pooled_f, p_f = self.pool_frames(frames2, lens)
        pooled_e, p_e = self.pool_tokens(text2, token_lens)
        logits = self.classifier(self.dropout(torch.cat([pooled_f, pooled_e], dim=-1)))
        weights = {"acoustic_from_hidden": w_as, "hidden_from_acoustic": w_sa, "frames_from_text": w_fe,
                   "text_from_frames": w_ef, "frame_pool": p_f, "token_pool": p_e}
        return logits, weights

    def forward_all(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: Optional[torch.Tensor] = None,
        text_lengths: Optional[torch.Tensor] = None,
        speech_cmvn: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, torch.Tensor]]:
        """Emotion logits (B, C), CTC log posteriors (B, T, V), frame counts (B,) and attention weights.

        Args:
            speech: (B, N); speech_lengths: (B,).
            text: (B, U) reference token ids padded with -1 (read in training
                with ``train_text: reference``); text_lengths: (B,).
            speech_cmvn: (B, 2, F[+K]) or None.
        """
        low, top, lens = self.acoustic(speech, speech_lengths, speech_cmvn)
        hidden = self.asr_hidden(top)
        log_probs = self.ctc(hidden).log_softmax(dim=-1)
        if self.training and self.train_text == "reference" and text is not None and text_lengths is not None:
            hyps = [[int(t) for t in text[b, : int(n)].tolist() if int(t) >= 0] for b, n in
                    enumerate(text_lengths.tolist())]
        else:
            hyps = ctc_greedy(log_probs.detach(), lens)
        tokens, token_lens = self.text_tokens(hyps, speech.device)
        logits, weights = self.fuse(low, hidden, lens, tokens, token_lens)
        return logits, log_probs, lens, weights

    # -------------------------------------------------------------- interface
    def emotion_logits(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs: torch.Tensor
    ) -> torch.Tensor:
        """(B, C) logits of ``speech`` (B, N), ``speech_lengths`` (B,) (from the ASR hypothesis in eval mode)."""
        logits, _, _, _ = self.forward_all(speech, speech_lengths, kwargs.get("text"), kwargs.get("text_lengths"),
                                           kwargs.get("speech_cmvn"))
        return logits

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        emotion: torch.Tensor,
        **kwargs: torch.Tensor,
    ) -> Tuple[torch.Tensor, Dict[str, Optional[torch.Tensor]], torch.Tensor]:
        """Cross entropy + ``asr_weight`` * CTC on ``text`` (B, U) (utterances with an empty text are left out).

        Returns:
            loss, stats (``loss``, ``loss_ce``, ``loss_ctc``, ``acc_emo``), batch size.
        """
        text, text_lengths = kwargs.get("text"), kwargs.get("text_lengths")
        logits, log_probs, lens, _ = self.forward_all(speech, speech_lengths, text, text_lengths,
                                                      kwargs.get("speech_cmvn"))
        loss_ce, stats = self.emotion_loss(logits, emotion)
        loss = loss_ce
        loss_ctc = None
        if self.asr_weight > 0 and text is not None and text_lengths is not None:
            has_text = text_lengths > 0
            if bool(has_text.any()):
                targets = text[has_text].clamp(min=0)
                per_utt = F.ctc_loss(
                    log_probs[has_text].transpose(0, 1), targets, lens[has_text], text_lengths[has_text],
                    blank=0, reduction="none", zero_infinity=True,
                )
                loss_ctc = per_utt.sum() / has_text.sum()
                loss = loss + self.asr_weight * loss_ctc
        stats = dict(stats, loss=loss.detach(), loss_ctc=None if loss_ctc is None else loss_ctc.detach())
        return force_gatherable((loss, stats, speech.shape[0]), loss.device)
