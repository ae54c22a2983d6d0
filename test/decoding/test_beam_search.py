"""Tests of modified beam search: beam 1 = greedy, exhaustive search = brute force, batching."""

from __future__ import annotations

import importlib.util
import collections
import itertools
import math
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch

from ent.decoding import greedy_search, modified_beam_search, modified_beam_search_nbest
from ent.models.encoder_output import EncoderOutput

# Model builders and the lattice checker are shared with test_greedy.py.
_spec = importlib.util.spec_from_file_location(
    "_decoding_greedy_helpers", Path(__file__).with_name("test_greedy.py")
)
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)
LENS = helpers.LENS


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_beam_one_equals_greedy_with_one_symbol_per_frame(variant: str) -> None:
    for seed in (0, 1):
        model = helpers.make_model(variant, seed=seed)
        enc, lens = helpers.make_batch(seed=10 + seed)
        greedy = greedy_search(model, EncoderOutput(enc, lens), max_symbols_per_frame=1)
        beam = modified_beam_search(model, EncoderOutput(enc, lens), beam=1)
        assert sum(len(h.tokens) for h in greedy) > 0
        for g, h in zip(greedy, beam):
            assert h.tokens == g.tokens
            assert h.token_frames == g.token_frames
            assert h.token_emotions == g.token_emotions
            assert h.frame_emotions == g.frame_emotions
            assert torch.allclose(h.frame_posteriors, g.frame_posteriors, atol=1e-6)
            assert torch.allclose(h.token_posteriors, g.token_posteriors, atol=1e-6)
            assert h.score == pytest.approx(g.score, abs=1e-6)


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_nbest_is_sorted_distinct_and_consistent_with_the_lattice(variant: str) -> None:
    model = helpers.make_model(variant, seed=2)
    enc, lens = helpers.make_batch(seed=4)
    nbests = modified_beam_search_nbest(model, EncoderOutput(enc, lens), beam=4)
    assert len(nbests) == len(LENS)
    for b, nbest in enumerate(nbests):
        assert 1 <= len(nbest) <= 4
        scores = [h.score for h in nbest]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in nbest}) == len(nbest)
        for h in nbest:
            assert len(h.frame_emotions) == LENS[b]
            # Emotions follow the node rule along the kept path; the score adds
            # the merged paths' probabilities, so it is at least that path's.
            path_score = helpers.check_against_lattice(model, enc[b, : LENS[b]], h, max_symbols=1)
            assert h.score >= path_score - 1e-6
    assert any(len(n) > 1 for n in nbests)


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_best_beam_score_is_at_least_greedy(variant: str) -> None:
    better = 0
    for seed in range(3):
        model = helpers.make_model(variant, seed=seed)
        enc, lens = helpers.make_batch(seed=20 + seed)
        greedy = greedy_search(model, EncoderOutput(enc, lens), max_symbols_per_frame=1)
        best = modified_beam_search(model, EncoderOutput(enc, lens), beam=4)
        for g, h in zip(greedy, best):
            assert h.score >= g.score - 1e-5  # float32 noise of differently batched joints
            better += h.score > g.score + 1e-3
    assert better > 0  # the beam does find better hypotheses here


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_batched_beam_equals_one_at_a_time(variant: str) -> None:
    model = helpers.make_model(variant, seed=3)
    enc, lens = helpers.make_batch(seed=5)
    batched = modified_beam_search_nbest(model, EncoderOutput(enc, lens), beam=3)
    for b, n in enumerate(LENS):
        one = EncoderOutput(enc[b : b + 1, :n].clone(), lens[b : b + 1])
        alone = modified_beam_search_nbest(model, one, beam=3)[0]
        assert [h.tokens for h in batched[b]] == [h.tokens for h in alone]
        assert [h.token_frames for h in batched[b]] == [h.token_frames for h in alone]
        assert [h.token_emotions for h in batched[b]] == [h.token_emotions for h in alone]
        assert [h.frame_emotions for h in batched[b]] == [h.frame_emotions for h in alone]
        for x, y in zip(batched[b], alone):
            assert x.score == pytest.approx(y.score, abs=1e-6)


def reference_beam(
    model: torch.nn.Module, enc: torch.Tensor, beam: int
) -> Tuple[List[Dict[str, object]], int]:
    """Slow, unbatched modified beam search of one utterance with the model's own methods.

    Args:
        enc: Encoder outputs of the utterance. (T, D)

    Returns:
        The final hypotheses (dicts) by decreasing score, and the number of
        merges that happened.
    """
    fent = model.variant == "fent"

    def start() -> Dict[str, object]:
        one = torch.zeros(1, dtype=torch.long)
        tok_pred, tok_state = model.predictor.step(one, model.predictor.init_state(1))
        emo_pred, emo_state = (
            model.blank_predictor.step(one, model.blank_predictor.init_state(1)) if fent else (tok_pred, None)
        )
        return dict(tokens=(), score=0.0, frames=[], tok_emo=[], frame_emo=[],
                    tok_pred=tok_pred, tok_state=tok_state, emo_pred=emo_pred, emo_state=emo_state)

    hyps = [start()]
    merges = 0
    for t in range(enc.size(0)):
        x = enc[t : t + 1]
        cands: List[Tuple[float, int, int, Dict[str, object], int]] = []
        for i, h in enumerate(hyps):
            logp = torch.log_softmax(model.token_logits(x, h["tok_pred"], h["emo_pred"])[0], -1).double()
            emo = int(model.emotion_logits(x, h["emo_pred"])[0].argmax())
            for k in range(logp.numel()):
                cands.append((h["score"] + float(logp[k]), i, k, h, emo))
        cands.sort(key=lambda c: (-c[0], c[1], c[2]))
        merged: Dict[Tuple[int, ...], Dict[str, object]] = {}
        for score, _, k, h, emo in cands[:beam]:
            key = h["tokens"] + ((k,) if k else ())
            if key in merged:
                merges += 1
                old = merged[key]
                total = math.log(math.exp(old["total"]) + math.exp(score))
                if score <= old["own"]:
                    old["total"] = total
                    continue
            else:
                total = score
            new = dict(h, tokens=key, own=score, total=total, frame_emo=list(h["frame_emo"]))
            if k:
                tok = torch.tensor([k])
                new["frames"] = h["frames"] + [t]
                new["tok_emo"] = h["tok_emo"] + [emo]
                new["tok_pred"], new["tok_state"] = model.predictor.step(tok, h["tok_state"])
                if fent:
                    new["emo_pred"], new["emo_state"] = model.blank_predictor.step(tok, h["emo_state"])
                else:
                    new["emo_pred"] = new["tok_pred"]
                emo = int(model.emotion_logits(x, new["emo_pred"])[0].argmax())
            new["frame_emo"].append(emo)
            merged[key] = new
        hyps = [dict(h, score=h["total"]) for h in merged.values()]
    return sorted(hyps, key=lambda h: -h["score"]), merges


@pytest.mark.parametrize("variant", ["ent", "fent"])
@pytest.mark.parametrize("beam", [3, 4])
def test_batched_beam_equals_unbatched_reference(variant: str, beam: int) -> None:
    model = helpers.make_model(variant, seed=7, vocab=4)
    enc, lens = helpers.make_batch(seed=9)
    nbests = modified_beam_search_nbest(model, EncoderOutput(enc, lens), beam=beam)
    merges = 0
    with torch.no_grad():
        for b, n in enumerate(LENS):
            ref, n_merges = reference_beam(model, enc[b, :n], beam)
            merges += n_merges
            got = nbests[b]
            assert [tuple(h.tokens) for h in got] == [h["tokens"] for h in ref]
            assert [h.token_frames for h in got] == [h["frames"] for h in ref]
            assert [h.token_emotions for h in got] == [h["tok_emo"] for h in ref]
            assert [h.frame_emotions for h in got] == [h["frame_emo"] for h in ref]
            for h, r in zip(got, ref):
                assert h.score == pytest.approx(r["score"], abs=1e-5)
    assert merges > 0  # some hypotheses were merged


def brute_force(model: torch.nn.Module, enc: torch.Tensor, vocab: int) -> Dict[Tuple[int, ...], float]:
    """Log-probability of every token sequence, summed over all one-symbol-per-frame paths."""
    return brute_force_symbols(model, enc, vocab, max_symbols=1)


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_unpruned_beam_equals_brute_force_enumeration(variant: str) -> None:
    vocab, frames = 3, 5  # 3**5 paths, 63 token sequences
    model = helpers.make_model(variant, seed=6, vocab=vocab, blank_bias=0.0)
    enc, lens = helpers.make_batch(seed=8, lens=[frames])
    nbest = modified_beam_search_nbest(model, EncoderOutput(enc, lens), beam=100)[0]
    expected = brute_force(model, enc[0], vocab)
    assert len(nbest) == len(expected) == 63
    for h in nbest:
        assert h.score == pytest.approx(expected[tuple(h.tokens)], abs=1e-4)
    best = max(expected, key=expected.get)
    assert tuple(nbest[0].tokens) == best


def test_beam_search_rejects_bad_beam() -> None:
    model = helpers.make_model("ent")
    enc, lens = helpers.make_batch()
    with pytest.raises(ValueError, match="beam"):
        modified_beam_search(model, EncoderOutput(enc, lens), beam=0)
    with pytest.raises(TypeError, match="take the EncoderOutput of model.encode, got Tensor"):
        modified_beam_search_nbest(model, enc)  # loose tensors (the former API)
    with pytest.raises(ValueError, match=r"EncoderOutput\.lengths must lie in"):
        modified_beam_search(model, EncoderOutput(enc, lens + 1))


# ------------------------------------------------ several symbols per frame
@pytest.mark.parametrize("variant", ["ent", "fent"])
@pytest.mark.parametrize("symbols", [2, 3])
def test_beam_one_equals_greedy_with_several_symbols_per_frame(variant: str, symbols: int) -> None:
    model = helpers.make_model(variant, seed=1, blank_bias=0.0)
    enc, lens = helpers.make_batch(seed=12)
    greedy = greedy_search(model, EncoderOutput(enc, lens), max_symbols_per_frame=symbols)
    beam = modified_beam_search(model, EncoderOutput(enc, lens), beam=1, max_symbols_per_frame=symbols)
    assert any(max(collections.Counter(g.token_frames).values(), default=0) > 1 for g in greedy)
    for g, h in zip(greedy, beam):
        assert h.tokens == g.tokens and h.token_frames == g.token_frames
        assert h.token_emotions == g.token_emotions and h.frame_emotions == g.frame_emotions
        assert h.score == pytest.approx(g.score, abs=1e-5)


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_several_symbols_nbest_follows_the_lattice_and_batches(variant: str) -> None:
    model = helpers.make_model(variant, seed=2, blank_bias=0.0)
    enc, lens = helpers.make_batch(seed=4)
    nbests = modified_beam_search_nbest(model, EncoderOutput(enc, lens), beam=4, max_symbols_per_frame=2)
    dense = 0
    for b, nbest in enumerate(nbests):
        assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)
        for h in nbest:
            path_score = helpers.check_against_lattice(model, enc[b, : LENS[b]], h, max_symbols=2)
            assert h.score >= path_score - 1e-5
            dense += max(collections.Counter(h.token_frames).values(), default=0) == 2
        alone = modified_beam_search_nbest(model, EncoderOutput(enc[b : b + 1, : LENS[b]].clone(), lens[b : b + 1]),
                                           beam=4, max_symbols_per_frame=2)[0]
        assert [h.tokens for h in nbest] == [h.tokens for h in alone]
        assert [h.frame_emotions for h in nbest] == [h.frame_emotions for h in alone]
    assert dense > 0  # some hypotheses do emit two tokens at a frame


def brute_force_symbols(model: torch.nn.Module, enc: torch.Tensor, vocab: int, max_symbols: int) -> Dict[Tuple[int, ...], float]:
    """Log-probability of every token sequence over all paths with at most ``max_symbols`` tokens per frame.

    A frame emits 0..max_symbols tokens; fewer than ``max_symbols`` end with
    a blank, exactly ``max_symbols`` move on without one.
    """
    frame_options = [()]
    for n in range(1, max_symbols + 1):
        frame_options += list(itertools.product(range(1, vocab), repeat=n))
    lattices: Dict[Tuple[int, ...], torch.Tensor] = {}
    sums: Dict[Tuple[int, ...], float] = {}
    for path in itertools.product(frame_options, repeat=enc.size(0)):
        tokens = tuple(k for frame in path for k in frame)
        if tokens not in lattices:
            with torch.no_grad():
                tok_pred, emo_pred = model.predict(torch.tensor([tokens], dtype=torch.long).reshape(1, -1))
                logits = model.token_logits(enc[:, None], tok_pred[0][None], emo_pred[0][None])
            lattices[tokens] = torch.log_softmax(logits.double(), dim=-1)
        lp, u, total = lattices[tokens], 0, 0.0
        for t, frame in enumerate(path):
            for k in frame:
                total += float(lp[t, u, k])
                u += 1
            if len(frame) < max_symbols:
                total += float(lp[t, u, 0])
        sums[tokens] = float(torch.logaddexp(torch.tensor(sums.get(tokens, -math.inf)), torch.tensor(total)))
    return sums


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_unpruned_several_symbols_beam_equals_brute_force(variant: str) -> None:
    vocab, frames = 3, 3  # 7 choices per frame, 343 paths
    model = helpers.make_model(variant, seed=6, vocab=vocab, blank_bias=0.0)
    enc, lens = helpers.make_batch(seed=8, lens=[frames])
    nbest = modified_beam_search_nbest(model, EncoderOutput(enc, lens), beam=1000, max_symbols_per_frame=2)[0]
    expected = brute_force_symbols(model, enc[0], vocab, 2)
    assert len(nbest) == len(expected)
    for h in nbest:
        assert h.score == pytest.approx(expected[tuple(h.tokens)], abs=1e-4)


# ------------------------------------------------------------ LM fusion
def _token_lm(vocab: int, favourite: int):
    """A bigram LM over tokens '1'..'V-2' (V-1 is <sos/eos>) whose text repeats ``favourite``."""
    from ent.lm.ngram import NgramScorer, train_ngram

    names = [str(k) for k in range(1, vocab - 1)]
    lm = train_ngram([[str(favourite)] * n for n in range(1, 6)], 2, vocabulary=names)
    return lm, NgramScorer(lm, ["<blank>"] + names + ["<sos/eos>"])


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_lm_fusion_adds_weighted_lm_score_and_bonus(variant: str) -> None:
    model = helpers.make_model(variant, seed=3, blank_bias=0.0)
    enc, lens = helpers.make_batch(seed=5)
    plain = modified_beam_search(model, EncoderOutput(enc, lens), beam=1, max_symbols_per_frame=2)
    favourite = 1 + max(range(model.vocab_size - 2),
                        key=lambda k: -sum(h.tokens.count(k + 1) for h in plain))  # the rarest token
    lm, scorer = _token_lm(model.vocab_size, favourite)
    weight, bonus = 0.7, 0.3
    fused = modified_beam_search(model, EncoderOutput(enc, lens), beam=1, lm=scorer, lm_weight=weight,
                                 token_bonus=bonus, max_symbols_per_frame=2)
    assert sum(h.tokens.count(favourite) for h in fused) > sum(h.tokens.count(favourite) for h in plain)
    for b, h in enumerate(fused):
        path = helpers.check_against_lattice(model, enc[b, : LENS[b]], h, max_symbols=2)
        lm_score = lm.sentence_logprob([str(k) for k in h.tokens])
        assert h.score == pytest.approx(path + weight * lm_score + bonus * len(h.tokens), abs=1e-4)
    # Weight 0 is no LM at all.
    zero = modified_beam_search(model, EncoderOutput(enc, lens), beam=1, lm=scorer, lm_weight=0.0,
                                max_symbols_per_frame=2)
    assert [h.tokens for h in zero] == [h.tokens for h in plain]
    with pytest.raises(ValueError, match="lm_weight"):
        modified_beam_search(model, EncoderOutput(enc, lens), lm=scorer, lm_weight=-1.0)
