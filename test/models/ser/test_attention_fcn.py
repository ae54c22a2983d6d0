"""AttentionFCN (Zhang et al. 2018): shapes, gradients, padding invariance, attention, ImageNet weights, overfitting."""

from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from ent.models.ser import ser_model_class
from ent.models.ser.attention_fcn import ALEXNET_CHANNELS, AttentionFCN, MaskedChannelNorm

EMOTIONS = ["neutral", "happy", "angry", "sad"]
TINY = dict(channels=[4, 8, 8, 8, 8], attention_dim=8, dropout=0.0)


def waves(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    speech = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        speech[i, :n] = 0.1 * torch.randn(n, generator=g)
    return speech, torch.tensor(lengths)


def test_registered_under_its_config_name() -> None:
    assert ser_model_class("attention_fcn") is AttentionFCN


def test_forward_backward_and_loss() -> None:
    torch.manual_seed(0)
    model = AttentionFCN(EMOTIONS, **TINY)
    speech, lengths = waves([16000, 12000])
    loss, stats, weight = model(speech, lengths, torch.tensor([1, 3]))
    assert loss.numel() == 1 and torch.isfinite(loss).all() and int(weight) == 2
    assert 0.0 <= float(stats["acc_emo"]) <= 1.0
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.emotion_logits(speech, lengths).shape == (2, 4)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_padding_invariance_after_training_statistics(batch_norm: bool) -> None:
    torch.manual_seed(0)
    model = AttentionFCN(EMOTIONS, **TINY, batch_norm=batch_norm)
    speech, lengths = waves([20000, 9000, 14000], seed=1)
    model.train()
    model(speech, lengths, torch.tensor([0, 1, 2]))[0].backward()  # running statistics away from 0/1
    model.eval()
    alone = model.posteriors(speech[1:2, :9000], lengths[1:2])
    batch = model.posteriors(speech, lengths)
    assert (alone - batch[1:2]).abs().max() < 1e-5
    # garbage (not zeros) in the padding changes nothing either
    noisy = speech.clone()
    noisy[1, 9000:] = 0.5
    assert (model.posteriors(noisy, lengths) - batch).abs().max() < 1e-5


def test_attention_weights_sum_to_one_and_skip_padding() -> None:
    torch.manual_seed(0)
    model = AttentionFCN(EMOTIONS, **TINY).eval()
    speech, lengths = waves([24000, 8000], seed=2)
    pooled, weights, regions = model.attention(speech, lengths)
    assert torch.allclose(weights.sum(dim=(1, 2)), torch.ones(2), atol=1e-6)
    _, mask, frames = model.feature_map(speech, lengths)
    assert int(frames[1]) < weights.shape[2]
    assert torch.all(weights[1, :, int(frames[1]):] == 0)
    assert torch.allclose(pooled, (weights.unsqueeze(-1) * regions).sum(dim=(1, 2)))


def test_too_short_an_utterance_is_an_error_naming_the_minimum() -> None:
    model = AttentionFCN(EMOTIONS, **TINY).eval()
    n = model.min_samples()
    model.posteriors(*waves([n]))  # the shortest that works
    with pytest.raises(ValueError, match=f"at least {n} samples"):
        model.posteriors(*waves([n - model.hop]))


def test_imagenet_weights_from_a_torchvision_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    state = {}
    for i, shape in shapes.items():
        state[f"features.{i}.weight"] = torch.randn(shape)
        state[f"features.{i}.bias"] = torch.randn(shape[0])
    state["classifier.1.weight"] = torch.randn(4096, 9216)  # ignored: no fully connected layers
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(state, path)
    model = AttentionFCN(EMOTIONS, channels=ALEXNET_CHANNELS, pretrained_path=str(path))
    # the grey-image first layer is AlexNet's on the image copied into the three channels
    image = torch.randn(1, 1, 40, 60)
    expected = F.conv2d(image.expand(1, 3, 40, 60), state["features.0.weight"], state["features.0.bias"],
                        stride=4, padding=2)
    assert torch.allclose(model.convs[0](image), expected, atol=1e-4)
    assert torch.equal(model.convs[4].weight, state["features.10.weight"])
    with pytest.raises(ValueError, match="ImageNet weights need channels"):
        AttentionFCN(EMOTIONS, **TINY, pretrained_path=str(path))
    with pytest.raises(ValueError, match="not found"):
        AttentionFCN(EMOTIONS, **TINY, pretrained_path=str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("batch_norm, steps", [(False, 80), (True, 30)])
def test_overfits_four_utterances(batch_norm: bool, steps: int) -> None:
    torch.manual_seed(0)
    model = AttentionFCN(EMOTIONS, **TINY, batch_norm=batch_norm)
    speech, lengths = waves([12000, 10000, 14000, 11000], seed=3)
    labels = torch.tensor([0, 1, 2, 3])
    optim = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        optim.zero_grad()
        loss = model(speech, lengths, labels)[0]
        loss.backward()
        optim.step()
    model.eval()
    assert torch.equal(model.posteriors(speech, lengths).argmax(-1), labels)
    if not batch_norm:
        assert float(loss.detach()) < 0.1


def test_masked_channel_norm_is_batch_norm_on_the_valid_regions() -> None:
    torch.manual_seed(0)
    norm, reference = MaskedChannelNorm(3), torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
        reference.weight.copy_(norm.weight)
        reference.bias.copy_(norm.bias)
    x = torch.randn(2, 3, 4, 7)
    # a full mask: exactly torch's batch normalization, output and running statistics
    full = torch.ones(2, 7, dtype=torch.bool)
    assert torch.allclose(norm(x, full), reference(x), atol=1e-5)
    assert torch.allclose(norm.running_mean, reference.running_mean, atol=1e-6)
    assert torch.allclose(norm.running_var, reference.running_var, atol=1e-6)
    # the second utterance 4 regions long: its padding (garbage here) never enters the statistics,
    # which are those of the valid regions alone, and the gradient reaches no padded region
    norm, reference = MaskedChannelNorm(3), torch.nn.BatchNorm2d(3)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    x = torch.randn(2, 3, 4, 7, requires_grad=True)
    garbage = x.detach().clone()
    garbage[1, :, :, 4:] = 100.0
    valid = torch.cat([x.detach()[0].flatten(1), x.detach()[1, :, :, :4].flatten(1)], dim=1)  # (C, N)
    out = norm(garbage, mask)
    expected = (garbage - valid.mean(1)[None, :, None, None]) / torch.sqrt(
        valid.var(1, unbiased=False)[None, :, None, None] + 1e-5)
    assert torch.allclose(out[0], expected[0], atol=1e-5)
    assert torch.allclose(out[1, :, :, :4], expected[1, :, :, :4], atol=1e-5)
    assert torch.allclose(norm.running_var, 0.9 + 0.1 * valid.var(1, unbiased=True), atol=1e-5)
    (norm(x, mask) * mask[:, None, None, :]).sum().backward()
    assert torch.all(x.grad[1, :, :, 4:] == 0)
    # evaluation: the running statistics, whatever the batch
    norm.eval()
    assert torch.allclose(norm(x, mask), (x - norm.running_mean[None, :, None, None])
                          / torch.sqrt(norm.running_var[None, :, None, None] + 1e-5), atol=1e-5)

