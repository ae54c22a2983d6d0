"""Joint ASR-SER with hierarchical co-attention fusion on a tiny frozen ENT encoder."""

import pytest
import torch
from torch.nn import functional as F

from ent.models.ser import ser_model_class
from ent.models.ser.asr_output_fusion import ASROutputFusion, ctc_greedy
from ser_checks import batch, check_gradients, check_overfits, check_padding_invariance
from tiny_ent_experiment import EMOTIONS


def build(ent_dir, **kw) -> ASROutputFusion:
    torch.manual_seed(0)
    conf = dict(acoustic_layer=1, asr_hidden=32, fusion_dim=16, heads=2, text_embed_dim=8, dropout=0.1)
    conf.update(kw)
    return ASROutputFusion(EMOTIONS, ent_dir=str(ent_dir), **conf)


def test_registered() -> None:
    assert ser_model_class("asr_output_fusion") is ASROutputFusion


def test_ctc_greedy() -> None:
    best = torch.tensor([[0, 3, 3, 0, 3, 5, 5, 0], [2, 2, 0, 0, 0, 0, 0, 0]])
    log_probs = F.one_hot(best, 6).float().log_softmax(-1)
    assert ctc_greedy(log_probs, torch.tensor([8, 3])) == [[3, 3, 5], [2]]


def test_asr_branch_starts_as_the_ent_ctc_recognizer(ent_dir) -> None:
    model = build(ent_dir).eval()
    b = batch()
    with torch.no_grad():
        _, log_probs, _, _ = model.forward_all(b["speech"], b["speech_lengths"])
        _, top, _ = model.acoustic(b["speech"], b["speech_lengths"])
        ref = model.asr_encoder.ctc_lin(top).log_softmax(-1)
    torch.testing.assert_close(log_probs, ref)


def test_forward_backward_reach_only_the_trainable_parameters(ent_dir) -> None:
    model = build(ent_dir)
    stats = check_gradients(model, model.asr_encoder)
    assert stats["loss_ctc"] is not None and float(stats["loss"]) > float(stats["loss_ce"])


def test_finetune_encoder_trains_it(ent_dir) -> None:
    model = build(ent_dir, finetune_encoder=True)
    model.train()
    assert model.asr_encoder.training
    loss, _, _ = model(**batch())
    loss.sum().backward()
    assert all(p.grad is not None for p in model.asr_encoder.encoder.parameters())


def test_padding_invariance(ent_dir) -> None:
    check_padding_invariance(build(ent_dir))


def test_attention_weights_sum_to_one(ent_dir) -> None:
    model = build(ent_dir).eval()
    b = batch()
    with torch.no_grad():
        _, _, lens, att = model.forward_all(b["speech"], b["speech_lengths"])
    for name in ("acoustic_from_hidden", "hidden_from_acoustic", "frames_from_text", "text_from_frames"):
        rows = att[name].sum(-1)
        torch.testing.assert_close(rows, torch.ones_like(rows), msg=name)
    for name in ("frame_pool", "token_pool"):
        torch.testing.assert_close(att[name].sum(-1), torch.ones(3), msg=name)
    for i, n in enumerate(lens.tolist()):  # keys beyond an utterance's frames get no weight
        assert float(att["text_from_frames"][i, :, n:].abs().sum()) == 0.0


def test_train_text_reference_feeds_the_transcript(ent_dir) -> None:
    model = build(ent_dir, train_text="reference", dropout=0.0)
    b = batch()
    model.train()
    torch.manual_seed(0)
    with_ref, _, _, att = model.forward_all(b["speech"], b["speech_lengths"], b["text"], b["text_lengths"])
    assert att["token_pool"].shape[1] == int(b["text_lengths"].max()) + 1  # start token + reference
    with pytest.raises(ValueError, match="train_text"):
        build(ent_dir, train_text="oracle")


def test_needs_exactly_one_encoder(ent_dir) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ASROutputFusion(EMOTIONS)


@pytest.mark.slow
def test_overfits_a_few_utterances(ent_dir) -> None:
    check_overfits(build(ent_dir, dropout=0.0), steps=200)
