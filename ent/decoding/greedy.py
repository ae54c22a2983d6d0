"""Batched greedy search of the Emotion Neural Transducer (ENT and FENT).

Lattice nodes and emotions
--------------------------
Node ``(t, u)`` pairs encoder frame ``t`` with the predictor state after ``u``
emitted tokens. At each node the token joint gives the next symbol (blank =
id 0 moves to frame ``t + 1``, a token to ``u + 1``) and the emotion joint
gives emotion logits (ENT: over the token predictor's output; FENT: over the
blank predictor's output, which :meth:`EmotionTransducer.emotion_logits` is
fed here as ``emo_pred``). Along the decoded path:

* a token's emotion is the argmax of the emotion logits at the node where it
  is emitted (its softmax is kept as the token's posterior);
* a frame's emotion is the argmax at the node where the path leaves the
  frame: where blank is emitted, or, if ``max_symbols_per_frame`` tokens were
  emitted without blank, the node reached after the last of them. Either
  way that node is ``(t, u_t)`` with ``u_t`` the number of tokens emitted at
  frames ``<= t``. Its softmax is kept as the frame's posterior.

The score of a path is the sum of the log-probabilities (log-softmax of the
token joint) of its emitted symbols: every token, and the blank of each frame
left by blank (a frame left after ``max_symbols_per_frame`` tokens adds no
blank term).

:class:`StepScorer` holds the per-utterance encoder projections (computed once)
and the predictor states of a set of decoding rows; it is shared with
:mod:`ent.decoding.beam_search`.

The searches take the :class:`~ent.models.encoder_output.EncoderOutput` of
:meth:`EmotionTransducer.encode` as it is: the token joint reads its ``enc``,
the blank and emotion joints its :attr:`~ent.models.encoder_output.EncoderOutput.blank`
stream (FENT's ``enc_blank`` when the model has a blank-branch layer
weighting, else ``enc``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ent.decoding.hypothesis import Hypothesis, evaluating
from ent.models.encoder_output import EncoderOutput


@dataclass
class PredictorRows:
    """Predictor states and projected outputs of N decoding rows.

    Attributes:
        token_state: Batched state of ``model.predictor`` (N rows).
        blank_state: Batched state of ``model.blank_predictor`` (FENT), else None.
        proj: Predictor outputs already projected into the joint spaces, each
            (N, joint_dim): ENT ``(token joint, emotion joint)``; FENT
            ``(blank joint, vocabulary joint, emotion joint)``.
    """

    token_state: Any
    blank_state: Optional[Any]
    proj: Tuple[Tensor, ...]

    @property
    def size(self) -> int:
        """Number of rows N."""
        return self.proj[0].size(0)


class StepScorer:
    """One-step token and emotion logits with encoder projections computed once.

    Args:
        model: An :class:`~ent.models.transducer.EmotionTransducer` (``variant``
            ``"ent"`` or ``"fent"``).
        enc: The encoder output (its lengths are not read): ``enc.enc``
            (B, T, D_e) feeds the token joint (ENT) or the vocabulary joint
            (FENT); ``enc.blank`` (B, T, D_e), i.e. ``enc.enc_blank`` if set,
            else ``enc.enc``, feeds the blank and emotion joints.
            ``enc.enc_blank`` is required for FENT with a blank-branch layer
            weighting.
    """

    def __init__(self, model: torch.nn.Module, enc: EncoderOutput) -> None:
        check_encoder_output(enc)
        enc_out = enc.enc
        if enc_out.dim() != 3:
            raise ValueError(f"EncoderOutput.enc must have shape (B, T, D_e), got {tuple(enc_out.shape)}")
        check_blank_stream(model, enc)
        blank_in = enc.blank
        self.model = model
        self.fent = model.variant == "fent"
        self.device = enc_out.device
        if self.fent:
            self.enc_proj: Tuple[Tensor, ...] = (
                model.blank_joint.project_encoder(blank_in),
                model.vocab_joint.project_encoder(enc_out),
            )
        else:
            self.enc_proj = (model.joint.project_encoder(enc_out),)
        self.enc_emo = model.emotion_joint.project_encoder(blank_in)

    # ------------------------------------------------------------ predictors
    def _project(self, token_out: Tensor, blank_out: Optional[Tensor]) -> Tuple[Tensor, ...]:
        m = self.model
        if self.fent:
            assert blank_out is not None
            return (
                m.blank_joint.project_predictor(blank_out),
                m.vocab_joint.project_predictor(token_out),
                m.emotion_joint.project_predictor(blank_out),
            )
        return m.joint.project_predictor(token_out), m.emotion_joint.project_predictor(token_out)

    def start(self, n: int) -> PredictorRows:
        """Rows at ``u = 0``: the predictors have read the start symbol (blank)."""
        m = self.model
        blank = torch.full((n,), m.blank_id, dtype=torch.long, device=self.device)
        tok_out, tok_state = m.predictor.step(blank, m.predictor.init_state(n))
        blank_out, blank_state = None, None
        if self.fent:
            blank_out, blank_state = m.blank_predictor.step(blank, m.blank_predictor.init_state(n))
        return PredictorRows(tok_state, blank_state, self._project(tok_out, blank_out))

    def advance(self, rows: PredictorRows, tokens: Tensor) -> PredictorRows:
        """Feed one token to every row. tokens: (N,) -> new rows (N)."""
        m = self.model
        tok_out, tok_state = m.predictor.step(tokens, rows.token_state)
        blank_out, blank_state = None, None
        if self.fent:
            blank_out, blank_state = m.blank_predictor.step(tokens, rows.blank_state)
        return PredictorRows(tok_state, blank_state, self._project(tok_out, blank_out))

    def select(self, rows: PredictorRows, indices: Tensor) -> PredictorRows:
        """Rows ``indices`` (may repeat). indices: (N',) long."""
        m = self.model
        return PredictorRows(
            m.predictor.select_state(rows.token_state, indices),
            m.blank_predictor.select_state(rows.blank_state, indices) if self.fent else None,
            tuple(p.index_select(0, indices) for p in rows.proj),
        )

    def concat(self, parts: Sequence[PredictorRows]) -> PredictorRows:
        """Stack several row sets (in order)."""
        m = self.model
        if len(parts) == 1:
            return parts[0]
        return PredictorRows(
            m.predictor.batch_states([p.token_state for p in parts]),
            m.blank_predictor.batch_states([p.blank_state for p in parts]) if self.fent else None,
            tuple(torch.cat([p.proj[i] for p in parts], dim=0) for i in range(len(parts[0].proj))),
        )

    def update(self, rows: PredictorRows, indices: Tensor, tokens: Tensor) -> PredictorRows:
        """Feed ``tokens`` to the rows ``indices`` only; the other rows are unchanged.

        Args:
            rows: N rows.
            indices: Distinct rows to advance. (K,)
            tokens: Their tokens. (K,)
        """
        if indices.numel() == 0:
            return rows
        stepped = self.advance(self.select(rows, indices), tokens)
        n = rows.size
        mapping = torch.arange(n, device=indices.device)
        mapping[indices] = n + torch.arange(indices.numel(), device=indices.device)
        return self.select(self.concat([rows, stepped]), mapping)

    # ---------------------------------------------------------------- joints
    def token_logits(self, utt: Tensor, frame: Tensor, rows: PredictorRows) -> Tensor:
        """Token logits at nodes ``(frame[i], u of row i)`` of utterances ``utt[i]``.

        Args:
            utt: Utterance index of each row. (N,)
            frame: Frame index of each row. (N,)
            rows: N rows.

        Returns:
            Logits, blank = id 0. (N, V)
        """
        m = self.model
        if self.fent:
            blank = m.blank_joint.joint_from_projected(self.enc_proj[0][utt, frame], rows.proj[0])
            vocab = m.vocab_joint.joint_from_projected(self.enc_proj[1][utt, frame], rows.proj[1])
            return torch.cat([blank, vocab], dim=-1)
        return m.joint.joint_from_projected(self.enc_proj[0][utt, frame], rows.proj[0])

    def emotion_logits(self, utt: Tensor, frame: Tensor, rows: PredictorRows) -> Tensor:
        """Emotion logits at the same nodes as :meth:`token_logits`. Returns (N, C)."""
        return self.model.emotion_joint.joint_from_projected(self.enc_emo[utt, frame], rows.proj[-1])


def check_encoder_output(enc: object) -> None:
    """Refuse anything but an :class:`~ent.models.encoder_output.EncoderOutput` (e.g. a loose tensor).

    Raises:
        TypeError: If ``enc`` is not an ``EncoderOutput``.
    """
    if not isinstance(enc, EncoderOutput):
        raise TypeError(f"the searches take the EncoderOutput of model.encode, got {type(enc).__name__} "
                        f"(wrap loose tensors as EncoderOutput(enc, lengths, enc_blank))")


def check_blank_stream(model: torch.nn.Module, enc: EncoderOutput) -> None:
    """Refuse a missing or misshapen ``enc.enc_blank`` for a model with a blank-branch layer weighting.

    Args:
        model: An :class:`~ent.models.transducer.EmotionTransducer`.
        enc: Its encoder output: ``enc.enc`` (B, T, D_e) and ``enc.enc_blank``
            (B, T, D_e) or None.

    Raises:
        ValueError: If the model reads a blank stream and ``enc.enc_blank`` is
            None, or ``enc.enc_blank`` is not shaped as ``enc.enc``.
    """
    if getattr(model, "blank_branch", None) is not None and enc.enc_blank is None:
        raise ValueError("this FENT reads a second encoder stream in its blank branch, but the EncoderOutput "
                         "has no enc_blank: pass model.encode()'s EncoderOutput as it is")
    if enc.enc_blank is not None and enc.enc_blank.shape != enc.enc.shape:
        raise ValueError(f"EncoderOutput.enc_blank must have the shape of EncoderOutput.enc "
                         f"{tuple(enc.enc.shape)}, got {tuple(enc.enc_blank.shape)}")


def check_inputs(enc: EncoderOutput) -> Tensor:
    """Validate an encoder output handed to a search.

    Args:
        enc: ``enc.enc`` (B, T, D_e), ``enc.lengths`` (B,) in [0, T].

    Returns:
        The lengths as a long tensor on ``enc.enc``'s device. (B,)

    Raises:
        TypeError: If ``enc`` is not an ``EncoderOutput``.
        ValueError: If a shape or a length is wrong.
    """
    check_encoder_output(enc)
    enc_out, enc_lens = enc.enc, enc.lengths
    if enc_out.dim() != 3:
        raise ValueError(f"EncoderOutput.enc must have shape (B, T, D_e), got {tuple(enc_out.shape)}")
    if enc_lens.dim() != 1 or enc_lens.size(0) != enc_out.size(0):
        raise ValueError(f"EncoderOutput.lengths must have shape ({enc_out.size(0)},), "
                         f"got {tuple(enc_lens.shape)}")
    lens = enc_lens.to(device=enc_out.device, dtype=torch.long)
    if lens.numel() and (int(lens.min()) < 0 or int(lens.max()) > enc_out.size(1)):
        raise ValueError(f"EncoderOutput.lengths must lie in [0, {enc_out.size(1)}], got {lens.tolist()}")
    return lens


def greedy_search(
    model: torch.nn.Module,
    enc: EncoderOutput,
    *,
    max_symbols_per_frame: int = 3,
) -> List[Hypothesis]:
    """Greedy search over a padded batch, batched over utterances.

    At each frame every still-running utterance takes the argmax symbol at
    its current node, up to ``max_symbols_per_frame`` tokens per frame; the
    frame is left at blank or after that many tokens. Utterances past their
    length are frozen (their padding frames are never read). Emotions follow
    the rule of the module docstring.

    Args:
        model: An :class:`~ent.models.transducer.EmotionTransducer`.
        enc: Its encoder output (:meth:`EmotionTransducer.encode`):
            ``enc.enc`` (B, T, D_e), ``enc.lengths`` T_b (B,) and, for FENT
            with a blank-branch layer weighting, ``enc.enc_blank`` (B, T, D_e);
            see :class:`StepScorer`.
        max_symbols_per_frame: Most tokens emitted at one frame (>= 1).

    Returns:
        One hypothesis per utterance, in batch order (tensors on the CPU).
    """
    lens = check_inputs(enc)
    if max_symbols_per_frame < 1:
        raise ValueError(f"max_symbols_per_frame must be >= 1, got {max_symbols_per_frame}")
    with evaluating(model):
        return _greedy(model, enc, lens, max_symbols_per_frame)


def _greedy(model: torch.nn.Module, enc: EncoderOutput, lens: Tensor, max_symbols: int) -> List[Hypothesis]:
    """:func:`greedy_search` without the checks (model in eval mode, no grad).

    Args:
        lens: ``enc.lengths`` as checked by :func:`check_inputs` (long, on ``enc.enc``'s device). (B,)
    """
    batch, max_t = enc.enc.shape[:2]
    device = enc.enc.device
    num_classes = len(model.emotions)
    blank_id = model.blank_id
    scorer = StepScorer(model, enc)
    rows = scorer.start(batch)

    cap = max_t * max_symbols
    tok = torch.full((batch, cap), -1, dtype=torch.long, device=device)
    tok_frame = torch.zeros((batch, cap), dtype=torch.long, device=device)
    tok_emo = torch.zeros((batch, cap), dtype=torch.long, device=device)
    tok_post = torch.zeros((batch, cap, num_classes), dtype=torch.float32, device=device)
    count = torch.zeros(batch, dtype=torch.long, device=device)
    frame_emo = torch.zeros((batch, max_t), dtype=torch.long, device=device)
    frame_post = torch.zeros((batch, max_t, num_classes), dtype=torch.float32, device=device)
    score = torch.zeros(batch, dtype=torch.float64, device=device)
    utt_ids = torch.arange(batch, device=device)

    for t in range(max_t):
        pending = lens > t  # rows that still have to leave frame t
        if not bool(pending.any()):
            break
        for _ in range(max_symbols):
            idx = utt_ids[pending]
            if idx.numel() == 0:
                break
            sub = scorer.select(rows, idx)
            frame = torch.full_like(idx, t)
            logp = torch.log_softmax(scorer.token_logits(idx, frame, sub).float(), dim=-1)
            emo_logits = scorer.emotion_logits(idx, frame, sub).float()
            emo = emo_logits.argmax(dim=-1)
            post = torch.softmax(emo_logits, dim=-1)
            best = logp.argmax(dim=-1)
            score[idx] += logp.gather(1, best.unsqueeze(1)).squeeze(1).double()

            is_blank = best == blank_id
            done = idx[is_blank]  # blank: frame t is left at this node
            frame_emo[done, t] = emo[is_blank]
            frame_post[done, t] = post[is_blank]
            pending[done] = False

            emit = ~is_blank
            ei = idx[emit]
            if ei.numel() == 0:
                continue
            slot = count[ei]
            tok[ei, slot] = best[emit]
            tok_frame[ei, slot] = t
            tok_emo[ei, slot] = emo[emit]
            tok_post[ei, slot] = post[emit]
            count[ei] += 1
            rows = scorer.update(rows, ei, best[emit])

        # Rows that emitted max_symbols tokens without blank leave frame t at
        # the node reached after their last token.
        idx = utt_ids[pending]
        if idx.numel() > 0:
            sub = scorer.select(rows, idx)
            emo_logits = scorer.emotion_logits(idx, torch.full_like(idx, t), sub).float()
            frame_emo[idx, t] = emo_logits.argmax(dim=-1)
            frame_post[idx, t] = torch.softmax(emo_logits, dim=-1)

    return _collect(lens, tok, tok_frame, tok_emo, tok_post, count, frame_emo, frame_post, score)


def _collect(
    lens: Tensor,
    tok: Tensor,
    tok_frame: Tensor,
    tok_emo: Tensor,
    tok_post: Tensor,
    count: Tensor,
    frame_emo: Tensor,
    frame_post: Tensor,
    score: Tensor,
) -> List[Hypothesis]:
    """Cut the batched buffers into one :class:`Hypothesis` per utterance (on the CPU).

    Args:
        lens: (B,); tok, tok_frame, tok_emo: (B, K); tok_post: (B, K, C);
        count: (B,) tokens per utterance; frame_emo: (B, T); frame_post:
        (B, T, C); score: (B,).
    """
    lens_l = lens.tolist()
    count_l = count.tolist()
    tok_l, frame_l, emo_l = tok.tolist(), tok_frame.tolist(), tok_emo.tolist()
    frame_emo_l = frame_emo.tolist()
    tok_post, frame_post = tok_post.cpu(), frame_post.cpu()
    score_l = score.tolist()
    out = []
    for b, (n, u) in enumerate(zip(lens_l, count_l)):
        out.append(
            Hypothesis(
                tokens=tok_l[b][:u],
                token_frames=frame_l[b][:u],
                token_emotions=emo_l[b][:u],
                frame_emotions=frame_emo_l[b][:n],
                frame_posteriors=frame_post[b, :n].clone(),
                score=score_l[b],
                token_posteriors=tok_post[b, :u].clone(),
            )
        )
    return out
