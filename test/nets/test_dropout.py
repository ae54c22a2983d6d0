"""FastDropout: the drop rate, the scaling, gradients, evaluation mode, seeding, and the module swap."""

import math

import pytest
import torch

from ent.nets.dropout import FastDropout, keep_mask, use_fast_dropout
from ent.nets.encoder import ConformerEncoder


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_mask_drops_with_probability_p_in_every_lane(p: float) -> None:
    torch.manual_seed(0)
    n = 400_000
    mask = keep_mask((n,), p)
    assert mask.dtype == torch.bool and mask.shape == (n,)
    # each of the four 16-bit lanes of a 64-bit word drops at the same rate
    for lane in range(4):
        kept = mask[lane::4].double().mean().item()
        sigma = math.sqrt(p * (1 - p) / (n / 4))
        assert abs((1 - kept) - p) < 5 * sigma, (lane, kept)
    # neighbours are independent: P(both kept) = (1-p)^2
    both = (mask[:-1] & mask[1:]).double().mean().item()
    assert abs(both - (1 - p) ** 2) < 5 * math.sqrt((1 - p) ** 2 / n)
    assert keep_mask((3, 5, 7), p).shape == (3, 5, 7)
    assert keep_mask((0, 4), p).shape == (0, 4)
    with pytest.raises(ValueError, match="probability"):
        keep_mask((4,), 1.5)


def test_fast_dropout_scales_kept_elements_and_passes_their_gradient() -> None:
    torch.manual_seed(1)
    drop = FastDropout(0.25).train()
    x = torch.randn(64, 300, dtype=torch.float64, requires_grad=True)
    y = drop(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    assert abs(kept.double().mean().item() - 0.75) < 0.02
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.double() / 0.75)
    # the mean is preserved in expectation
    ones = torch.ones(1_000_000)
    assert abs(drop(ones).mean().item() - 1.0) < 0.01


def test_fast_dropout_is_identity_in_eval_mode_and_at_p_zero_and_repeats_with_the_seed() -> None:
    x = torch.randn(8, 16)
    assert torch.equal(FastDropout(0.3).eval()(x), x)
    assert torch.equal(FastDropout(0.0).train()(x), x)
    assert torch.equal(FastDropout(1.0).train()(x), torch.zeros_like(x))
    drop = FastDropout(0.3).train()
    torch.manual_seed(5)
    a = drop(x)
    torch.manual_seed(5)
    b = drop(x)
    assert torch.equal(a, b) and not torch.equal(a, drop(x))
    # integer tensors go to torch's dropout (which refuses them as before)
    with pytest.raises(RuntimeError):
        drop(torch.ones(4, dtype=torch.long))


def test_use_fast_dropout_replaces_every_dropout_module() -> None:
    torch.manual_seed(0)
    encoder = ConformerEncoder(20, num_blocks=2, hidden_size=16, linear_size=32, heads=2, conv_mod_kernel_size=3,
                               dropout_rate=0.1, att_dropout_rate=0.2)
    before = [(name, m.p) for name, m in encoder.named_modules() if isinstance(m, torch.nn.Dropout)]
    x, lens = torch.randn(2, 40, 20), torch.tensor([40, 30])
    reference, _ = encoder.eval()(x, lens)
    count = use_fast_dropout(encoder)
    after = [(name, m.p) for name, m in encoder.named_modules() if isinstance(m, torch.nn.Dropout)]
    assert count == len(before) > 0 and after == before
    assert all(type(m) is FastDropout for m in encoder.modules() if isinstance(m, torch.nn.Dropout))
    assert use_fast_dropout(encoder) == 0
    # the same outputs in evaluation mode; masks in training mode
    torch.testing.assert_close(encoder(x, lens)[0], reference, rtol=0, atol=0)
    encoder.train()
    assert not torch.equal(encoder(x, lens)[0], reference)
