"""SSLFrontend on tiny random wav2vec 2.0 / HuBERT / WavLM models saved to a folder.

Shapes and lengths (the model's own convolution arithmetic), padding
behaviour (attention masks / per-utterance runs), the weighted sum against
the model's hidden states, frozen vs fine-tuned gradients, and the errors
for missing or wrong weights.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ssl_factory import HIDDEN, LAYERS, MODEL_TYPES, save_tiny_ssl, waves  # noqa: E402

from ent.features.ssl import SSLFrontend  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``{(model_type, norm): folder}`` for the three types, group- and layer-norm feature encoders."""
    root = tmp_path_factory.mktemp("ssl_models")
    return {(t, n): save_tiny_ssl(root, t, n) for t in MODEL_TYPES for n in ("group", "layer")}


def randomize_weights(fe: SSLFrontend) -> None:
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for ws in filter(None, (fe.weighting, fe.blank_weighting)):
            ws.weight_logits.copy_(torch.randn(ws.num_layers, generator=g))
            ws.scale.fill_(1.3)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_shapes_lengths_and_weights(models: dict, model_type: str) -> None:
    fe = SSLFrontend(str(models[model_type, "group"]), model_type=model_type, blank_weighting=True)
    speech, lens = waves((8000, 5600, 4000, 300))  # the last is shorter than one frame (400 samples)
    (feats, blank), feats_lens = fe.forward_weightings(speech, lens)
    expected = fe.ssl_model._get_feat_extract_output_lengths(lens).clamp(min=0)
    assert feats_lens.tolist() == expected.tolist() == [24, 17, 12, 0]
    assert feats.shape == blank.shape == (4, 24, HIDDEN) and feats.dtype == torch.float32
    assert fe.output_size() == HIDDEN and fe.num_hidden_states == LAYERS + 1 and fe.num_weightings == 2
    assert (fe.window_size, fe.window_shift, fe.frame_shift_ms) == (400, 320, 20.0)
    for b, n in enumerate(feats_lens.tolist()):
        assert feats[b, n:].abs().sum() == 0 and blank[b, n:].abs().sum() == 0
    for ws in (fe.weighting, fe.blank_weighting):
        assert torch.isclose(ws.weights.sum(), torch.tensor(1.0))
    assert torch.equal(fe(speech, lens)[0], feats)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_weighted_sum_of_the_models_hidden_states(models: dict, model_type: str) -> None:
    fe = SSLFrontend(str(models[model_type, "group"]), blank_weighting=True)
    randomize_weights(fe)
    speech, lens = waves((6400,))
    (feats, blank), _ = fe.forward_weightings(speech, lens)
    with torch.no_grad():
        states = fe.ssl_model(speech, output_hidden_states=True).hidden_states
    assert len(states) == LAYERS + 1
    for ws, out in ((fe.weighting, feats), (fe.blank_weighting, blank)):
        w = ws.weights.detach()
        expected = ws.scale.detach() * sum(w[i] * h for i, h in enumerate(states))
        assert torch.allclose(out, expected, atol=1e-5)
    assert not torch.allclose(feats, blank)  # two independent weightings
    last = SSLFrontend(str(models[model_type, "group"]), layers=[-1])
    assert torch.allclose(last(speech, lens)[0], states[-1], atol=1e-6)


# WavLM's own attention mixes a float position bias with a bool padding mask (torch warns).
@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_padding_does_not_change_real_frames(models: dict, model_type: str) -> None:
    speech, lens = waves()
    # Layer-norm feature encoders: one batched call with an attention mask.
    masked = SSLFrontend(str(models[model_type, "layer"]))
    assert masked.batching == "mask"
    # Group-norm (base) models: HF says not to pass a mask; auto runs them one by one.
    looped = SSLFrontend(str(models[model_type, "group"]))
    assert looped.batching == "loop"
    padded = SSLFrontend(str(models[model_type, "group"]), batching="pad")
    for fe, atol in ((masked, 1e-5), (looped, 0.0)):
        feats, flens = fe(speech, lens)
        for b in range(len(lens)):
            alone, _ = fe(speech[b : b + 1, : lens[b]], lens[b : b + 1])
            assert torch.allclose(feats[b, : flens[b]], alone[0], atol=atol, rtol=0)
    # The model's own behaviour without a mask: padding moves a short utterance's features.
    feats, flens = padded(speech, lens)
    alone, _ = padded(speech[2:3, : lens[2]], lens[2:3])
    assert not torch.allclose(feats[2, : flens[2]], alone[0], atol=1e-4)


def test_frozen_model_gets_no_gradients_and_stays_in_eval_mode(models: dict) -> None:
    fe = SSLFrontend(str(models["wavlm", "group"]), blank_weighting=True)
    parent = torch.nn.Sequential(fe)
    parent.train()
    assert fe.training and not fe.ssl_model.training
    assert {n for n, _ in fe.named_parameters()} == {
        "weighting.weight_logits", "weighting.scale", "blank_weighting.weight_logits", "blank_weighting.scale",
    }
    assert set(fe.state_dict()) == {n for n, _ in fe.named_parameters()}  # pretrained weights not saved
    speech, lens = waves()
    (feats, blank), _ = fe.forward_weightings(speech, lens)
    (feats.pow(2).mean() + blank.pow(2).mean()).backward()
    assert all(p.grad is None and not p.requires_grad for p in fe.ssl_model.parameters())
    assert fe.weighting.weight_logits.grad.abs().sum() > 0
    assert fe.blank_weighting.weight_logits.grad.abs().sum() > 0


def test_fine_tuning_trains_the_transformer_after_the_frozen_steps(models: dict) -> None:
    fe = SSLFrontend(str(models["wav2vec2", "group"]), finetune=True, freeze_steps=1)
    assert any(n.startswith("model.encoder.") for n, _ in fe.named_parameters())
    assert "num_updates" in fe.state_dict()
    fe.train()
    assert fe.ssl_model.training
    speech, lens = waves()

    def step() -> None:
        fe.zero_grad(set_to_none=True)
        feats, _ = fe(speech, lens)
        feats.pow(2).mean().backward()

    step()  # frozen step: only the layer weights learn
    assert all(p.grad is None for p in fe.ssl_model.parameters())
    assert fe.weighting.weight_logits.grad is not None
    step()
    grads = {n: p.grad for n, p in fe.ssl_model.named_parameters()}
    assert all(g is None for n, g in grads.items() if n.startswith("feature_extractor."))
    assert all(not p.requires_grad for p in fe.ssl_model.feature_extractor.parameters())
    layer_grads = [g for n, g in grads.items() if n.startswith("encoder.layers.")]
    assert layer_grads and all(g is not None for g in layer_grads)
    assert sum(float(g.abs().sum()) for g in layer_grads) > 0
    assert int(fe.num_updates) == 2


def test_waveform_normalization_follows_the_preprocessor_config(tmp_path: Path) -> None:
    folder = save_tiny_ssl(tmp_path, "hubert", do_normalize=True)
    fe = SSLFrontend(str(folder))
    assert fe.normalize_waveform
    speech, lens = waves()
    a, _ = fe(speech, lens)
    b, _ = fe(3.0 * speech + 0.01 * (torch.arange(speech.shape[1]) < lens[:, None]), lens)
    assert torch.allclose(a, b, atol=1e-4)  # gain and DC offset removed per utterance
    assert not SSLFrontend(str(folder), normalize_waveform=False).normalize_waveform


def test_half_precision_frozen_model(models: dict) -> None:
    fe32 = SSLFrontend(str(models["wav2vec2", "group"]))
    fe16 = SSLFrontend(str(models["wav2vec2", "group"]), dtype="bfloat16")
    assert next(fe16.ssl_model.parameters()).dtype == torch.bfloat16
    speech, lens = waves()
    a, la = fe32(speech, lens)
    b, lb = fe16(speech, lens)
    assert b.dtype == torch.float32 and torch.equal(la, lb)
    assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.99


def test_missing_weights_explain_how_to_get_them(tmp_path: Path, models: dict) -> None:
    with pytest.raises(FileNotFoundError, match=r"not found: download .*hf download .*model_dir"):
        SSLFrontend(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        SSLFrontend(str(tmp_path / "empty"))
    (tmp_path / "empty" / "config.json").write_text(json.dumps({"model_type": "wav2vec2"}))
    with pytest.raises(FileNotFoundError, match="no weights"):
        SSLFrontend(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="model_type is 'hubert'"):
        SSLFrontend(str(models["hubert", "group"]), model_type="wavlm")
    with pytest.raises(ValueError, match="no attribute"):
        SSLFrontend(str(models["hubert", "group"]), config_overrides={"no_such_key": 1})
    with pytest.raises(ValueError, match="finetune"):
        SSLFrontend(str(models["hubert", "group"]), finetune=True, dtype="float16")


def test_model_dir_expands_environment_variables(models: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = models["wavlm", "layer"]
    monkeypatch.setenv("ENT_TEST_SSL", str(folder.parent))
    fe = SSLFrontend(f"${{ENT_TEST_SSL}}/{folder.name}")
    assert fe.model_type == "wavlm"
