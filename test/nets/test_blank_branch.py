"""FENT's blank-branch input: pooling matched to the encoder, padding, packed halves."""

import pytest
import torch

from ent.nets.blank_branch import (
    BlankBranchInput,
    Channels,
    SlicedJointNetwork,
    SlicedLinear,
    SlicedUtteranceHead,
)
from ent.nets.encoder import ConformerEncoder
from ent.nets.joint import JointNetwork
from ent.nets.utterance_head import UtteranceEmotionHead


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


def test_sliced_modules_read_their_half_with_the_plain_parameter_names() -> None:
    half = Channels(4, 8, 8)
    torch.manual_seed(0)
    plain = JointNetwork(4, 3, 5, 2)
    torch.manual_seed(0)
    sliced = SlicedJointNetwork(half, 4, 3, 5, 2)
    assert list(plain.state_dict()) == list(sliced.state_dict())
    packed = torch.randn(2, 6, 8)
    pred = torch.randn(2, 6, 3)
    assert torch.equal(sliced(packed, pred), plain(packed[..., 4:], pred))
    head, sliced_head = UtteranceEmotionHead(4, 3, 2), SlicedUtteranceHead(half, 4, 3, 2)
    sliced_head.load_state_dict(head.state_dict())
    lens, plens = torch.tensor([6, 4]), torch.tensor([5, 2])
    assert torch.equal(sliced_head(packed, lens, pred, plens), head(packed[..., 4:], lens, pred, plens))
    lin = SlicedLinear(Channels(0, 4, 8), 4, 3)
    assert torch.equal(lin(packed), torch.nn.functional.linear(packed[..., :4], lin.weight, lin.bias))
    with pytest.raises(ValueError, match="packed encoder output"):
        sliced.project_encoder(torch.randn(2, 6, 4))
