"""Long audio: causal cuts, piece-by-piece decoding stitched in utterance time, bounded streaming."""

import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch

from ent.decoding.long_audio import PieceSplitter, ResultStitcher, split_long_audio
from ent.decoding.recognizer import DecodeOptions, EmotionRecognizer
from ent.decoding.streaming import StreamingSession, decode_stream
from ent.decoding.writer import DecodeResult
from ent.features.fbank import Fbank
from ent.utils.errors import DataError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_recognizer import EMOTIONS, WAVE, CharTokenizer, build_model, varied_wave  # noqa: E402

SR = 16000
ALIGN = 960  # samples per encoder frame of the tiny model (60 ms)
LONG = dict(long_audio_max=2.0, long_audio_min=0.8, long_audio_pause=0.1)
LONG_WAVE = varied_wave(7.0, seed=4)  # cut at pauses, once at the maximum, and a last piece of 0.16 s


def long_spans(wave: np.ndarray) -> List[Tuple[int, int]]:
    return split_long_audio(wave, LONG["long_audio_max"], LONG["long_audio_min"], LONG["long_audio_pause"], ALIGN)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, torch.nn.Module]:
    stats = tmp_path_factory.mktemp("long") / "stats.npz"
    feats = Fbank().eval().extract(torch.from_numpy(WAVE)).double().numpy()
    np.savez(stats, count=np.int64(len(feats)), sum=feats.sum(0), sum_square=(feats * feats).sum(0))
    return {"ent": build_model("ent", stats, seed=0), "fent": build_model("fent", stats, seed=1)}


def recognizer(model: torch.nn.Module, **options) -> EmotionRecognizer:
    return EmotionRecognizer(model, CharTokenizer(), DecodeOptions(**{"search": "greedy", **options}))


def speech_with_pauses(parts: List[float], pause: float, seed: int = 0) -> np.ndarray:
    """Noise bursts of the given lengths (s) separated by digital silence of ``pause`` s."""
    rng = np.random.default_rng(seed)
    out = []
    for k, seconds in enumerate(parts):
        if k:
            out.append(np.zeros(int(pause * SR), dtype=np.float32))
        out.append((0.3 * rng.standard_normal(int(seconds * SR))).astype(np.float32))
    return np.concatenate(out)


def pad(wave: np.ndarray, rec: EmotionRecognizer) -> np.ndarray:
    """A piece shorter than the encoder needs, padded with silence (as decode_long does)."""
    return np.pad(wave, (0, max(0, rec.min_samples - len(wave))))


# ------------------------------------------------------------------ splitter
def test_cuts_fall_in_pauses_after_the_minimum_and_hard_cuts_at_the_maximum() -> None:
    wave = speech_with_pauses([0.7, 0.8, 1.5, 0.5, 4.0], pause=0.3)
    spans = split_long_audio(wave, max_s=3.0, min_s=1.0, pause_s=0.2, align=ALIGN)
    starts = [s for s, _ in spans]
    assert spans[0][0] == 0 and spans[-1][1] == len(wave)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert all(s % ALIGN == 0 for s in starts)
    # pause ends: 0.7+0.3=1.0, 2.1, 3.9, 4.7 s; the first pause comes before the minimum piece
    gaps = [(0.7, 1.0), (1.8, 2.1), (3.6, 3.9), (4.4, 4.7)]
    in_gap = [any(a * SR <= c <= b * SR for a, b in gaps) for c in starts[1:]]
    # a cut inside the second pause (the first piece is 1 s long by then), then inside the third one
    assert in_gap[:2] == [True, True] and 1.8 * SR <= starts[1] <= 2.1 * SR and 3.6 * SR <= starts[2] <= 3.9 * SR
    # the fourth pause comes before the minimum of the third piece; then 4 s of noise without a
    # pause: a hard cut 3 s (50 frames) after the last cut
    assert all(e - s <= 3.0 * SR for s, e in spans)
    assert starts[3] - starts[2] == 3 * SR and not in_gap[2] and len(spans) == 4


def test_cuts_do_not_depend_on_how_the_audio_arrives() -> None:
    wave = LONG_WAVE
    whole = PieceSplitter(2.0, 0.8, 0.1, ALIGN).accept(wave)
    assert len(whole) >= 4  # cuts at pauses and a hard cut
    rng = np.random.default_rng(1)
    splitter, cuts, pos = PieceSplitter(2.0, 0.8, 0.1, ALIGN), [], 0
    while pos < len(wave):
        n = int(rng.choice([0, 1, 159, 960, 4001, 20000, 50000]))
        cuts += splitter.accept(wave[pos: pos + n])
        pos += n
    assert cuts == whole
    assert [s for s, _ in long_spans(wave)][1:] == whole


def test_piece_length_options_are_checked() -> None:
    for bad in (dict(long_audio_max=-1.0), dict(long_audio_pause=0.0), dict(long_audio_min=0.2),
                dict(long_audio_max=1.0, long_audio_pause=2.0)):
        with pytest.raises(ValueError, match="long_audio"):
            DecodeOptions(**bad)
    DecodeOptions(long_audio_max=0.0, long_audio_pause=40.0)  # 0: never split, the others unused
    assert PieceSplitter(2.0, 40.0, 0.1, ALIGN).min_samples == 31680  # min above max: counts as max
    with pytest.raises(DataError, match="long_audio_max"):
        DecodeOptions.from_yaml(None, {"long_audio_max": -2.0})


# --------------------------------------------------------- offline decoding
@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_long_audio_is_stitched_in_utterance_time(models: Dict[str, torch.nn.Module], variant: str) -> None:
    model = models[variant]
    split = recognizer(model, **LONG)
    (result,) = split.decode(["u"], [LONG_WAVE])
    (unsplit,) = recognizer(model, long_audio_max=0.0).decode(["u"], [LONG_WAVE])
    spans = long_spans(LONG_WAVE)
    assert len(spans) >= 4
    # one emotion per encoder frame of the whole audio, as unsplit decoding
    assert len(result.frame_emotions) == len(unsplit.frame_emotions)
    assert set(result.frame_emotions) <= set(EMOTIONS) and len(set(result.frame_emotions)) > 1
    duration = len(LONG_WAVE) / SR
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and all(0 <= w.start < w.end <= duration + 1e-9 for w in result.words)
    # every piece's words and frames, moved to the piece's place
    pieces = [split.decode(["p"], [pad(LONG_WAVE[s:e], split)])[0] for s, e in spans]
    assert result.tokens == [t for p in pieces for t in p.tokens]
    assert result.text == " ".join(p.text for p in pieces if p.text)
    for piece, (s, e) in zip(pieces, spans):
        first = s // ALIGN
        own = piece.frame_emotions[: len(result.frame_emotions) - first]  # the tiny last piece: its share
        assert result.frame_emotions[first: first + len(own)] == own
        moved = [(round(w.start - s / SR, 6), round(w.end - s / SR, 6), w.text, w.emotion)
                 for w in result.words if s / SR - 1e-9 <= w.start < e / SR - 1e-9]
        assert moved == [(round(w.start, 6), round(w.end, 6), w.text, w.emotion) for w in piece.words]
    # segments are the runs of the stitched frames
    for seg in result.segments:
        assert set(result.frame_emotions[round(seg.start / 0.06): round(seg.end / 0.06)]) == {seg.emotion}
    # the utterance emotion: duration-weighted mean of the pieces' head posteriors
    weights = np.array([e - s for s, e in spans], dtype=np.float64)
    post = np.array([[p.emotion_scores[c] for c in EMOTIONS] for p in pieces])
    mean = weights @ post / weights.sum()
    assert [result.emotion_scores[c] for c in EMOTIONS] == pytest.approx(mean.tolist(), abs=1e-9)
    assert result.emotion == EMOTIONS[int(mean.argmax())]
    assert result.score == pytest.approx(sum(p.score for p in pieces))


def test_lattice_utterance_emotion_pools_over_all_frames(models: Dict[str, torch.nn.Module]) -> None:
    model = models["fent"]
    for rule in ("max", "mean"):
        split = recognizer(model, utt_emotion_from="lattice", lattice_rule=rule, **LONG)
        (result,) = split.decode(["u"], [LONG_WAVE])
        pieces = [split.decode(["p"], [pad(LONG_WAVE[s:e], split)])[0] for s, e in long_spans(LONG_WAVE)]
        scores = np.array([[p.emotion_scores[c] for c in EMOTIONS] for p in pieces])
        frames = np.array([len(p.frame_emotions) for p in pieces], dtype=np.float64)
        expected = scores.max(0) if rule == "max" else frames @ scores / frames.sum()
        assert [result.emotion_scores[c] for c in EMOTIONS] == pytest.approx(expected.tolist(), abs=1e-6)


def test_audio_up_to_the_maximum_decodes_as_before(models: Dict[str, torch.nn.Module]) -> None:
    model = models["ent"]
    before = recognizer(model, long_audio_max=0.0)
    after = recognizer(model, **LONG)
    short = [WAVE[: 2 * SR], LONG_WAVE[: 31680], varied_wave(1.3, seed=7)]  # up to the maximum, 1.98 s
    assert after.decode(["a", "b", "c"], short) == before.decode(["a", "b", "c"], short)
    # a long one in the batch: the others decode as before, the long one as it does alone
    mixed = after.decode(["a", "long", "c"], [short[0], LONG_WAVE, short[2]])
    reference = before.decode(["a", "c"], [short[0], short[2]])
    assert [mixed[0], mixed[2]] == reference
    assert mixed[1] == after.decode(["long"], [LONG_WAVE])[0]
    assert len(mixed[1].frame_emotions) == len(before.decode(["long"], [LONG_WAVE])[0].frame_emotions)


def test_a_tiny_last_piece_keeps_the_unsplit_frame_count(models: Dict[str, torch.nn.Module]) -> None:
    model = models["ent"]
    split = recognizer(model, long_audio_max=1.0, long_audio_min=1.0, long_audio_pause=0.1)
    unsplit = recognizer(model, long_audio_max=0.0)
    for n in (15360 + 100, 2 * 15360 + 500, 2 * 15360 + 3000):  # just past a hard cut (1 s = 16 frames)
        wave = LONG_WAVE[:n]
        (a,) = split.decode(["u"], [wave])
        (b,) = unsplit.decode(["u"], [wave])
        assert len(a.frame_emotions) == len(b.frame_emotions)


def test_stitcher_checks_the_grid() -> None:
    stitcher = ResultStitcher(EMOTIONS, "neutral", 0.06, ALIGN)
    piece = DecodeResult("p", "", [], "neutral", [], ["happy"] * 3, 0.06, [])
    stitcher.add(piece, 0, 5 * ALIGN)
    with pytest.raises(ValueError, match="does not follow"):
        stitcher.add(piece, 4 * ALIGN, 6 * ALIGN)
    stitcher.add(piece, 5 * ALIGN, 7 * ALIGN)
    result = stitcher.result("u", None)
    # the first piece is padded with its last emotion to its 5 frames; no emotion scores: neutral
    assert result.frame_emotions == ["happy"] * 7 and result.emotion == "neutral"
    assert [(s.start, s.end) for s in result.segments] == [(0.0, pytest.approx(0.42))]


# ------------------------------------------------------------------ streaming
@pytest.mark.parametrize("utt_emotion_from,piece", [("head", 777), ("lattice", 5000)])
def test_a_long_stream_equals_offline_split_decoding(models: Dict[str, torch.nn.Module], utt_emotion_from: str,
                                                     piece: int) -> None:
    rec = recognizer(models["fent"], utt_emotion_from=utt_emotion_from, **LONG)
    session = StreamingSession(rec, chunk_ms=320)
    (offline,) = rec.decode(["s"], [LONG_WAVE], chunk_size=session.chunk_size)
    result, updates = decode_stream(session, LONG_WAVE, piece, utt_id="s")
    assert session.num_segments >= 4
    assert (result.tokens, result.text, result.words) == (offline.tokens, offline.text, offline.words)
    assert (result.frame_emotions, result.segments, result.emotion) == (
        offline.frame_emotions, offline.segments, offline.emotion)
    assert result.emotion_scores == pytest.approx(offline.emotion_scores, abs=1e-5)
    # what the updates reported adds up to the final result, in stream time
    assert [t.piece for u in updates for t in u.tokens] == result.tokens
    assert [w for u in updates for w in u.words] == result.words
    assert [e for u in updates for e in u.frame_emotions] == result.frame_emotions
    sizes = [len(u.frame_emotions) for u in updates]
    assert [u.first_frame for u in updates] == [sum(sizes[:i]) for i in range(len(sizes))]
    frames = [t.frame for u in updates for t in u.tokens]
    assert frames == sorted(frames) and frames[-1] < len(result.frame_emotions)


def test_stream_memory_is_bounded_by_the_segment(models: Dict[str, torch.nn.Module]) -> None:
    rec = recognizer(models["ent"], long_audio_max=2.0, long_audio_min=2.0, long_audio_pause=0.1)
    wave = np.tile(LONG_WAVE, 3)  # 21 s: segments of 1.98 s (hard cuts; 50 frames of 60 ms)
    piece = 5120

    def retained(session: StreamingSession) -> List[int]:
        session.reset()
        sizes = []
        for i in range(0, len(wave), piece):
            session.accept(wave[i: i + piece])
            sizes.append(session.retained_tensor_bytes())
        return sizes

    bounded = StreamingSession(rec, chunk_ms=320, num_left_chunks=0)  # all left context: caches grow per segment
    sizes = retained(bounded)
    assert bounded.num_segments == len(wave) // 31680
    first = max(sizes[: 3 * 31680 // piece])  # the first three segments
    assert max(sizes) <= 1.25 * first
    # without segments the same stream keeps every chunk: the assertion above can fail
    unbounded = StreamingSession(rec, chunk_ms=320, num_left_chunks=0, long_audio_max=0.0)
    grown = retained(unbounded)
    assert unbounded.num_segments == 0 and grown[-1] > 4 * max(sizes)
