"""Tests of batched greedy search: equality with a per-utterance reference, padding, lattice consistency.

The model builders and checkers defined here are also used by
``test_beam_search.py`` (loaded from this file's path).
"""

from __future__ import annotations

import collections
import math
from typing import Dict, List, Tuple

import pytest
import torch
from torch import Tensor, nn

from ent.decoding import Hypothesis, greedy_search
from ent.models.encoder_output import EncoderOutput
from ent.models.transducer import EmotionTransducer
from ent.nets.encoder import ConformerEncoder
from ent.nets.predictor import RNNPredictor, StatelessPredictor

EMOTIONS = ["neutral", "happy", "angry", "sad"]
ENC_DIM = 16
LENS = [12, 9, 7, 3, 1]


class WaveFrames(nn.Module):
    """Trivial frontend: (B, N) waves -> (B, N // 80, 80) frames."""

    frame_shift_ms = 5.0  # 80 samples at 16 kHz

    def forward(self, speech: Tensor, lens: Tensor) -> Tuple[Tensor, Tensor]:
        n = speech.size(1) // 80 * 80
        return speech[:, :n].reshape(speech.size(0), n // 80, 80), lens // 80


def make_model(variant: str, seed: int = 0, vocab: int = 6, blank_bias: float = 2.5) -> EmotionTransducer:
    """A tiny random ENT/FENT whose joints are sharp enough to emit varied symbols and emotions."""
    torch.manual_seed(seed)
    encoder = ConformerEncoder(
        80, num_blocks=1, hidden_size=ENC_DIM, linear_size=32, heads=2, conv_mod_kernel_size=3, conv_size=4,
        dropout_rate=0.0, att_dropout_rate=0.0, pos_wise_dropout_rate=0.0,
    )
    model = EmotionTransducer(
        vocab, EMOTIONS, WaveFrames(), None, None, encoder, RNNPredictor(vocab, 8, 12),
        blank_predictor=RNNPredictor(vocab, 8, 12) if variant == "fent" else None,
        variant=variant, joint_conf={"dim": 16},
    )
    with torch.no_grad():
        if variant == "ent":
            joints = [model.joint, model.emotion_joint]
            model.joint.lin_out.bias[0] += blank_bias
        else:
            joints = [model.blank_joint, model.vocab_joint, model.emotion_joint]
            model.blank_joint.lin_out.bias[0] += blank_bias
        for joint in joints:
            joint.lin_out.weight.mul_(4.0)
    return model.eval()


def make_batch(seed: int = 100, lens: List[int] = LENS) -> Tuple[Tensor, Tensor]:
    """Random encoder outputs (B, T, D) with loud garbage in the padding frames, and lengths (B,)."""
    gen = torch.Generator().manual_seed(seed)
    enc = torch.randn(len(lens), max(lens), ENC_DIM, generator=gen)
    for b, n in enumerate(lens):
        enc[b, n:] = 100.0 * torch.randn(max(lens) - n, ENC_DIM, generator=gen)
    return enc, torch.tensor(lens)


def emo_predictor(model: EmotionTransducer) -> nn.Module:
    """The predictor the emotion branch reads (ENT: the token predictor; FENT: the blank predictor)."""
    return model.predictor if model.variant == "ent" else model.blank_predictor


def reference_greedy(model: EmotionTransducer, enc: Tensor, max_symbols: int) -> Dict[str, object]:
    """Slow, straightforward greedy search of one utterance with the model's own methods.

    Args:
        enc: Encoder outputs of the utterance. (T_b, D)
    """
    one = torch.zeros(1, dtype=torch.long)
    tok_pred, tok_state = model.predictor.step(one, model.predictor.init_state(1))
    emo_net = emo_predictor(model)
    if model.variant == "ent":
        emo_pred, emo_state = tok_pred, None
    else:
        emo_pred, emo_state = emo_net.step(one, emo_net.init_state(1))
    out: Dict[str, list] = {k: [] for k in ("tokens", "frames", "tok_emo", "frame_emo", "frame_post")}
    score = 0.0
    for t in range(enc.size(0)):
        x = enc[t : t + 1]
        emitted = 0
        while True:
            emo_logits = model.emotion_logits(x, emo_pred)[0]
            if emitted == max_symbols:  # frame left after max_symbols tokens
                break
            logp = torch.log_softmax(model.token_logits(x, tok_pred, emo_pred)[0], dim=-1)
            k = int(logp.argmax())
            score += float(logp[k])
            if k == 0:
                break
            out["tokens"].append(k)
            out["frames"].append(t)
            out["tok_emo"].append(int(emo_logits.argmax()))
            emitted += 1
            tok = torch.tensor([k])
            tok_pred, tok_state = model.predictor.step(tok, tok_state)
            if model.variant == "ent":
                emo_pred = tok_pred
            else:
                emo_pred, emo_state = emo_net.step(tok, emo_state)
        out["frame_emo"].append(int(emo_logits.argmax()))
        out["frame_post"].append(torch.softmax(emo_logits, dim=-1))
    return dict(out, score=score)


def check_against_lattice(model: EmotionTransducer, enc: Tensor, hyp: Hypothesis, max_symbols: int) -> float:
    """Check a hypothesis' emotions against the full lattices of its token sequence.

    Token ``i`` (emitted at frame ``t_i``) has the emotion of node ``(t_i, i)``;
    frame ``t`` that of node ``(t, u_t)``, ``u_t`` = tokens emitted at frames
    ``<= t``; the score sums the token log-probs and the blank of every frame
    left with fewer than ``max_symbols`` tokens.

    Args:
        enc: Encoder outputs of the utterance. (T_b, D)

    Returns:
        The score of the hypothesis' path computed from the lattice.
    """
    assert len(hyp.frame_emotions) == enc.size(0) == hyp.frame_posteriors.size(0)
    text = torch.tensor([hyp.tokens], dtype=torch.long).reshape(1, -1)
    with torch.no_grad():
        tok_pred, emo_pred = model.predict(text)
        enc4 = enc.unsqueeze(0).unsqueeze(2)
        logits = model.token_logits(enc4, tok_pred.unsqueeze(1), emo_pred.unsqueeze(1))
        logp = torch.log_softmax(logits, -1)[0]  # (T, U+1, V)
        emo = model.emotion_logits(enc4, emo_pred.unsqueeze(1))[0]  # (T, U+1, C)
    per_frame = collections.Counter(hyp.token_frames)
    assert hyp.token_frames == sorted(hyp.token_frames)
    assert all(c <= max_symbols for c in per_frame.values())
    score = 0.0
    for i, (k, t) in enumerate(zip(hyp.tokens, hyp.token_frames)):
        assert hyp.token_emotions[i] == int(emo[t, i].argmax()), ("token", i)
        score += float(logp[t, i, k])
    u = 0
    for t in range(enc.size(0)):
        u += per_frame.get(t, 0)
        assert hyp.frame_emotions[t] == int(emo[t, u].argmax()), ("frame", t)
        assert torch.allclose(hyp.frame_posteriors[t], torch.softmax(emo[t, u], -1), atol=1e-5)
        if per_frame.get(t, 0) < max_symbols:
            score += float(logp[t, u, 0])
    return score


# ---------------------------------------------------------------------- tests
@pytest.mark.parametrize("variant", ["ent", "fent"])
@pytest.mark.parametrize("max_symbols", [1, 3])
def test_batched_greedy_equals_reference(variant: str, max_symbols: int) -> None:
    model = make_model(variant)
    enc, lens = make_batch()
    hyps = greedy_search(model, EncoderOutput(enc, lens), max_symbols_per_frame=max_symbols)
    assert len(hyps) == len(LENS)
    with torch.no_grad():
        for b, n in enumerate(LENS):
            ref = reference_greedy(model, enc[b, :n], max_symbols)
            h = hyps[b]
            assert h.tokens == ref["tokens"], b
            assert h.token_frames == ref["frames"], b
            assert h.token_emotions == ref["tok_emo"], b
            assert h.frame_emotions == ref["frame_emo"], b
            assert len(h.frame_emotions) == n and h.frame_posteriors.shape == (n, len(EMOTIONS))
            assert torch.allclose(h.frame_posteriors, torch.stack(ref["frame_post"]), atol=1e-5)
            assert h.token_posteriors is not None and h.token_posteriors.shape == (len(h.tokens), 4)
            assert h.score == pytest.approx(ref["score"], abs=1e-4)


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_batched_greedy_equals_one_at_a_time(variant: str) -> None:
    model = make_model(variant, seed=1)
    enc, lens = make_batch(seed=7)
    batched = greedy_search(model, EncoderOutput(enc, lens))
    for b, n in enumerate(LENS):
        alone = greedy_search(model, EncoderOutput(enc[b : b + 1, :n].clone(), lens[b : b + 1]))[0]
        assert batched[b].tokens == alone.tokens
        assert batched[b].token_frames == alone.token_frames
        assert batched[b].token_emotions == alone.token_emotions
        assert batched[b].frame_emotions == alone.frame_emotions
        assert batched[b].score == pytest.approx(alone.score, abs=1e-4)


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_test_setting_exercises_every_branch(variant: str) -> None:
    """The random models used here emit tokens and blanks, hit the symbol limit and vary emotions."""
    for seed in (0, 1):
        model = make_model(variant, seed=seed)
        enc, lens = make_batch(seed=100 if seed == 0 else 7)
        hyps = greedy_search(model, EncoderOutput(enc, lens), max_symbols_per_frame=3)
        counts = [collections.Counter(h.token_frames) for h in hyps]
        n_tokens = sum(len(h.tokens) for h in hyps)
        assert 0 < n_tokens
        assert any(c.get(t, 0) == 3 for c, n in zip(counts, LENS) for t in range(n))  # limit reached
        assert any(c.get(t, 0) < 3 for c, n in zip(counts, LENS) for t in range(n))  # blank emitted
        assert len({e for h in hyps for e in h.frame_emotions}) >= 2


@pytest.mark.parametrize("variant", ["ent", "fent"])
@pytest.mark.parametrize("max_symbols", [1, 2, 3])
def test_greedy_path_matches_the_full_lattices(variant: str, max_symbols: int) -> None:
    model = make_model(variant, seed=2)
    enc, lens = make_batch(seed=3)
    for b, h in enumerate(greedy_search(model, EncoderOutput(enc, lens), max_symbols_per_frame=max_symbols)):
        path_score = check_against_lattice(model, enc[b, : LENS[b]], h, max_symbols)
        assert h.score == pytest.approx(path_score, abs=1e-4)


def test_greedy_from_waveforms_batch_equals_single() -> None:
    """End to end: encoder outputs of a padded wave batch decode like each wave alone."""
    model = make_model("ent", seed=4)
    model.train()  # greedy_search switches to eval and restores the mode
    gen = torch.Generator().manual_seed(5)
    n_samples = [80 * 64, 80 * 40, 80 * 23]
    speech = torch.zeros(3, max(n_samples))
    for b, n in enumerate(n_samples):
        speech[b, :n] = torch.randn(n, generator=gen)
    speech_lens = torch.tensor(n_samples)
    model.eval()
    with torch.no_grad():
        out = model.encode(speech, speech_lens)
    model.train()
    batched = greedy_search(model, out)
    assert model.training
    model.eval()
    for b, n in enumerate(n_samples):
        with torch.no_grad():
            alone_out = model.encode(speech[b : b + 1, :n], speech_lens[b : b + 1])
        alone = greedy_search(model, alone_out)[0]
        assert len(batched[b].frame_emotions) == int(out.lengths[b]) == int(alone_out.lengths[0])
        assert batched[b].tokens == alone.tokens
        assert batched[b].frame_emotions == alone.frame_emotions


def test_stateless_predictors_batched_equals_reference() -> None:
    """The predictor states are handled through the Predictor interface only (any predictor works)."""
    base = make_model("fent", seed=5)
    torch.manual_seed(5)
    model = EmotionTransducer(
        6, EMOTIONS, WaveFrames(), None, None, base.encoder, StatelessPredictor(6, 12, context_size=2),
        blank_predictor=StatelessPredictor(6, 10, context_size=1), variant="fent", joint_conf={"dim": 16},
    ).eval()
    enc, lens = make_batch(seed=6)
    hyps = greedy_search(model, EncoderOutput(enc, lens), max_symbols_per_frame=2)
    assert sum(len(h.tokens) for h in hyps) > 0
    with torch.no_grad():
        for b, n in enumerate(LENS):
            ref = reference_greedy(model, enc[b, :n], 2)
            assert hyps[b].tokens == ref["tokens"] and hyps[b].token_frames == ref["frames"]
            assert hyps[b].frame_emotions == ref["frame_emo"] and hyps[b].token_emotions == ref["tok_emo"]


def test_greedy_rejects_bad_arguments() -> None:
    model = make_model("ent")
    enc, lens = make_batch()
    with pytest.raises(ValueError, match="max_symbols_per_frame"):
        greedy_search(model, EncoderOutput(enc, lens), max_symbols_per_frame=0)
    with pytest.raises(ValueError, match=r"EncoderOutput\.lengths must lie in \[0, 12\]"):
        greedy_search(model, EncoderOutput(enc, lens + 1))
    with pytest.raises(ValueError, match=r"EncoderOutput\.lengths must have shape \(5,\)"):
        greedy_search(model, EncoderOutput(enc, lens[:-1]))
    with pytest.raises(ValueError, match=r"EncoderOutput\.enc must have shape \(B, T, D_e\)"):
        greedy_search(model, EncoderOutput(enc[0], lens))
    with pytest.raises(TypeError, match="take the EncoderOutput of model.encode, got Tensor"):
        greedy_search(model, enc)  # loose tensors (the former API)
    with pytest.raises(ValueError, match=r"enc_blank must have the shape of EncoderOutput\.enc \(5, 12, 16\)"):
        greedy_search(make_model("fent"), EncoderOutput(enc, lens, enc[:, :-1]))


def test_reference_scores_are_log_probabilities() -> None:
    """Sanity of the reference itself: a path's score is a finite negative log-probability."""
    model = make_model("fent")
    enc, _ = make_batch()
    with torch.no_grad():
        ref = reference_greedy(model, enc[0, : LENS[0]], 3)
    assert math.isfinite(ref["score"]) and ref["score"] < 0
