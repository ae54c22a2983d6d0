"""Modified beam search of the Emotion Neural Transducer (ENT and FENT).

The "modified beam search" of icefall (k2-fsa), batched over utterances and
generalized to ``max_symbols_per_frame`` symbols per frame (S):

* at frame ``t`` each hypothesis is scored; per utterance the ``beam`` best
  (hypothesis, symbol) pairs by total score are kept (one top-k over all
  hypotheses x vocabulary, blank included);
* a pair with blank leaves frame ``t`` (the hypothesis is unchanged); a pair
  with a token extends the hypothesis, which is scored again at frame ``t``
  for its next symbol, up to S tokens; after the S-th it leaves the frame
  without a blank, as in greedy search (S = 1 is icefall's rule: one token
  or blank per frame);
* hypotheses that leave the frame with the same token sequence are merged:
  their probabilities are added (log-add of the scores); the ``beam`` best
  start frame ``t + 1``. While ``beam`` hypotheses have left the frame, a pair
  that scores below the ``beam``-th of them is dropped (with a positive
  ``token_bonus`` scores can grow within a frame, and nothing is dropped).

Emotions follow the same rule as greedy search (:mod:`ent.decoding.greedy`)
along each hypothesis: a token takes the emotion of the node where it is
emitted; frame ``t`` takes the emotion of the node ``(t, u_t)`` where the
path leaves it (``u_t`` = tokens emitted at frames ``<= t``: the parent's node
on blank, the node after the new token otherwise). When two pairs merge, the
emotions and token frames of the one with the larger individual score are
kept. With ``beam=1`` the search is greedy search with the same
``max_symbols_per_frame``. Tests check the unpruned search against brute-force
enumeration of all paths.

Shallow fusion with a token n-gram language model (``lm``,
:class:`~ent.lm.ngram.NgramScorer`): every emitted token adds ``lm_weight *
log p_LM(token | history)`` to the score, blank adds nothing, and the final
ranking adds ``lm_weight * log p_LM(</s> | history)``. ``token_bonus`` is added
per emitted token (it offsets the LM's pull towards deletions).

All hypotheses of all utterances still running at a frame go through the
joint networks and the predictors together; only the top-k bookkeeping
(at most ``beam`` pairs per utterance) is a Python loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from ent.decoding.greedy import PredictorRows, StepScorer, check_inputs
from ent.decoding.hypothesis import Hypothesis, evaluating
from ent.lm.ngram import NgramScorer
from ent.models.encoder_output import EncoderOutput


@dataclass(frozen=True, eq=False)
class _Emission:
    """A token emitted by a hypothesis, with the emotion of its node."""

    token: int
    emotion: int
    posterior: Tensor  # (C,)


@dataclass(eq=False)
class _Trace:
    """One frame of a hypothesis' history (a persistent linked list).

    Attributes:
        parent: Previous frame's trace (None before frame 0).
        frame_emotion: Emotion id of this frame (at the node where the path leaves it).
        frame_posterior: Its posteriors (C,).
        tokens: Tokens emitted at this frame, in order.
    """

    parent: Optional["_Trace"]
    frame_emotion: int
    frame_posterior: Tensor
    tokens: Tuple[_Emission, ...] = ()


@dataclass(eq=False)
class _Beam:
    """A live hypothesis: its tokens, score, history, predictor row and LM state.

    ``pending`` holds the tokens it emitted at the current frame so far (they
    join its trace when it leaves the frame).
    """

    tokens: Tuple[int, ...]
    score: float
    trace: Optional[_Trace]
    row: Tuple[int, int]  # (part, index) of its predictor row among this frame's row tensors
    lm_state: Tuple[int, ...] = ()
    pending: Tuple[_Emission, ...] = ()


@dataclass(eq=False)
class _Closed:
    """A hypothesis that has left the current frame, merged by token sequence."""

    beam: _Beam
    row: Tuple[int, int]  # (part, index) of its predictor row
    frame_emotion: int
    frame_posterior: Tensor
    score: float  # this path's own score
    total: float  # log-add of every merged path's score


def modified_beam_search(
    model: torch.nn.Module,
    enc: EncoderOutput,
    *,
    beam: int = 4,
    lm: Optional[NgramScorer] = None,
    lm_weight: float = 0.0,
    token_bonus: float = 0.0,
    max_symbols_per_frame: int = 1,
) -> List[Hypothesis]:
    """Best hypothesis of each utterance by modified beam search.

    Args:
        model: An :class:`~ent.models.transducer.EmotionTransducer`.
        enc: Its encoder output (:meth:`EmotionTransducer.encode`):
            ``enc.enc`` (B, T, D_e), ``enc.lengths`` T_b (B,) and, for FENT
            with a blank-branch layer weighting, ``enc.enc_blank`` (B, T, D_e);
            see :class:`~ent.decoding.greedy.StepScorer`.
        beam: Hypotheses kept per frame (>= 1).
        lm: Token n-gram language model for shallow fusion (None: none).
        lm_weight: Weight of its log probabilities.
        token_bonus: Added to the score of every emitted token.
        max_symbols_per_frame: Most tokens a hypothesis emits at one frame
            (1: icefall's modified beam search).

    Returns:
        One hypothesis per utterance, in batch order (the highest score).
    """
    return [
        nbest[0]
        for nbest in modified_beam_search_nbest(
            model, enc, beam=beam, lm=lm, lm_weight=lm_weight, token_bonus=token_bonus,
            max_symbols_per_frame=max_symbols_per_frame,
        )
    ]


def modified_beam_search_nbest(
    model: torch.nn.Module,
    enc: EncoderOutput,
    *,
    beam: int = 4,
    lm: Optional[NgramScorer] = None,
    lm_weight: float = 0.0,
    token_bonus: float = 0.0,
    max_symbols_per_frame: int = 1,
) -> List[List[Hypothesis]]:
    """All final hypotheses of each utterance by modified beam search.

    Args:
        model: An :class:`~ent.models.transducer.EmotionTransducer`.
        enc: Its encoder output (:meth:`EmotionTransducer.encode`):
            ``enc.enc`` (B, T, D_e), ``enc.lengths`` T_b (B,) and, for FENT
            with a blank-branch layer weighting, ``enc.enc_blank`` (B, T, D_e);
            see :class:`~ent.decoding.greedy.StepScorer`.
        beam: Hypotheses kept per frame (>= 1).
        lm: Token n-gram language model for shallow fusion (None: none).
        lm_weight: Weight of its log probabilities (>= 0).
        token_bonus: Added to the score of every emitted token.
        max_symbols_per_frame: Most tokens a hypothesis emits at one frame
            (>= 1; 1: icefall's modified beam search).

    Returns:
        For each utterance (batch order), its hypotheses (at most ``beam``,
        distinct token sequences) sorted by decreasing score (LM and bonus
        included); tensors on the CPU.
    """
    lens = check_inputs(enc)
    if beam < 1 or max_symbols_per_frame < 1:
        raise ValueError(f"beam and max_symbols_per_frame must be >= 1, got {beam} and {max_symbols_per_frame}")
    if lm_weight < 0:
        raise ValueError(f"lm_weight must be >= 0, got {lm_weight}")
    if lm is not None and lm.vocab_size != model.vocab_size:
        raise ValueError(f"the LM's token list has {lm.vocab_size} tokens, the model {model.vocab_size}")
    fusion = _Fusion(lm if lm_weight > 0 else None, lm_weight, token_bonus)
    with evaluating(model):
        return _search(model, enc, lens, beam, fusion, max_symbols_per_frame)


@dataclass
class _Fusion:
    """What beam search adds to the transducer's token scores."""

    lm: Optional[NgramScorer]
    lm_weight: float
    token_bonus: float

    @property
    def active(self) -> bool:
        return self.lm is not None or self.token_bonus != 0.0

    def initial_state(self) -> Tuple[int, ...]:
        return self.lm.initial_state() if self.lm is not None else ()

    def next_state(self, state: Tuple[int, ...], token: int) -> Tuple[int, ...]:
        return self.lm.next_state(state, token) if self.lm is not None else ()

    def token_scores(self, states: List[Tuple[int, ...]], blank_id: int, vocab: int) -> Tensor:
        """Added score of each token after each state, blank 0. (H, V) float64"""
        if self.lm is not None:
            scores = torch.from_numpy(np.stack([self.lm.logprobs(s) for s in states])).double() * self.lm_weight
        else:
            scores = torch.zeros(len(states), vocab, dtype=torch.float64)
        scores += self.token_bonus
        scores[:, blank_id] = 0.0
        return scores

    def final(self, state: Tuple[int, ...]) -> float:
        return self.lm_weight * self.lm.final(state) if self.lm is not None else 0.0


def _search(
    model: torch.nn.Module, enc: EncoderOutput, lens: Tensor, beam: int, fusion: _Fusion, max_symbols: int,
) -> List[List[Hypothesis]]:
    """:func:`modified_beam_search_nbest` without the checks.

    Args:
        lens: ``enc.lengths`` as checked by :func:`~ent.decoding.greedy.check_inputs`. (B,)
    """
    batch, max_t = enc.enc.shape[:2]
    device = enc.enc.device
    blank_id = model.blank_id
    num_classes = len(model.emotions)
    scorer = StepScorer(model, enc)
    rows: PredictorRows = scorer.start(batch)
    start_state = fusion.initial_state()
    hyps: List[List[_Beam]] = [[_Beam((), 0.0, None, (0, b), start_state)] for b in range(batch)]
    lens_l = lens.tolist()
    prune = fusion.token_bonus <= 0  # then a path's score never grows within a frame

    def longs(values: List[int]) -> Tensor:
        return torch.tensor(values, dtype=torch.long, device=device)

    for t in range(max_t):
        active = [b for b in range(batch) if lens_l[b] > t]
        if not active:
            break
        parts: List[PredictorRows] = [rows]  # every predictor row tensor of this frame
        closed: Dict[int, Dict[Tuple[int, ...], _Closed]] = {b: {} for b in active}
        cur: Dict[int, List[_Beam]] = {b: hyps[b] for b in active}

        def close(b: int, hyp: _Beam, row: Tuple[int, int], emotion: int, posterior: Tensor, score: float) -> None:
            old = closed[b].get(hyp.tokens)
            if old is None:
                closed[b][hyp.tokens] = _Closed(hyp, row, emotion, posterior, score, score)
            elif score > old.score:
                closed[b][hyp.tokens] = _Closed(hyp, row, emotion, posterior, score, _log_add(old.total, score))
            else:
                old.total = _log_add(old.total, score)

        for step in range(max_symbols):
            flat = [(b, h) for b in active for h in cur[b]]
            if not flat:
                break
            # ---- score every hypothesis still in frame t
            utt = longs([b for b, _ in flat])
            part = flat[0][1].row[0]  # all in one tensor: the frame's rows, then the last emitters'
            assert all(h.row[0] == part for _, h in flat)
            sub = scorer.select(parts[part], longs([h.row[1] for _, h in flat]))
            parts.append(sub)
            p_sub = len(parts) - 1
            frame = torch.full_like(utt, t)
            logp = torch.log_softmax(scorer.token_logits(utt, frame, sub).float(), dim=-1)
            emo_logits = scorer.emotion_logits(utt, frame, sub).float()
            emo_here = emo_logits.argmax(dim=-1).tolist()
            post_here = torch.softmax(emo_logits, dim=-1).cpu()
            scores = logp.double()
            if fusion.active:
                scores = scores + fusion.token_scores([h.lm_state for _, h in flat], blank_id, logp.size(1)).to(device)
            vocab = scores.size(1)

            # ---- the best (hypothesis, symbol) pairs of each utterance: blank
            # leaves the frame at the hypothesis' node, a token extends it
            prior = torch.tensor([h.score for _, h in flat], dtype=torch.float64, device=device)
            sizes = [len(cur[b]) for b in active]
            max_h = max(sizes)
            slot = [h for n in sizes for h in range(n)]  # each flat entry's place in its utterance
            owner = [a for a, n in enumerate(sizes) for _ in range(n)]
            padded = torch.full((len(active), max_h, vocab), float("-inf"), dtype=torch.float64, device=device)
            padded[longs(owner), longs(slot)] = prior.unsqueeze(1) + scores
            top_val, top_idx = padded.view(len(active), -1).topk(min(beam, max_h * vocab), dim=1)
            starts = [0]
            for n in sizes:
                starts.append(starts[-1] + n)
            emitters: List[Tuple[int, int, int, float]] = []  # (utterance, flat index, token, score)
            for a, (vals, idxs) in enumerate(zip(top_val.tolist(), top_idx.tolist())):
                b = active[a]
                threshold = float("-inf")
                if prune and len(closed[b]) >= beam:
                    threshold = sorted((c.total for c in closed[b].values()), reverse=True)[beam - 1]
                for val, idx in zip(vals, idxs):
                    if val == float("-inf") or val <= threshold:
                        continue
                    h, sym = divmod(idx, vocab)
                    i = starts[a] + h
                    if sym == blank_id:
                        close(b, flat[i][1], (p_sub, i), emo_here[i], post_here[i], val)
                    else:
                        emitters.append((b, i, sym, val))
            if not emitters:
                break
            e_rows = scorer.advance(
                scorer.select(sub, longs([i for _, i, _, _ in emitters])), longs([s for _, _, s, _ in emitters])
            )
            parts.append(e_rows)
            p_e = len(parts) - 1
            last = step + 1 == max_symbols
            if last:  # out of symbols: leave the frame at the new node without a blank
                e_utt = longs([b for b, _, _, _ in emitters])
                e_logits = scorer.emotion_logits(e_utt, torch.full_like(e_utt, t), e_rows).float()
                e_emo = e_logits.argmax(dim=-1).tolist()
                e_post = torch.softmax(e_logits, dim=-1).cpu()
            cur = {b: [] for b in active}
            for e, (b, i, sym, val) in enumerate(emitters):
                parent = flat[i][1]
                emission = _Emission(sym, emo_here[i], post_here[i])
                child = _Beam(
                    parent.tokens + (sym,), val, parent.trace, (p_e, e),
                    fusion.next_state(parent.lm_state, sym), parent.pending + (emission,),
                )
                if last:
                    close(b, child, child.row, e_emo[e], e_post[e], val)
                else:
                    cur[b].append(child)

        # ---- the best closed hypotheses of each utterance start frame t + 1
        kept = {b: sorted(closed[b].values(), key=lambda c: -c.total)[:beam] for b in active}
        by_part: Dict[int, List[int]] = {}
        for b in active:
            for c in kept[b]:
                by_part.setdefault(c.row[0], []).append(c.row[1])
        new_index: Dict[Tuple[int, int], int] = {}
        pieces: List[PredictorRows] = []
        for part, idxs in by_part.items():
            for j, idx in enumerate(idxs):
                new_index[(part, idx)] = len(new_index)
            pieces.append(scorer.select(parts[part], longs(idxs)))
        rows = scorer.concat(pieces)  # (hypotheses of ended utterances are never scored again)
        for b in active:
            hyps[b] = [
                _Beam(
                    c.beam.tokens, c.total,
                    _Trace(c.beam.trace, c.frame_emotion, c.frame_posterior, c.beam.pending),
                    (0, new_index[c.row]), c.beam.lm_state,
                )
                for c in kept[b]
            ]

    if fusion.lm is not None:
        for b in range(batch):
            for h in hyps[b]:
                h.score += fusion.final(h.lm_state)
    return [_finish(hyps[b], lens_l[b], num_classes) for b in range(batch)]


def _log_add(x: float, y: float) -> float:
    """log(exp(x) + exp(y)) without overflow."""
    if x < y:
        x, y = y, x
    if y == float("-inf"):
        return x
    return x + math.log1p(math.exp(y - x))


def _finish(beams: List[_Beam], num_frames: int, num_classes: int) -> List[Hypothesis]:
    """Turn the final beams of one utterance into hypotheses sorted by score."""
    out = []
    for beam in sorted(beams, key=lambda x: -x.score):
        tokens: List[int] = []
        token_frames: List[int] = []
        token_emotions: List[int] = []
        token_posts: List[Tensor] = []
        frame_emotions: List[int] = []
        frame_posts: List[Tensor] = []
        node = beam.trace
        t = num_frames
        while node is not None:
            t -= 1
            frame_emotions.append(node.frame_emotion)
            frame_posts.append(node.frame_posterior)
            for emission in reversed(node.tokens):
                tokens.append(emission.token)
                token_frames.append(t)
                token_emotions.append(emission.emotion)
                token_posts.append(emission.posterior)
            node = node.parent
        if t != 0:
            raise RuntimeError(f"internal error: a hypothesis covers {num_frames - t} of {num_frames} frames")
        for lst in (tokens, token_frames, token_emotions, token_posts, frame_emotions, frame_posts):
            lst.reverse()
        out.append(
            Hypothesis(
                tokens=tokens,
                token_frames=token_frames,
                token_emotions=token_emotions,
                frame_emotions=frame_emotions,
                frame_posteriors=torch.stack(frame_posts) if frame_posts else torch.zeros(0, num_classes),
                score=beam.score,
                token_posteriors=torch.stack(token_posts) if token_posts else torch.zeros(0, num_classes),
            )
        )
    return out
