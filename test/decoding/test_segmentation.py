"""Frame emotions by pieces: pause detection, cuts, stitching, and frames equal to decoding the pieces."""

import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

from ent.decoding.hypothesis import Hypothesis, with_frame_emotions
from ent.decoding.recognizer import DecodeOptions, EmotionRecognizer
from ent.decoding.segmentation import (
    frame_energy_db,
    pause_runs,
    piece_frames,
    split_at_pauses,
    stitch_frames,
)
from ent.features.fbank import Fbank
from ent.utils.errors import DataError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_recognizer import CharTokenizer, build_model, varied_wave  # noqa: E402

SR = 16000
ALIGN = 640  # 40 ms encoder frames


def tone(seconds: float, amp: float = 0.3, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def quiet(seconds: float, seed: int = 0) -> np.ndarray:
    """A faint noise floor (about -70 dBFS), not digital silence."""
    return (3e-4 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


# ---------------------------------------------------------------- detection
def test_frame_energy_of_a_tone_and_frame_count() -> None:
    energy = frame_energy_db(tone(1.0, amp=0.5))
    assert len(energy) == 1 + (SR - 400) // 160
    # mean square of a sine of amplitude a is a^2 / 2
    assert energy[5:-5] == pytest.approx(10 * np.log10(0.125), abs=0.05)
    assert len(frame_energy_db(np.zeros(100, dtype=np.float32))) == 1


def test_pause_runs_are_interior_long_and_quiet() -> None:
    loud, soft, sil = 0.0, -12.0, -60.0
    energy = np.array([sil] * 5 + [loud] * 10 + [sil] * 3 + [loud] * 10 + [sil] * 8 + [soft] * 4
                      + [loud] * 10 + [sil] * 6)
    # leading and trailing silence are not pauses; the 3-frame run is too short at min 4
    assert pause_runs(energy, min_frames=4) == [(28, 36)]
    assert pause_runs(energy, min_frames=3) == [(15, 18), (28, 36)]
    # at 10 dB the soft frames are pauses too and join the run after the silence
    assert pause_runs(energy, min_frames=4, pause_db=10.0) == [(28, 40)]
    assert pause_runs(np.full(20, loud), min_frames=1) == []
    assert pause_runs(np.array([]), min_frames=1) == []


def test_split_cuts_in_the_middle_of_long_pauses_only() -> None:
    parts = [quiet(0.2, 1), tone(1.0), quiet(0.3, 2), tone(0.8, freq=300), quiet(0.05, 3), tone(1.0, freq=500),
             quiet(0.2, 4)]
    wave = np.concatenate(parts)
    pause_mid = (0.2 + 1.0 + 0.15) * SR
    spans = split_at_pauses(wave, min_pause=0.15, min_duration=0.5, align=ALIGN)
    assert len(spans) == 2
    (s0, e0), (s1, e1) = spans
    assert s0 == 0 and e0 == s1 and e1 == len(wave)
    assert e0 % ALIGN == 0 and abs(e0 - pause_mid) <= ALIGN / 2 + 160
    # a shorter minimum pause also cuts the 50 ms gap
    spans = split_at_pauses(wave, min_pause=0.03, min_duration=0.5, align=ALIGN)
    assert len(spans) == 3 and all(e % ALIGN == 0 for _, e in spans[:-1])
    gap_mid = (0.2 + 1.0 + 0.3 + 0.8 + 0.025) * SR
    assert abs(spans[1][1] - gap_mid) <= ALIGN / 2 + 160
    # pieces shorter than min_duration are merged into the one before
    spans = split_at_pauses(wave, min_pause=0.03, min_duration=1.1, align=ALIGN)
    assert len(spans) == 2 and spans[0][1] == pytest.approx(gap_mid, abs=ALIGN / 2 + 160)
    # no pause long enough, or nothing but silence: one piece
    assert split_at_pauses(wave, min_pause=0.5, min_duration=0.5, align=ALIGN) == [(0, len(wave))]
    assert split_at_pauses(quiet(2.0), min_pause=0.1, min_duration=0.5, align=ALIGN) == [(0, 2 * SR)]
    with pytest.raises(ValueError, match="min_pause"):
        split_at_pauses(wave, min_pause=0.0, min_duration=0.5, align=ALIGN)


def test_split_merges_a_short_first_piece_into_the_next() -> None:
    wave = np.concatenate([tone(0.2), quiet(0.3), tone(1.0), quiet(0.3, 1), tone(1.0)])
    spans = split_at_pauses(wave, min_pause=0.15, min_duration=0.5, align=ALIGN)
    assert len(spans) == 2 and spans[0][0] == 0
    assert spans[0][1] == pytest.approx((0.2 + 0.3 + 1.0 + 0.15) * SR, abs=ALIGN / 2 + 160)


# ---------------------------------------------------------------- stitching
def hyp(tokens: List[int], frames: List[int], emotions: List[int], num_frames: int, score: float) -> Hypothesis:
    post = torch.softmax(torch.randn(num_frames, 4), dim=-1)
    return Hypothesis(tokens, frames, [emotions[f] for f in frames], emotions, post, score,
                      token_posteriors=post[frames])


def test_stitch_frames_cuts_and_pads_each_piece() -> None:
    torch.manual_seed(0)
    a = hyp([3, 4], [0, 2], [0, 0, 1, 1, 1], num_frames=5, score=-1.0)  # covers 4 frames: one cut off
    b = hyp([5, 6, 7], [0, 0, 2], [2, 2, 3], num_frames=3, score=-2.5)  # covers 5 frames: two padded
    emotions, post = stitch_frames([a, b], [4, 5])
    assert emotions == [0, 0, 1, 1, 2, 2, 3, 3, 3]
    assert torch.equal(post[:4], a.frame_posteriors[:4])
    assert torch.equal(post[4:7], b.frame_posteriors)
    assert torch.equal(post[7], b.frame_posteriors[2]) and torch.equal(post[8], b.frame_posteriors[2])
    with pytest.raises(ValueError, match="pieces"):
        stitch_frames([a, b], [4])
    with pytest.raises(ValueError, match="at least one frame"):
        stitch_frames([a, b], [4, 0])


def test_with_frame_emotions_gives_tokens_their_frames_emotions() -> None:
    torch.manual_seed(1)
    h = hyp([3, 4, 5], [0, 2, 2], [0, 0, 0, 0], num_frames=4, score=-1.5)
    post = torch.softmax(torch.randn(4, 4), dim=-1)
    out = with_frame_emotions(h, [1, 1, 3, 2], post)
    assert out.tokens == h.tokens and out.token_frames == h.token_frames and out.score == h.score
    assert out.frame_emotions == [1, 1, 3, 2] and torch.equal(out.frame_posteriors, post)
    assert out.token_emotions == [1, 3, 3]
    assert torch.equal(out.token_posteriors, post[[0, 2, 2]])
    empty = with_frame_emotions(hyp([], [], [0, 0], num_frames=2, score=0.0), [2, 2], post[:2])
    assert empty.token_emotions == [] and empty.token_posteriors.shape == (0, 4)
    with pytest.raises(ValueError, match="3 frame emotions"):
        with_frame_emotions(h, [1, 1, 3], post)
    with pytest.raises(ValueError, match="3 frame posteriors"):
        with_frame_emotions(h, [1, 1, 3, 2], post[:3])
    # without posteriors the hypothesis keeps its own (as smoothing does)
    kept = with_frame_emotions(h, [1, 1, 3, 2])
    assert kept.token_emotions == [1, 3, 3] and kept.frame_emotions == [1, 1, 3, 2]
    assert kept.frame_posteriors is h.frame_posteriors and kept.token_posteriors is h.token_posteriors


def test_piece_frames() -> None:
    assert piece_frames([(0, 1280), (1280, 3200), (3200, 4000)], ALIGN, total=6) == [2, 3, 1]
    assert piece_frames([(0, 4000)], ALIGN, total=6) == [6]
    with pytest.raises(ValueError, match="frame_shift"):
        piece_frames([(0, 1280), (1280, 3200), (3200, 3300)], ALIGN, total=5)


# ---------------------------------------------------------------- decoding
def pause_wave(seed: int) -> np.ndarray:
    """Two stretches of tones and noise around a 0.4 s pause (with a faint floor, no digital silence)."""
    parts = [quiet(0.1, seed), loud_wave(1.6, seed), quiet(0.4, seed + 1), loud_wave(1.3, seed + 2), quiet(0.1, seed + 3)]
    return np.concatenate(parts)


def loud_wave(seconds: float, seed: int) -> np.ndarray:
    """varied_wave without its near-silent stretches (so that the only pause is the one put in)."""
    wave = varied_wave(seconds, seed)
    return np.where(np.abs(wave) < 0.01, 0.2 * np.sign(wave + 1e-9), wave).astype(np.float32)


@pytest.fixture(scope="module")
def recognizers(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, EmotionRecognizer]:
    stats = tmp_path_factory.mktemp("seg") / "stats.npz"
    wave = pause_wave(0)
    feats = Fbank().eval().extract(torch.from_numpy(wave)).double().numpy()
    np.savez(stats, count=np.int64(len(feats)), sum=feats.sum(0), sum_square=(feats * feats).sum(0))
    tok = CharTokenizer()
    return {v: EmotionRecognizer(build_model(v, stats, seed=s), tok, DecodeOptions(search="greedy"))
            for v, s in (("ent", 0), ("fent", 1))}


@pytest.mark.parametrize("variant", ["ent", "fent"])
@pytest.mark.parametrize("search", ["greedy", "modified_beam_search"])
def test_frame_emotions_are_those_of_the_pieces(recognizers: Dict[str, EmotionRecognizer], variant: str,
                                                search: str) -> None:
    base = recognizers[variant]
    model, tok = base.model, base.tokenizer
    align = int(round(model.frame_shift * SR))
    by_pieces = EmotionRecognizer(model, tok, DecodeOptions(search=search, beam=3, frame_emotion_pause=0.2))
    plain = EmotionRecognizer(model, tok, DecodeOptions(search=search, beam=3))
    greedy = EmotionRecognizer(model, tok, DecodeOptions(search="greedy"))
    waves = [pause_wave(0), loud_wave(2.0, 7), pause_wave(10)[: 3 * SR]]
    results = by_pieces.decode(["a", "b", "c"], waves)
    whole = plain.decode(["a", "b", "c"], waves)
    changed = 0
    for wave, res, ref in zip(waves, results, whole):
        # words, times and the utterance emotion come from the whole utterance
        assert res.tokens == ref.tokens and res.score == ref.score and res.emotion == ref.emotion
        assert [(w.text, w.start, w.end) for w in res.words] == [(w.text, w.start, w.end) for w in ref.words]
        spans = split_at_pauses(wave, 0.2, 0.5, align)
        if len(spans) == 1:  # no pause: the utterance keeps its own frames
            assert res == ref
            continue
        pieces = greedy.decode([f"p{i}" for i in range(len(spans))], [wave[s:e] for s, e in spans])
        expected: List[str] = []
        for piece, count in zip(pieces, piece_frames(spans, align, len(ref.frame_emotions))):
            frames = piece.frame_emotions[:count]
            expected += frames + frames[-1:] * (count - len(frames))
        assert res.frame_emotions == expected
        # each word's emotion is one of its tokens' frames' (the majority)
        for word in res.words:
            first, last = round(word.start / model.frame_shift), round(word.end / model.frame_shift)
            assert word.emotion in expected[first:last]
        changed += res.frame_emotions != ref.frame_emotions
    assert [len(split_at_pauses(w, 0.2, 0.5, align)) for w in waves] == [2, 1, 2]
    assert changed > 0  # the pieces' frames differ from the whole utterance's, so the check can fail


def test_pieces_take_their_speakers_statistics(recognizers: Dict[str, EmotionRecognizer]) -> None:
    base = recognizers["fent"]
    model = base.model
    waves = [pause_wave(0), pause_wave(20)]
    dim = model.frontend.output_size()
    cmvn = [np.stack([np.full(dim, m, np.float32), np.full(dim, s, np.float32)]) for m, s in ((1.0, 3.0), (-2.0, 5.0))]
    by_pieces = EmotionRecognizer(model, base.tokenizer, DecodeOptions(search="greedy", frame_emotion_pause=0.2),
                                  speaker_cmvn=True)
    plain = EmotionRecognizer(model, base.tokenizer, DecodeOptions(search="greedy"), speaker_cmvn=True)
    results = by_pieces.decode(["a", "b"], waves, cmvn=cmvn)
    align = int(round(model.frame_shift * SR))
    for wave, stats, res in zip(waves, cmvn, results):
        spans = split_at_pauses(wave, 0.2, 0.5, align)
        pieces = plain.decode(["p0", "p1"], [wave[s:e] for s, e in spans], cmvn=[stats, stats])
        count = piece_frames(spans, align, len(res.frame_emotions))[0]
        assert res.frame_emotions[:count] == (pieces[0].frame_emotions + pieces[0].frame_emotions[-1:] * count)[:count]
    # the statistics matter, so the check above can fail
    other = by_pieces.decode(["a"], waves[:1], cmvn=cmvn[1:])
    assert other[0].frame_emotions != results[0].frame_emotions


def test_decode_options_check_the_pieces() -> None:
    with pytest.raises(ValueError, match="frame_emotion_pause"):
        DecodeOptions(frame_emotion_pause=-0.1)
    with pytest.raises(ValueError, match="frame_emotion_min_piece"):
        DecodeOptions(frame_emotion_pause=0.2, frame_emotion_min_piece=0.1)
    with pytest.raises(DataError, match="frame_emotion_min_piece"):
        DecodeOptions.from_yaml(None, {"frame_emotion_min_piece": 0.0})
