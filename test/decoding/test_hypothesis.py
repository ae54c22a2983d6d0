"""Tests of word times and emotions, utterance emotion and emotional segments."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

import pytest
import torch

from ent.decoding import (
    Hypothesis,
    Segment,
    frames_to_segments,
    greedy_search,
    lattice_utterance_emotion,
    utterance_emotion,
    words_with_times,
)
from ent.decoding.hypothesis import head_utterance_posteriors, vote_emotion
from ent.models.encoder_output import EncoderOutput

EMOTIONS = ["neutral", "happy", "angry", "sad"]
WB = "\u2581"


class FakeTokenizer:
    """A token list tokenizer: "▁" marks word starts, as sentencepiece pieces."""

    def __init__(self, pieces: Sequence[str]) -> None:
        self.pieces = ["<blank>"] + list(pieces)

    def tokens(self, ids: Iterable[int]) -> List[str]:
        return [self.pieces[int(i)] for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join("".join(self.tokens(ids)).replace(WB, " ").split())

    def is_word_start(self, token_id: int) -> bool:
        return self.pieces[int(token_id)].startswith(WB)


BPE = FakeTokenizer([f"{WB}he", "llo", f"{WB}wor", "ld", f"{WB}a", "b"])  # ids 1..6
CHAR = FakeTokenizer([WB, "h", "i", "y", "o"])  # ids 1..5


def make_hyp(
    tokens: List[int],
    frames: List[int],
    emotions: List[int],
    num_frames: int,
    token_posteriors: Optional[torch.Tensor] = None,
    frame_posteriors: Optional[torch.Tensor] = None,
) -> Hypothesis:
    if frame_posteriors is None:
        frame_posteriors = torch.full((num_frames, 4), 0.25)
    return Hypothesis(
        tokens=tokens,
        token_frames=frames,
        token_emotions=emotions,
        frame_emotions=[0] * num_frames,
        frame_posteriors=frame_posteriors,
        score=0.0,
        token_posteriors=token_posteriors,
    )


# ------------------------------------------------------------------ words
def test_words_with_times_bpe_boundaries_times_and_votes() -> None:
    # "▁he llo | ▁wor ld | ▁a"
    hyp = make_hyp([1, 2, 3, 4, 5], [0, 1, 3, 5, 7], [1, 1, 2, 2, 0], num_frames=9)
    words = words_with_times(hyp, BPE, frame_shift=0.04, emotions=EMOTIONS)
    assert [w.text for w in words] == ["hello", "world", "a"]
    assert [w.tokens for w in words] == [[1, 2], [3, 4], [5]]
    assert [round(w.start, 6) for w in words] == [0.0, 0.12, 0.28]
    assert [round(w.end, 6) for w in words] == [0.08, 0.24, 0.32]
    assert [w.emotion for w in words] == ["happy", "angry", "neutral"]
    assert [w.emotion_id for w in words] == [1, 2, 0]


def test_first_token_without_word_boundary_starts_a_word() -> None:
    hyp = make_hyp([2, 6, 1], [2, 2, 4], [3, 3, 0], num_frames=6)
    words = words_with_times(hyp, BPE, frame_shift=0.02, emotions=EMOTIONS)
    assert [w.text for w in words] == ["llob", "he"]
    assert words[0].start == pytest.approx(0.04) and words[0].end == pytest.approx(0.06)
    assert words[0].emotion == "sad"


def test_char_tokens_lone_boundaries_belong_to_the_next_word() -> None:
    # ▁ h i ▁ ▁ y o  -> "hi" and "yo"; the empty group of a doubled ▁ is dropped
    hyp = make_hyp([1, 2, 3, 1, 1, 4, 5], [0, 1, 1, 2, 4, 5, 6], [0, 1, 1, 0, 0, 2, 2], num_frames=8)
    words = words_with_times(hyp, CHAR, frame_shift=0.04, emotions=EMOTIONS)
    assert [w.text for w in words] == ["hi", "yo"]
    assert words[0].tokens == [1, 2, 3] and words[0].emotion == "happy"
    assert words[1].tokens == [1, 4, 5] and words[1].emotion == "angry"
    assert words[1].start == pytest.approx(0.16) and words[1].end == pytest.approx(0.28)


def test_vote_ties_go_to_the_largest_summed_posterior() -> None:
    post = torch.tensor([[0.1, 0.6, 0.2, 0.1], [0.1, 0.1, 0.7, 0.1]])
    hyp = make_hyp([3, 4], [0, 1], [1, 2], num_frames=2, token_posteriors=post)
    assert words_with_times(hyp, BPE, 0.04, EMOTIONS)[0].emotion == "angry"  # 0.8 > 0.7
    post2 = torch.tensor([[0.1, 0.8, 0.0, 0.1], [0.1, 0.1, 0.7, 0.1]])
    hyp2 = make_hyp([3, 4], [0, 1], [1, 2], num_frames=2, token_posteriors=post2)
    assert words_with_times(hyp2, BPE, 0.04, EMOTIONS)[0].emotion == "happy"  # 0.9 > 0.7
    # Majority beats posterior mass.
    post3 = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.4, 0.3, 0.3], [0.0, 0.4, 0.3, 0.3]])
    assert vote_emotion([2, 1, 1], post3) == 1
    # Without token posteriors the frame posteriors at the token frames break the tie.
    frames = torch.tensor([[0.1, 0.1, 0.1, 0.7], [0.1, 0.1, 0.1, 0.7], [0.1, 0.8, 0.05, 0.05]])
    hyp3 = make_hyp([3, 4], [0, 2], [3, 1], num_frames=3, frame_posteriors=frames)
    assert words_with_times(hyp3, BPE, 0.04, EMOTIONS)[0].emotion == "happy"  # 0.9 > 0.75
    assert vote_emotion([3, 1]) == 1  # no posteriors: smallest id


def test_words_of_an_empty_hypothesis_and_bad_shift() -> None:
    hyp = make_hyp([], [], [], num_frames=3)
    assert words_with_times(hyp, BPE, 0.04, EMOTIONS) == []
    with pytest.raises(ValueError, match="frame_shift"):
        words_with_times(hyp, BPE, 0.0, EMOTIONS)


def test_hypothesis_checks_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        Hypothesis([1, 2], [0], [0, 0], [0], torch.zeros(1, 4), 0.0)
    with pytest.raises(ValueError, match="frame_posteriors"):
        Hypothesis([1], [0], [0], [0, 0], torch.zeros(1, 4), 0.0)
    with pytest.raises(ValueError, match="token_frames"):
        Hypothesis([1, 2], [1, 0], [0, 0], [0, 0], torch.zeros(2, 4), 0.0)
    with pytest.raises(ValueError, match="token_frames"):
        Hypothesis([1], [2], [0], [0, 0], torch.zeros(2, 4), 0.0)


def test_words_with_the_real_tokenizer(tmp_path: Path) -> None:
    from ent.text.tokenizer import Tokenizer, train_tokenizer

    train_tokenizer(["hello world", "hello there", "a world"], tmp_path / "char", token_type="char")
    tok = Tokenizer(tmp_path / "char.model", tmp_path / "tokens.txt")
    ids = tok.encode("hello world")
    hyp = make_hyp(ids, list(range(len(ids))), [1] * len(ids), num_frames=len(ids))
    words = words_with_times(hyp, tok, 0.04, EMOTIONS)
    assert [w.text for w in words] == ["hello", "world"]
    assert words[1].start == pytest.approx(0.04 * (len(ids) - 6))  # "▁world" is 6 char tokens
    assert words[1].end == pytest.approx(0.04 * len(ids))


# -------------------------------------------------------------- segments
def test_frames_to_segments_merges_runs_and_drops_neutral() -> None:
    segs = frames_to_segments([0, 1, 1, 0, 2, 2, 2, 3], 0.04, EMOTIONS)
    assert [s.emotion for s in segs] == ["happy", "angry", "sad"]
    assert [(round(s.start, 6), round(s.end, 6)) for s in segs] == [(0.04, 0.12), (0.16, 0.28), (0.28, 0.32)]
    assert all(isinstance(s, Segment) for s in segs)
    assert frames_to_segments([0, 0, 0], 0.02, EMOTIONS) == []
    assert frames_to_segments([], 0.02, EMOTIONS) == []
    # neutral need not be class 0
    segs = frames_to_segments([2, 2, 0], 0.5, ["happy", "sad", "calm"], neutral="calm")
    assert segs == [Segment(1.0, 1.5, "happy")]


# ------------------------------------------------------ utterance emotion
def test_lattice_rules() -> None:
    post = torch.tensor([[0.9, 0.05, 0.05, 0.0], [0.3, 0.6, 0.1, 0.0], [0.8, 0.0, 0.0, 0.2]])
    emo, pooled = lattice_utterance_emotion(post, neutral_id=0, rule="max", threshold=0.5)
    assert emo == 1 and torch.allclose(pooled, torch.tensor([0.9, 0.6, 0.1, 0.2]))
    emo, _ = lattice_utterance_emotion(post, neutral_id=0, rule="max", threshold=0.7)
    assert emo == 0  # no emotion reaches the threshold
    emo, pooled = lattice_utterance_emotion(post, neutral_id=0, rule="mean")
    assert emo == 0 and pooled[0] == pytest.approx(2.0 / 3.0)
    emo, pooled = lattice_utterance_emotion(torch.zeros(0, 4), neutral_id=2)
    assert emo == 2 and pooled.shape == (4,)
    with pytest.raises(ValueError, match="lattice rule"):
        lattice_utterance_emotion(post, rule="median")


def _helpers():
    spec = importlib.util.spec_from_file_location(
        "_decoding_greedy_helpers", Path(__file__).with_name("test_greedy.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_utterance_emotion_from_head_and_lattice(variant: str) -> None:
    helpers = _helpers()
    model = helpers.make_model(variant, seed=3)
    enc, lens = helpers.make_batch(seed=11)
    hyps = greedy_search(model, EncoderOutput(enc, lens))
    out = utterance_emotion(model, hyps, enc, lens, utt_emotion_from="head")
    # reference: the head on each utterance alone
    with torch.no_grad():
        for b, h in enumerate(hyps):
            text = torch.tensor([h.tokens], dtype=torch.long).reshape(1, -1)
            _, emo_pred = model.predict(text)
            n_tokens = torch.tensor([len(h.tokens)])
            logits = model.head(enc[b : b + 1, : helpers.LENS[b]], lens[b : b + 1], emo_pred, n_tokens)
            post = torch.softmax(logits, -1)[0]
            assert torch.allclose(out[b].scores, post, atol=1e-5)
            assert out[b].emotion_id == int(post.argmax())
            assert out[b].emotion == EMOTIONS[out[b].emotion_id]
    assert head_utterance_posteriors(model, hyps, enc, lens).shape == (len(hyps), 4)
    lat = utterance_emotion(model, hyps, utt_emotion_from="lattice", lattice_rule="mean")
    for h, u in zip(hyps, lat):
        assert u.emotion_id == int(h.frame_posteriors.mean(0).argmax())
    with pytest.raises(ValueError, match="enc_out"):
        utterance_emotion(model, hyps, utt_emotion_from="head")
    with pytest.raises(ValueError, match="source"):
        utterance_emotion(model, hyps, enc, lens, utt_emotion_from="words")
