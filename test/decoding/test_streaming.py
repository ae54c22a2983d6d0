"""Streaming sessions: equal to simulated streaming, independent of the audio cuts, edge cases."""

import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch

from ent.decoding.greedy import greedy_search
from ent.decoding.recognizer import DecodeOptions, EmotionRecognizer
from ent.decoding.streaming import (
    StreamingGreedy,
    StreamingSession,
    chunk_frames,
    decode_stream,
)
from ent.decoding.writer import DecodeResult
from ent.features.cmvn import SpeakerStats
from ent.features.fbank import Fbank
from ent.features.prosody import NUM_PROSODY
from ent.models.transducer import EmotionTransducer
from ent.nets.encoder import ConformerEncoder
from ent.nets.predictor import RNNPredictor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_recognizer import EMOTIONS, WAVE, CharTokenizer, build_model  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, EmotionRecognizer]:
    """Greedy recognizers of a random streaming ENT and FENT (with global CMVN)."""
    stats = tmp_path_factory.mktemp("stream") / "stats.npz"
    feats = Fbank().eval().extract(torch.from_numpy(WAVE)).double().numpy()
    np.savez(stats, count=np.int64(len(feats)), sum=feats.sum(0), sum_square=(feats * feats).sum(0))
    tok = CharTokenizer()
    options = DecodeOptions(search="greedy")
    return {
        "ent": EmotionRecognizer(build_model("ent", stats, seed=0), tok, options),
        "fent": EmotionRecognizer(build_model("fent", stats, seed=1), tok, options),
    }


def same_result(a: DecodeResult, b: DecodeResult) -> None:
    """Equal tokens, words, emotions and segments; scores equal up to float rounding."""
    assert a.tokens == b.tokens and a.text == b.text
    assert a.words == b.words
    assert a.frame_emotions == b.frame_emotions
    assert a.emotion == b.emotion
    assert a.segments == b.segments
    assert abs(a.score - b.score) < 1e-3


@pytest.mark.parametrize("variant", ["ent", "fent"])
@pytest.mark.parametrize("chunk_ms", [160, 320, 640])
def test_chunk_by_chunk_equals_simulated_streaming(models: Dict[str, EmotionRecognizer], variant: str,
                                                   chunk_ms: int) -> None:
    rec = models[variant]
    session = StreamingSession(rec, chunk_ms=chunk_ms)
    result, _ = decode_stream(session, WAVE, piece_samples=chunk_ms * 16, utt_id="u")
    (simulated,) = rec.decode(["u"], [WAVE], chunk_size=session.chunk_size)
    same_result(result, simulated)
    # the case is not trivial: tokens, blanks and several emotions
    assert 0 < len(result.tokens) < 3 * len(result.frame_emotions)
    assert len(set(result.frame_emotions)) > 1
    assert result.emotion_scores == pytest.approx(simulated.emotion_scores, abs=1e-4)


def test_lattice_utterance_emotion_equals_simulated(models: Dict[str, EmotionRecognizer]) -> None:
    model, tok = models["fent"].model, models["fent"].tokenizer
    rec = EmotionRecognizer(model, tok, DecodeOptions(search="greedy", utt_emotion_from="lattice"))
    session = StreamingSession(rec, chunk_ms=320)
    result, _ = decode_stream(session, WAVE, 4000)
    (simulated,) = rec.decode(["stream"], [WAVE], chunk_size=session.chunk_size)
    same_result(result, simulated)
    assert result.emotion_scores == pytest.approx(simulated.emotion_scores, abs=1e-4)


def test_speaker_cmvn_streams_like_simulated_streaming(models: Dict[str, EmotionRecognizer], caplog) -> None:
    base = models["fent"]
    rec = EmotionRecognizer(base.model, base.tokenizer, base.options, speaker_cmvn=True)
    feats = Fbank().eval().extract(torch.from_numpy(WAVE)).numpy()
    stats = np.stack([feats.mean(0) + 0.5, feats.std(0) * 1.5]).astype(np.float32)  # another "speaker"
    session = StreamingSession(rec, chunk_ms=320, speaker_cmvn=stats)
    result, _ = decode_stream(session, WAVE, 3000, utt_id="u")
    (simulated,) = rec.decode(["u"], [WAVE], chunk_size=session.chunk_size, cmvn=[stats])
    same_result(result, simulated)
    (global_cmvn,) = base.decode(["u"], [WAVE], chunk_size=session.chunk_size)
    assert result.emotion_scores != pytest.approx(global_cmvn.emotion_scores, abs=1e-4)
    with pytest.raises(ValueError, match="shape"):
        session.reset(speaker_cmvn=stats[:, :10])
    with caplog.at_level("WARNING"):
        StreamingSession(rec, chunk_ms=320)
    assert "global CMVN" in caplog.text


def test_head_prosody_streams_like_simulated_streaming(tmp_path: Path) -> None:
    fbank = Fbank(pitch=True).eval()
    feats = fbank.extract(torch.from_numpy(WAVE)).double().numpy()
    stats_file = tmp_path / "stats.npz"
    np.savez(stats_file, count=np.int64(len(feats)), sum=feats.sum(0), sum_square=(feats * feats).sum(0))
    model = build_model("ent", stats_file, seed=2, head_prosody=True)
    with torch.no_grad():  # global prosody statistics, as training leaves them
        model.prosody_stats.copy_(torch.tensor([[4.0] * NUM_PROSODY, [1.0] * NUM_PROSODY, [5.0] * NUM_PROSODY]))
    rec = EmotionRecognizer(model, CharTokenizer(), DecodeOptions(search="greedy"), speaker_cmvn=True)
    spk = SpeakerStats(np.stack([feats.mean(0), feats.std(0)]).astype(np.float32),
                       np.stack([np.full(NUM_PROSODY, 0.5), np.full(NUM_PROSODY, 2.0)]).astype(np.float32))
    results = {}
    for name, stats in (("speaker", spk), ("global", None)):
        session = StreamingSession(rec, chunk_ms=320, speaker_cmvn=stats)
        result, _ = decode_stream(session, WAVE, 3000, utt_id="u")
        (simulated,) = rec.decode(["u"], [WAVE], chunk_size=session.chunk_size,
                                  cmvn=None if stats is None else [stats])
        same_result(result, simulated)
        assert result.emotion_scores == pytest.approx(simulated.emotion_scores, abs=1e-4)
        results[name] = result
    # the prosody statistics matter: the speaker's and the global ones give other posteriors
    spk_cmvn_only = StreamingSession(rec, chunk_ms=320, speaker_cmvn=spk.cmvn)
    only, _ = decode_stream(spk_cmvn_only, WAVE, 3000, utt_id="u")
    assert only.emotion_scores != pytest.approx(results["speaker"].emotion_scores, abs=1e-4)
    with pytest.raises(ValueError, match="shape"):
        spk_cmvn_only.reset(speaker_cmvn=np.concatenate([spk.cmvn, spk.prosody], axis=1))
    with pytest.raises(ValueError, match="shape"):
        spk_cmvn_only.reset(speaker_cmvn=SpeakerStats(spk.cmvn, spk.prosody[0]))


@pytest.mark.parametrize("max_symbols", [1, 3])
def test_streaming_greedy_equals_greedy_search(models: Dict[str, EmotionRecognizer], max_symbols: int) -> None:
    model = models["ent"].model
    with torch.no_grad():
        out = model.encode(torch.from_numpy(WAVE)[None], torch.tensor([len(WAVE)]))
    (ref,) = greedy_search(model, out, max_symbols_per_frame=max_symbols)
    enc = out.enc
    search = StreamingGreedy(model, max_symbols)
    pos = 0
    for size in [0, 1, 4, 0, 7, 2, 13, 5]:
        search.advance(enc[:, pos : pos + size])
        pos += size
    search.advance(enc[:, pos:])
    hyp = search.hypothesis()
    assert (hyp.tokens, hyp.token_frames, hyp.token_emotions) == (ref.tokens, ref.token_frames, ref.token_emotions)
    assert hyp.frame_emotions == ref.frame_emotions
    torch.testing.assert_close(hyp.frame_posteriors, ref.frame_posteriors)
    torch.testing.assert_close(hyp.token_posteriors, ref.token_posteriors)
    assert hyp.score == pytest.approx(ref.score, abs=1e-6)


def _cuts(n: int, kind: str) -> List[int]:
    if kind == "whole":
        return [n]
    if kind == "tiny":
        return [37] * (n // 37) + [n % 37]
    rng = np.random.default_rng(5)
    sizes = [0, 1, 1, 0]
    while sum(sizes) < n:
        sizes.append(int(rng.choice([0, 1, 100, 159, 160, 161, 400, 2000, 4800, 7777])))
    sizes[-1] -= sum(sizes) - n
    return sizes


def _run(session: StreamingSession, wave: np.ndarray, sizes: List[int]) -> Tuple[DecodeResult, list]:
    session.reset()
    updates, pos = [], 0
    for size in sizes:
        updates.append(session.accept(wave[pos : pos + size]))
        pos += size
    updates.append(session.finalize())
    return updates[-1].result, updates


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_results_do_not_depend_on_how_the_audio_is_cut(models: Dict[str, EmotionRecognizer], variant: str) -> None:
    session = StreamingSession(models[variant], chunk_ms=320)
    results = {kind: _run(session, WAVE, _cuts(len(WAVE), kind)) for kind in ("whole", "tiny", "random")}
    reference, _ = results["whole"]
    for kind, (result, updates) in results.items():
        same_result(result, reference)
        # what the updates reported adds up to the final result
        assert [t.piece for u in updates for t in u.tokens] == result.tokens, kind
        assert [w for u in updates for w in u.words] == result.words, kind
        assert [e for u in updates for e in u.frame_emotions] == result.frame_emotions, kind
        firsts = [u.first_frame for u in updates]
        sizes = [len(u.frame_emotions) for u in updates]
        assert firsts == [sum(sizes[:i]) for i in range(len(sizes))], kind


def test_frames_are_decided_within_one_chunk_of_their_audio(models: Dict[str, EmotionRecognizer]) -> None:
    rec = models["fent"]
    session = StreamingSession(rec, chunk_ms=320)
    encoder, fbank = rec.model.encoder, rec.model.frontend
    decided = 0
    for start in range(0, len(WAVE), 800):
        update = session.accept(WAVE[start : start + 800])
        decided += len(update.frame_emotions)
        received = min(start + 800, len(WAVE))
        frames = int(encoder.subsampled_lengths(torch.tensor([fbank.num_frames(received)]))[0])
        # every complete chunk is decided, nothing more
        assert decided == frames // session.chunk_size * session.chunk_size
        assert update.decided_until == pytest.approx(decided * 0.06)
        # a word still open is reported as partial, never as a word
        if update.partial_word is not None:
            assert update.text.endswith(update.partial_word.text)


def test_finalize_on_empty_and_very_short_audio(models: Dict[str, EmotionRecognizer]) -> None:
    rec = models["ent"]
    session = StreamingSession(rec, chunk_ms=320)
    final = session.finalize()
    assert final.is_final and final.result is not None
    empty = final.result
    assert (empty.text, empty.tokens, empty.words, empty.frame_emotions, empty.segments) == ("", [], [], [], [])
    assert empty.emotion == "neutral"
    for n in (1, 100, session.min_samples - 1, session.min_samples):
        wave = WAVE[:n]
        result, _ = _run(session, wave, [n])
        padded = np.pad(wave, (0, max(0, session.min_samples - n)))
        (simulated,) = rec.decode(["stream"], [padded], chunk_size=session.chunk_size)
        same_result(result, simulated)
        assert len(result.frame_emotions) == 1


def test_session_reuse_and_misuse(models: Dict[str, EmotionRecognizer]) -> None:
    rec = models["ent"]
    session = StreamingSession(rec, chunk_ms=640)
    first, _ = decode_stream(session, WAVE, 5000)
    with pytest.raises(ValueError, match="finalized"):
        session.accept(WAVE[:100])
    with pytest.raises(ValueError, match="finalized"):
        session.finalize()
    again, _ = decode_stream(session, WAVE, 3000)
    same_result(first, again)
    with pytest.raises(ValueError, match="tokenizer"):
        StreamingSession(rec.model)
    assert StreamingSession(rec.model, rec.tokenizer).chunk_size == 5
    full_context = EmotionTransducer(
        15, EMOTIONS, Fbank(), None, None,
        ConformerEncoder(80, num_blocks=1, hidden_size=32, linear_size=64, heads=2, subsampling_factor=6),
        RNNPredictor(15, 16, 32),
    )
    with pytest.raises(ValueError, match="dynamic_chunk_training"):
        StreamingSession(full_context, rec.tokenizer)
    with pytest.raises(ValueError, match="dynamic_chunk_training"):
        EmotionRecognizer(full_context, rec.tokenizer, DecodeOptions()).decode(["u"], [WAVE], chunk_size=4)


def test_chunk_frames() -> None:
    assert [chunk_frames(ms, 0.06) for ms in (160, 320, 640)] == [3, 5, 11]
    assert [chunk_frames(ms, 0.04) for ms in (160, 320, 640)] == [4, 8, 16]
    assert chunk_frames(10, 0.06) == 1
    with pytest.raises(ValueError, match="chunk_ms must be positive"):
        chunk_frames(0, 0.06)
