"""Tests of the Conformer encoder: lengths, padding invariance, gradients, chunk masks."""

from typing import Dict

import pytest
import torch
from espnet2.asr_transducer.utils import make_chunk_mask

from ent.nets.encoder import ConformerEncoder, StackedFramesInput, chunk_attention_mask

TINY: Dict[str, object] = dict(
    num_blocks=2,
    hidden_size=32,
    linear_size=64,
    heads=2,
    conv_mod_kernel_size=7,
    conv_size=8,
    dropout_rate=0.0,
    att_dropout_rate=0.0,
    pos_wise_dropout_rate=0.0,
)
FEAT_DIM = 20


def expected_length(n: int, factor: int) -> int:
    """Subsampled length written out by hand for ESPnet's ConvInput layers."""
    t1 = (n - 3) // 2 + 1  # Conv2d(k=3, s=2)
    kernel, stride = {2: (3, 1), 4: (3, 2), 6: (5, 3)}[factor]
    return max(0, (t1 - kernel) // stride + 1)


def make_encoder(factor: int = 4, **overrides: object) -> ConformerEncoder:
    torch.manual_seed(0)
    conf = dict(TINY, subsampling_factor=factor)
    conf.update(overrides)
    return ConformerEncoder(FEAT_DIM, **conf)


@pytest.mark.parametrize("factor", [2, 4, 6])
def test_shapes_and_exact_lengths(factor: int) -> None:
    encoder = make_encoder(factor).eval()
    lens = torch.tensor([400, 250, 120])
    feats = torch.randn(3, 400, FEAT_DIM)
    with torch.no_grad():
        out, out_lens = encoder(feats, lens)
    expected = [expected_length(n, factor) for n in (400, 250, 120)]
    assert out_lens.tolist() == expected
    assert out.shape == (3, expected[0], 32)
    assert encoder.output_size() == 32
    if factor == 4:
        assert expected == [99, 61, 29]


@pytest.mark.parametrize("factor", [2, 4, 6])
def test_subsampled_lengths_match_the_convolutions(factor: int) -> None:
    encoder = make_encoder(factor)
    for n in range(encoder.min_input_frames, 60):
        sub, _ = encoder.embed(torch.zeros(1, n, FEAT_DIM), None)
        assert int(encoder.subsampled_lengths(torch.tensor([n]))[0]) == sub.size(1), n
    assert int(encoder.subsampled_lengths(torch.tensor([encoder.min_input_frames - 1]))[0]) == 0


@pytest.mark.parametrize("factor,input_layer", [(4, "conv2d"), (6, "conv2d"), (4, "stack"), (8, "stack")])
def test_padding_does_not_change_real_frames(factor: int, input_layer: str) -> None:
    encoder = make_encoder(factor, input_layer=input_layer).eval()
    lens = torch.tensor([400, 250, 120])
    feats = torch.randn(3, 400, FEAT_DIM)
    for b, n in enumerate(lens.tolist()):
        feats[b, n:] = 100.0 * torch.randn(400 - n, FEAT_DIM)  # loud garbage in the padding
    with torch.no_grad():
        out, out_lens = encoder(feats, lens)
        for b, n in enumerate(lens.tolist()):
            alone, alone_lens = encoder(feats[b : b + 1, :n], lens[b : b + 1])
            assert alone_lens.item() == out_lens[b].item() == alone.size(1)
            diff = (alone[0] - out[b, : alone.size(1)]).abs().max().item()
            assert diff < 1e-5, (b, diff)
            assert torch.all(out[b, alone.size(1) :] == 0)


@pytest.mark.parametrize("input_layer", ["conv2d", "stack"])
def test_gradient_flows_to_every_parameter_and_not_to_padding(input_layer: str) -> None:
    encoder = make_encoder(4, input_layer=input_layer).train()
    lens = torch.tensor([120, 80])
    feats = torch.randn(2, 120, FEAT_DIM, requires_grad=True)
    out, _ = encoder(feats, lens)
    out.pow(2).sum().backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name

    encoder.eval()
    feats = torch.randn(2, 120, FEAT_DIM, requires_grad=True)
    out, _ = encoder(feats, lens)
    out.pow(2).sum().backward()
    assert feats.grad[1, 80:].abs().max() == 0
    assert feats.grad[1, :80].abs().max() > 0


@pytest.mark.parametrize("factor", [1, 3, 4, 8])
def test_stacked_frames_input_equals_stacking_then_linear_then_layer_norm(factor: int) -> None:
    encoder = make_encoder(factor, input_layer="stack").eval()
    layer = encoder.embed
    assert isinstance(layer, StackedFramesInput)
    for n in (factor, 5 * factor - 1, 57):
        feats = torch.randn(2, n, FEAT_DIM)
        with torch.no_grad():
            out, _ = layer(feats, None)
            t = n // factor
            stacked = feats[:, : t * factor].reshape(2, t, factor * FEAT_DIM)  # [x_kt; ...; x_kt+k-1]
            weight = layer.conv[0].weight.reshape(32, factor * FEAT_DIM)
            ref = torch.nn.functional.layer_norm(
                stacked @ weight.T + layer.conv[0].bias, (32,), layer.output.weight, layer.output.bias
            )
        assert out.shape == (2, t, 32)
        assert (out - ref).abs().max().item() < 1e-5
        assert int(encoder.subsampled_lengths(torch.tensor([n]))[0]) == t
    assert encoder.frontend_lookahead == 0
    assert encoder.min_input_frames == factor


def test_chunk_attention_mask_equals_espnet() -> None:
    for size, chunk, left in [(10, 3, 0), (10, 3, 1), (7, 1, 2), (5, 8, 0), (12, 4, 2)]:
        ours = chunk_attention_mask(size, chunk, left)
        reference = make_chunk_mask(size, chunk, num_left_chunks=left)
        assert torch.equal(ours, reference), (size, chunk, left)


def test_chunk_mask_hides_the_future() -> None:
    # Causal convolutions (dynamic_chunk_training) + chunk mask: outputs 0..3
    # (the first chunk of 4) read input frames 0..18 only (4 * 3 + 6).
    encoder = make_encoder(4, dynamic_chunk_training=True).eval()
    feats = torch.randn(1, 100, FEAT_DIM)
    changed = feats.clone()
    changed[:, 19:] += 1.0
    lens = torch.tensor([100])
    with torch.no_grad():
        a, _ = encoder(feats, lens, chunk_size=4)
        b, _ = encoder(changed, lens, chunk_size=4)
        full_a, _ = encoder(feats, lens)
        full_b, _ = encoder(changed, lens)
    assert (a[0, :4] - b[0, :4]).abs().max() < 1e-6
    assert (a[0, 4:] - b[0, 4:]).abs().max() > 1e-3
    assert (full_a[0, :4] - full_b[0, :4]).abs().max() > 1e-3


def test_dynamic_chunk_training_runs_in_training_mode() -> None:
    encoder = make_encoder(4, dynamic_chunk_training=True, short_chunk_size=3).train()
    out, lens = encoder(torch.randn(2, 80, FEAT_DIM), torch.tensor([80, 50]))
    assert out.shape == (2, 19, 32) and lens.tolist() == [19, 11]
    assert torch.isfinite(out).all()


def test_bad_configs_and_inputs_raise() -> None:
    with pytest.raises(ValueError, match="subsampling_factor must be one of"):
        make_encoder(8)
    with pytest.raises(ValueError, match="input_layer must be one of"):
        make_encoder(4, input_layer="conv3d")
    with pytest.raises(ValueError, match="subsampling_factor must be >= 1"):
        make_encoder(0, input_layer="stack")
    with pytest.raises(ValueError, match="divisible by heads"):
        make_encoder(4, heads=3)
    with pytest.raises(ValueError, match="conv_mod_kernel_size must be odd"):
        make_encoder(4, conv_mod_kernel_size=4)
    with pytest.raises(TypeError):
        make_encoder(4, no_such_key=1)
    encoder = make_encoder(4)
    with pytest.raises(ValueError, match="too short"):
        encoder(torch.randn(2, 30, FEAT_DIM), torch.tensor([30, 6]))
    with pytest.raises(ValueError, match="feats must have shape"):
        encoder(torch.randn(2, 30, FEAT_DIM + 1), torch.tensor([30, 20]))
    with pytest.raises(ValueError, match="exceeds the padded length"):
        encoder(torch.randn(2, 30, FEAT_DIM), torch.tensor([31, 20]))
