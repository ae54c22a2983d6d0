"""Chunk-wise (streaming) Conformer encoding equals the masked full-utterance encoder."""

from typing import Dict, List

import pytest
import torch

from ent.nets.encoder import ConformerEncoder

FEAT_DIM = 20
TINY: Dict[str, object] = dict(
    num_blocks=2,
    hidden_size=32,
    linear_size=64,
    heads=2,
    conv_mod_kernel_size=7,
    conv_size=8,
    dynamic_chunk_training=True,
)


def make_encoder(factor: int = 6, **overrides: object) -> ConformerEncoder:
    torch.manual_seed(0)
    conf = dict(TINY, subsampling_factor=factor)
    conf.update(overrides)
    return ConformerEncoder(FEAT_DIM, **conf).eval()


def stream(encoder: ConformerEncoder, feats: torch.Tensor, chunk: int, left: int, cuts: List[int]) -> torch.Tensor:
    """Feed ``feats`` (B, T, F) in pieces of the given sizes (the rest at the end), then close."""
    state = encoder.init_streaming_state(chunk, left, batch_size=feats.size(0))
    outs, pos = [], 0
    for size in cuts:
        outs.append(encoder.chunk_forward(feats[:, pos : pos + size], state))
        pos += size
    outs.append(encoder.chunk_forward(feats[:, pos:], state, is_final=True))
    return torch.cat(outs, dim=1)


CUTS = [0, 1, 2, 13, 0, 6, 40, 1, 1, 7, 30]


@pytest.mark.parametrize("factor,input_layer", [(4, "conv2d"), (6, "conv2d"), (4, "stack")])
@pytest.mark.parametrize("chunk,left", [(1, 0), (3, 0), (4, 2), (5, 1), (8, 3)])
def test_chunkwise_equals_masked_full_utterance(factor: int, input_layer: str, chunk: int, left: int) -> None:
    encoder = make_encoder(factor, input_layer=input_layer)
    feats = torch.randn(2, 211, FEAT_DIM)
    with torch.no_grad():
        ref, lens = encoder(feats, torch.tensor([211, 211]), chunk_size=chunk, num_left_chunks=left)
        out = stream(encoder, feats, chunk, left, CUTS)
    assert out.shape == ref.shape and out.size(1) == int(lens[0])
    assert (out - ref).abs().max().item() < 1e-5


def test_left_context_and_attention_score_variants() -> None:
    encoder = make_encoder(6, simplified_att_score=True, num_left_chunks=2)
    feats = torch.randn(1, 300, FEAT_DIM)
    lens = torch.tensor([300])
    with torch.no_grad():
        limited, _ = encoder(feats, lens, chunk_size=3)  # the encoder's own num_left_chunks (2)
        unlimited, _ = encoder(feats, lens, chunk_size=3, num_left_chunks=0)
        out = stream(encoder, feats, 3, 2, [50, 50])
    assert (out - limited).abs().max().item() < 1e-5
    # the limited left context matters: the unlimited reference differs
    assert (out - unlimited).abs().max().item() > 1e-3


def test_frames_come_out_as_soon_as_their_chunk_is_complete() -> None:
    encoder = make_encoder(6, num_left_chunks=1)
    chunk = 4
    state = encoder.init_streaming_state(chunk)
    feats = torch.randn(1, 400, FEAT_DIM)
    received = 0
    with torch.no_grad():
        for size in [3, 10, 1, 30, 25, 60, 7, 100, 64, 100]:
            encoder.chunk_forward(feats[:, received : received + size], state)
            received += size
            available = int(encoder.subsampled_lengths(torch.tensor([received]))[0])
            assert state.frames_out == available // chunk * chunk
            # bounded caches: one chunk of left context, the conv overlaps, < 1 chunk pending
            assert all(c.size(1) <= chunk for c in state.att_caches)
            assert all(c.shape == (1, 32, 6) for c in state.conv_caches)  # hidden x (kernel - 1)
            assert all(b is None or b.size(2) < 5 for b in state.conv_inputs)
            assert state.pending is None or state.pending.size(1) < chunk
    assert encoder.frontend_lookahead == 5 and make_encoder(4).frontend_lookahead == 3


def test_short_streams_and_misuse() -> None:
    encoder = make_encoder(6)
    state = encoder.init_streaming_state(2)
    with torch.no_grad():
        out = encoder.chunk_forward(torch.randn(1, encoder.min_input_frames - 1, FEAT_DIM), state, is_final=True)
    assert out.shape == (1, 0, 32)
    with pytest.raises(ValueError, match="finished"):
        encoder.chunk_forward(torch.randn(1, 5, FEAT_DIM), state)
    with pytest.raises(ValueError, match="feats must have shape"):
        encoder.chunk_forward(torch.randn(1, 5, FEAT_DIM + 1), encoder.init_streaming_state(2))
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        encoder.init_streaming_state(0)
    full_context = make_encoder(6, dynamic_chunk_training=False)
    assert not full_context.is_causal and encoder.is_causal
    with pytest.raises(ValueError, match="dynamic_chunk_training"):
        full_context.init_streaming_state(4)
