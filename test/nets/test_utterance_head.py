"""Tests of the utterance-level emotion head: reference values and padding invariance."""

import pytest
import torch

from ent.nets.utterance_head import UtteranceEmotionHead


def make_head() -> UtteranceEmotionHead:
    torch.manual_seed(0)
    head = UtteranceEmotionHead(enc_dim=6, pred_dim=5, num_classes=4, dropout=0.3).eval()
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        head.norm.weight.uniform_(0.5, 1.5)
        head.norm.bias.uniform_(-0.5, 0.5)
    return head


def batch() -> tuple:
    torch.manual_seed(1)
    enc = torch.randn(3, 7, 6)
    pred = torch.randn(3, 5, 5)
    enc_lens = torch.tensor([7, 4, 1])
    label_lens = torch.tensor([4, 0, 2])
    return enc, enc_lens, pred, label_lens


def test_equals_hand_computed_reference() -> None:
    head = make_head()
    enc, enc_lens, pred, label_lens = batch()
    with torch.no_grad():
        logits = head(enc, enc_lens, pred, label_lens)
    assert logits.shape == (3, 4)
    for b in range(3):
        e = enc[b, : enc_lens[b]].sum(0) / enc_lens[b]
        p = pred[b, : label_lens[b] + 1].sum(0) / (label_lens[b] + 1)
        x = torch.cat([e, p])
        normed = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + head.norm.eps)
        normed = normed * head.norm.weight + head.norm.bias
        ref = head.output.weight @ normed + head.output.bias
        assert (logits[b] - ref).abs().max() < 1e-5, b


def test_padding_does_not_affect_logits_or_gradients() -> None:
    head = make_head()
    enc, enc_lens, pred, label_lens = batch()
    with torch.no_grad():
        clean = head(enc, enc_lens, pred, label_lens)
        noisy_enc, noisy_pred = enc.clone(), pred.clone()
        for b in range(3):
            noisy_enc[b, enc_lens[b] :] = 1e3
            noisy_pred[b, label_lens[b] + 1 :] = -1e3
        noisy = head(noisy_enc, enc_lens, noisy_pred, label_lens)
        alone = head(enc[2:3, :1], enc_lens[2:], pred[2:3, :3], label_lens[2:])
    assert (clean - noisy).abs().max() < 1e-5
    assert (alone[0] - clean[2]).abs().max() < 1e-5

    enc.requires_grad_(True)
    pred.requires_grad_(True)
    head(enc, enc_lens, pred, label_lens).pow(2).sum().backward()
    assert enc.grad[1, 4:].abs().max() == 0 and enc.grad[1, :4].abs().max() > 0
    assert pred.grad[1, 1:].abs().max() == 0 and pred.grad[1, 0].abs().max() > 0


def test_out_of_range_lengths_raise() -> None:
    head = make_head()
    enc, enc_lens, pred, label_lens = batch()
    with pytest.raises(ValueError, match="enc_lens"):
        head(enc, torch.tensor([7, 0, 1]), pred, label_lens)
    with pytest.raises(ValueError, match="enc_lens"):
        head(enc, torch.tensor([8, 4, 1]), pred, label_lens)
    with pytest.raises(ValueError, match="label_lens"):
        head(enc, enc_lens, pred, torch.tensor([5, 0, 2]))


def test_negative_prosody_size_raises() -> None:
    with pytest.raises(ValueError, match="prosody_dim"):
        UtteranceEmotionHead(6, 5, 4, prosody_dim=-1)


def test_fitted_prosody_expert_is_the_regularized_logistic_regression_optimum() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] + 0.5 * torch.randn(200, generator=g) > 0).long() + 2 * (x[:, 1] > 1).long()
    head = UtteranceEmotionHead(3, 3, 4, prosody_dim=5)
    assert head.prosody_trainable
    head.fit_prosody_expert(x, y, l2=0.01)
    assert not head.prosody_trainable
    # stationarity: the gradient of the objective vanishes at the fitted weights
    w = head.prosody.weight.detach().double().requires_grad_(True)
    b = head.prosody.bias.detach().double().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(x.double() @ w.T + b, y) + 0.005 * w.pow(2).sum()
    gw, gb = torch.autograd.grad(loss, (w, b))
    assert float(gw.abs().max()) < 1e-5 and float(gb.abs().max()) < 1e-5
    # and it separates what is separable
    assert float((head.prosody(x).argmax(-1) == y).float().mean()) > 0.8
    with pytest.raises(ValueError, match="no prosody expert"):
        UtteranceEmotionHead(3, 3, 4).fit_prosody_expert(x, y)
    with pytest.raises(ValueError, match="labels"):
        head.fit_prosody_expert(x, y[:10])
