"""Co-attention fusion of MFCC, spectrogram and (here) a tiny frozen ENT encoder."""

import pytest
import torch

from ent.models.ser import ser_model_class
from ent.models.ser.multilevel_fusion import MultiLevelAcousticFusion, SpectrogramCNN, frame_count
from ser_checks import batch, check_gradients, check_overfits, check_padding_invariance
from tiny_ent_experiment import EMOTIONS, pad, waves


def build(ent_dir, **kw) -> MultiLevelAcousticFusion:
    torch.manual_seed(0)
    conf = dict(ent_layer=-1, n_mfcc=13, n_mels=23, mfcc_hidden=16, cnn_channels=[4, 8], ssl_dim=16,
                attention_size=16, hidden_dim=16, dropout=0.1)
    conf.update(kw)
    return MultiLevelAcousticFusion(EMOTIONS, ent_dir=str(ent_dir), **conf)


def test_registered() -> None:
    assert ser_model_class("multilevel_fusion") is MultiLevelAcousticFusion


def test_spectral_features_are_the_utterance_alone(ent_dir) -> None:
    model = build(ent_dir).eval()
    ws = waves(2, seed=5)
    speech, lens = pad(ws)
    mfcc, spec, flens = model.spectral_features(speech, lens)
    assert torch.equal(flens, frame_count(lens, 400, 160))
    for i, w in enumerate(ws):
        m1, s1, _ = model.spectral_features(*pad([w]))
        n = int(flens[i])
        torch.testing.assert_close(mfcc[i, :n], m1[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(spec[i, :n], s1[0], rtol=0, atol=1e-5)
        assert float(mfcc[i, n:].abs().sum()) == 0.0
        torch.testing.assert_close(m1[0].mean(0), torch.zeros(13), rtol=0, atol=1e-4)  # utterance CMVN


def test_cnn_lengths_and_masking() -> None:
    torch.manual_seed(0)
    cnn = SpectrogramCNN([4, 8]).eval()
    x = torch.randn(2, 37, 20)
    lens = torch.tensor([37, 22])
    out, out_lens = cnn(x, lens)
    assert out.shape == (2, 9, 8) and out_lens.tolist() == [9, 5]
    alone, _ = cnn(x[1:, :22], lens[1:])
    torch.testing.assert_close(out[1, :5], alone[0], rtol=0, atol=1e-6)


def test_forward_backward_reach_only_the_trainable_parameters(ent_dir) -> None:
    model = build(ent_dir)
    check_gradients(model, model.asr_encoder)


def test_padding_invariance(ent_dir) -> None:
    check_padding_invariance(build(ent_dir))


def test_attention_weights_sum_to_one(ent_dir) -> None:
    model = build(ent_dir).eval()
    b = batch()
    with torch.no_grad():
        _, att = model.forward_with_attention(b["speech"], b["speech_lengths"])
    torch.testing.assert_close(att["mfcc"].sum(-1), torch.ones(3))
    torch.testing.assert_close(att["spectrogram"].sum(-1), torch.ones(3))
    lens = frame_count(b["speech_lengths"], 400, 160)
    for i, n in enumerate(lens.tolist()):
        assert float(att["mfcc"][i, n:].abs().sum()) == 0.0


def test_needs_exactly_one_third_branch() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        MultiLevelAcousticFusion(EMOTIONS)


@pytest.mark.slow
def test_overfits_a_few_utterances(ent_dir) -> None:
    check_overfits(build(ent_dir, dropout=0.0), steps=200)
