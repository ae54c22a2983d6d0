"""Modified beam search of the Emotion Neural Transducer (ENT and FENT).

The "modified beam search" of icefall (k2-fsa), batched over utterances:

* at most one symbol per frame: from each hypothesis, frame ``t`` either
  emits blank (the hypothesis is unchanged) or one token (it is extended),
  and the search moves to frame ``t + 1``;
* per utterance, the ``beam`` best (hypothesis, symbol) pairs by total score
  are kept at each frame (one top-k over all hypotheses x vocabulary);
* pairs that give the same token sequence are merged: their probabilities
  are added (log-add of the scores).

Emotions follow the same rule as greedy search (:mod:`ent.decoding.greedy`)
along each hypothesis: a token takes the emotion of the node where it is
emitted; frame ``t`` takes the emotion of the node ``(t, u_t)`` where the
path leaves it (``u_t`` = tokens emitted at frames ``<= t``: the parent's node
on blank, the node after the new token otherwise). When two pairs merge, the
emotions and token frames of the one with the larger individual score are
kept. With ``beam=1`` the search is greedy search with
``max_symbols_per_frame=1``.

All hypotheses of all utterances still running at a frame go through the
joint networks and the predictors together; only the top-k bookkeeping
(at most ``beam`` pairs per utterance) is a Python loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from ent.decoding.greedy import PredictorRows, StepScorer, check_inputs
from ent.decoding.hypothesis import Hypothesis, evaluating


@dataclass(eq=False)
class _Trace:
    """One frame of a hypothesis' history (a persistent linked list).

    Attributes:
        parent: Previous frame's trace (None before frame 0).
        frame_emotion: Emotion id of this frame.
        frame_posterior: Its posteriors (C,).
        token: Token emitted at this frame, or None for blank.
        token_emotion: Emotion id of that token (when emitted).
        token_posterior: Its posteriors (C,) (when emitted).
    """

    parent: Optional["_Trace"]
    frame_emotion: int
    frame_posterior: Tensor
    token: Optional[int] = None
    token_emotion: int = 0
    token_posterior: Optional[Tensor] = None


@dataclass(eq=False)
class _Beam:
    """A live hypothesis: its tokens, score, history and predictor row."""

    tokens: Tuple[int, ...]
    score: float
    trace: Optional[_Trace]
    row: int


@dataclass(eq=False)
class _Candidate:
    """A (hypothesis, symbol) pair kept at one frame, before the predictors run."""

    parent: _Beam
    pos: int  # the parent's position among the hypotheses scored at this frame
    symbol: int  # blank_id or a token
    score: float  # this pair's own score
    total: float  # log-add of every merged pair's score


def modified_beam_search(
    model: torch.nn.Module,
    enc_out: Tensor,
    enc_lens: Tensor,
    beam: int = 4,
) -> List[Hypothesis]:
    """Best hypothesis of each utterance by modified beam search.

    Args:
        model: An :class:`~ent.models.transducer.EmotionTransducer`.
        enc_out: Encoder outputs. (B, T, D_e)
        enc_lens: Encoder lengths T_b. (B,)
        beam: Hypotheses kept per frame (>= 1).

    Returns:
        One hypothesis per utterance, in batch order (the highest score).
    """
    return [nbest[0] for nbest in modified_beam_search_nbest(model, enc_out, enc_lens, beam)]


def modified_beam_search_nbest(
    model: torch.nn.Module,
    enc_out: Tensor,
    enc_lens: Tensor,
    beam: int = 4,
) -> List[List[Hypothesis]]:
    """All final hypotheses of each utterance by modified beam search.

    Args:
        model: An :class:`~ent.models.transducer.EmotionTransducer`.
        enc_out: Encoder outputs. (B, T, D_e)
        enc_lens: Encoder lengths T_b. (B,)
        beam: Hypotheses kept per frame (>= 1).

    Returns:
        For each utterance (batch order), its hypotheses (at most ``beam``,
        distinct token sequences) sorted by decreasing score; tensors on the
        CPU.
    """
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    lens = check_inputs(enc_out, enc_lens)
    with evaluating(model):
        return _search(model, enc_out, lens, beam)


def _search(model: torch.nn.Module, enc_out: Tensor, lens: Tensor, beam: int) -> List[List[Hypothesis]]:
    """:func:`modified_beam_search_nbest` without the checks."""
    batch, max_t = enc_out.shape[:2]
    device = enc_out.device
    blank_id = model.blank_id
    num_classes = len(model.emotions)
    scorer = StepScorer(model, enc_out)
    rows: PredictorRows = scorer.start(batch)
    hyps: List[List[_Beam]] = [[_Beam((), 0.0, None, b)] for b in range(batch)]
    lens_l = lens.tolist()

    def longs(values: List[int]) -> Tensor:
        return torch.tensor(values, dtype=torch.long, device=device)

    for t in range(max_t):
        active = [b for b in range(batch) if lens_l[b] > t]
        if not active:
            break
        # ---- score every live hypothesis of the running utterances at frame t
        flat = [(a, h) for a, b in enumerate(active) for h in range(len(hyps[b]))]
        utt = longs([active[a] for a, _ in flat])
        sub = scorer.select(rows, longs([hyps[active[a]][h].row for a, h in flat]))
        frame = torch.full_like(utt, t)
        logp = torch.log_softmax(scorer.token_logits(utt, frame, sub).float(), dim=-1)
        emo_logits = scorer.emotion_logits(utt, frame, sub).float()
        vocab = logp.size(1)

        max_h = max(len(hyps[b]) for b in active)
        prior = torch.tensor(
            [hyps[active[a]][h].score for a, h in flat], dtype=torch.float64, device=device
        )
        total = torch.full((len(active), max_h, vocab), float("-inf"), dtype=torch.float64, device=device)
        total[longs([a for a, _ in flat]), longs([h for _, h in flat])] = prior.unsqueeze(1) + logp.double()
        k = min(beam, max_h * vocab)
        top_val, top_idx = total.view(len(active), -1).topk(k, dim=1)
        top_val_l, top_idx_l = top_val.tolist(), top_idx.tolist()

        emo_here = emo_logits.argmax(dim=-1).tolist()
        post_here = torch.softmax(emo_logits, dim=-1).cpu()
        # position of (a, h) in the flat arrays
        flat_pos: Dict[Tuple[int, int], int] = {ah: i for i, ah in enumerate(flat)}

        # ---- top-k pairs per utterance, merged by token sequence
        kept: List[Dict[Tuple[int, ...], _Candidate]] = []
        for a, b in enumerate(active):
            merged: Dict[Tuple[int, ...], _Candidate] = {}
            for val, idx in zip(top_val_l[a], top_idx_l[a]):
                if val == float("-inf"):
                    continue
                h, sym = divmod(idx, vocab)
                parent = hyps[b][h]
                pos = flat_pos[(a, h)]
                key = parent.tokens if sym == blank_id else parent.tokens + (sym,)
                old = merged.get(key)
                if old is None:
                    merged[key] = _Candidate(parent, pos, sym, val, val)
                    continue
                combined = _log_add(old.total, val)
                if val > old.score:
                    merged[key] = _Candidate(parent, pos, sym, val, combined)
                else:
                    old.total = combined
            kept.append(merged)

        # ---- run the predictors on the extended hypotheses
        emitters = [(a, key, c) for a, m in enumerate(kept) for key, c in m.items() if c.symbol != blank_id]
        stayers = [(a, key, c) for a, m in enumerate(kept) for key, c in m.items() if c.symbol == blank_id]
        parts: List[PredictorRows] = []
        if stayers:
            parts.append(scorer.select(rows, longs([c.parent.row for _, _, c in stayers])))
        new_emo: List[int] = []
        new_post = torch.zeros(0, num_classes)
        if emitters:
            e_rows = scorer.advance(
                scorer.select(rows, longs([c.parent.row for _, _, c in emitters])),
                longs([c.symbol for _, _, c in emitters]),
            )
            e_utt = longs([active[a] for a, _, _ in emitters])
            e_logits = scorer.emotion_logits(e_utt, torch.full_like(e_utt, t), e_rows).float()
            new_emo = e_logits.argmax(dim=-1).tolist()
            new_post = torch.softmax(e_logits, dim=-1).cpu()
            parts.append(e_rows)
        rows = scorer.concat(parts)

        # ---- new hypotheses (row order: stayers, then emitters)
        new_hyps: Dict[int, Dict[Tuple[int, ...], _Beam]] = {b: {} for b in active}
        for r, (a, key, c) in enumerate(stayers):
            trace = _Trace(c.parent.trace, emo_here[c.pos], post_here[c.pos])
            new_hyps[active[a]][key] = _Beam(key, c.total, trace, r)
        for e, (a, key, c) in enumerate(emitters):
            trace = _Trace(
                c.parent.trace, new_emo[e], new_post[e], c.symbol, emo_here[c.pos], post_here[c.pos]
            )
            new_hyps[active[a]][key] = _Beam(key, c.total, trace, len(stayers) + e)
        for a, b in enumerate(active):
            # keep the top-k order (by each pair's own score)
            hyps[b] = [new_hyps[b][key] for key in kept[a]]

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
            if node.token is not None:
                assert node.token_posterior is not None
                tokens.append(node.token)
                token_frames.append(t)
                token_emotions.append(node.token_emotion)
                token_posts.append(node.token_posterior)
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
