"""FENT's blank-branch input: pooling matched to the encoder, padding."""

import pytest
import torch

from ent.nets.blank_branch import BlankBranchInput
from ent.nets.encoder import ConformerEncoder


@pytest.mark.parametrize("factor", [2, 4, 6])
def test_pooled_lengths_equal_the_encoders(factor: int) -> None:
    encoder = ConformerEncoder(16, num_blocks=1, hidden_size=8, linear_size=16, heads=2,
                               conv_mod_kernel_size=3, subsampling_factor=factor)
    branch = BlankBranchInput.for_encoder(16, encoder)
    lengths = torch.arange(0, 80)
    assert torch.equal(branch.pooled_lengths(lengths), encoder.subsampled_lengths(lengths))
    feats = torch.randn(1, 79, 16)
    pooled, _ = branch.pool(feats, torch.tensor([79]))
    assert pooled.size(1) == int(encoder.subsampled_lengths(torch.tensor([79]))[0])
    # Frame t averages input frames [t*stride, t*stride + kernel).
    t = 3
    expected = feats[0, t * branch.stride : t * branch.stride + branch.kernel].mean(0)
    assert torch.allclose(pooled[0, t], expected, atol=1e-6)


def test_padding_does_not_leak_into_real_frames() -> None:
    torch.manual_seed(0)
    encoder = ConformerEncoder(16, num_blocks=1, hidden_size=8, linear_size=16, heads=2,
                               conv_mod_kernel_size=3, subsampling_factor=2).eval()
    branch = BlankBranchInput.for_encoder(16, encoder)
    feats_lens = torch.tensor([40, 23])
    feats = torch.randn(2, 40, 16)
    feats[1, 23:] = 100.0  # garbage padding
    with torch.no_grad():
        enc, enc_lens = encoder(feats, feats_lens)
        out = branch(enc, enc_lens, feats, feats_lens)
        enc1, lens1 = encoder(feats[1:, :23], feats_lens[1:])
        alone = branch(enc1, lens1, feats[1:, :23], feats_lens[1:])
    assert torch.allclose(out[1, : lens1[0]], alone[0], atol=1e-5)
    assert out[1, lens1[0] :].abs().sum() == 0
