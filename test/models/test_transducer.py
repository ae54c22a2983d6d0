"""EmotionTransducer (ENT and FENT): losses, gradients and padding invariance."""

from typing import Optional, Tuple

import pytest
import torch

from ent.features.fbank import Fbank
from ent.kernels.backends import ComputeBackends
from ent.losses.rnnt import rnnt_loss
from ent.models.transducer import EmotionTransducer, mixed_intervals
from ent.nets.encoder import ConformerEncoder
from ent.nets.predictor import RNNPredictor

VOCAB = 12
EMOTIONS = ("neutral", "happy", "angry", "sad")


def tiny_model(variant: str, pitch: bool = False, head: Optional[dict] = None, loss: Optional[dict] = None,
               backends: Optional[ComputeBackends] = None, **conf) -> EmotionTransducer:
    torch.manual_seed(0)
    frontend = Fbank(n_mels=20, pitch=pitch or (head or {}).get("prosody", False))
    encoder = ConformerEncoder(
        frontend.output_size(), num_blocks=1, hidden_size=16, linear_size=32, heads=2, conv_mod_kernel_size=3,
        dropout_rate=0.0, att_dropout_rate=0.0, pos_wise_dropout_rate=0.0,
    )
    predictor = RNNPredictor(VOCAB, embed_dim=8, hidden_dim=16)
    blank = RNNPredictor(VOCAB, embed_dim=8, hidden_dim=12) if variant == "fent" else None
    return EmotionTransducer(
        VOCAB, EMOTIONS, frontend, None, None, encoder, predictor, blank,
        variant=variant, joint_conf={"dim": 16}, head_conf=head, loss_conf=loss, backends=backends, **conf,
    )


def batch(lengths=(8000, 5600, 4000), tokens=(5, 3, 2), emotions=(1, 0, 3)) -> Tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    speech = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        speech[i, :n] = 0.1 * torch.randn(n, generator=g)
    text = torch.full((len(tokens), max(tokens)), -1, dtype=torch.long)
    for i, u in enumerate(tokens):
        text[i, :u] = torch.randint(1, VOCAB, (u,), generator=g)
    return (
        speech, torch.tensor(lengths), text, torch.tensor(tokens), torch.tensor(emotions),
    )


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_forward_backward_reaches_every_branch(variant: str) -> None:
    loss_conf = {"predictor_lm_weight": 0.5} if variant == "fent" else {}
    model = tiny_model(variant, loss=loss_conf)
    loss, stats, weight = model(*batch())
    assert torch.isfinite(loss) and int(weight) == 3
    for key in ("loss_rnnt", "loss_ce", "loss_lattice", "acc_emo"):
        assert key in stats
    if variant == "fent":
        assert "loss_lm" in stats
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    assert model.emotion_joint.lin_out.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_loss_is_padding_invariant(variant: str) -> None:
    model = tiny_model(variant).eval()
    speech, lens, text, tlens, emo = batch()
    with torch.no_grad():
        full, _, _ = model(speech, lens, text, tlens, emo)
        alone = []
        for i in range(3):
            s = speech[i : i + 1, : lens[i]]
            t = text[i : i + 1, : tlens[i]]
            loss, _, _ = model(s, lens[i : i + 1], t, tlens[i : i + 1], emo[i : i + 1])
            alone.append(loss)
    assert torch.allclose(full, torch.stack(alone).mean(), atol=1e-5)


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_fast_cpu_paths_equal_torchaudio_and_the_plain_joints(variant: str) -> None:
    """The numba RNN-T loss and the fused joint lattices change no loss and no gradient."""
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(3, 90, 20, generator=g, dtype=torch.float64)
    feats_lens = torch.tensor([90, 70, 50])
    speech, lens, text, tlens, emo = batch()
    results = []
    for fast in (False, True):
        model = tiny_model(variant, backends=ComputeBackends(rnnt="numba" if fast else "torchaudio", fused_joint=fast))
        joints = [m for m in model.modules() if hasattr(m, "fused")]
        assert len(joints) == (2 if variant == "ent" else 3) and all(j.fused == fast for j in joints)
        _, stats, _ = model(speech, lens, text, tlens, emo)  # the whole float32 training loss
        model = model.double()
        enc_out, enc_lens = model.encoder(feats, feats_lens)
        token_pred, emo_pred = model.predict(text)
        logits = model.token_logits(enc_out.unsqueeze(2), token_pred.unsqueeze(1), emo_pred.unsqueeze(1))
        loss = rnnt_loss(logits, text.clamp(min=0), enc_lens, tlens, backend=model.rnnt_backend)
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        results.append([stats["loss"], loss.detach().double()] + [g for g in grads if g is not None])
    assert results[0][0] > 0 and len(results[0]) == len(results[1]) > 10
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=0.0)
    # torchaudio computes in float32 even for float64 logits
    for got, want in zip(results[1][1:], results[0][1:]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_interval_utterances_use_the_supervised_loss() -> None:
    model = tiny_model("ent").eval()
    speech, lens, text, tlens, emo = batch()
    none = torch.full((3, 1, 3), -1.0)
    with_iv = none.clone()
    with_iv[0, 0] = torch.tensor([0.1, 0.3, 2.0])
    with torch.no_grad():
        _, s0, _ = model(speech, lens, text, tlens, emo, emo_intervals=none)
        _, s1, _ = model(speech, lens, text, tlens, emo, emo_intervals=with_iv)
    assert not torch.isclose(s0["loss_lattice"], s1["loss_lattice"])
    assert torch.isclose(s0["loss_rnnt"], s1["loss_rnnt"])


def test_head_skip_mixed_leaves_mixed_utterances_out_of_the_head_loss() -> None:
    speech, lens, text, tlens, emo = batch()
    iv = torch.full((3, 3, 3), -1.0)
    iv[0, 0], iv[0, 1], iv[0, 2] = torch.tensor([0.0, 0.1, 0.0]), torch.tensor([0.1, 0.3, 1.0]), torch.tensor([0.3, 0.5, 0.0])
    iv[1, 0] = torch.tensor([0.0, 0.3, 0.0])  # one emotion: not mixed
    iv[2, 0], iv[2, 1] = torch.tensor([0.0, 0.1, 3.0]), torch.tensor([0.1, 0.2, 3.0])  # two intervals, one emotion
    assert mixed_intervals(iv).tolist() == [True, False, False]
    assert mixed_intervals(iv.long()).tolist() == [True, False, False]
    model = tiny_model("ent", head={"skip_mixed": True}).eval()
    with torch.no_grad():
        _, stats, _ = model(speech, lens, text, tlens, emo, emo_intervals=iv)
        enc = model.encode(speech, lens)
        logits = model.head(enc.blank, enc.lengths, model.predict(text)[1], tlens)
    expected = torch.nn.functional.cross_entropy(logits[1:], emo[1:])
    assert torch.isclose(stats["loss_ce"], expected, atol=1e-6)
    # without the option every utterance counts; with all utterances mixed the head loss is 0, not NaN
    plain = tiny_model("ent").eval()
    with torch.no_grad():
        _, stats_all, _ = plain(speech, lens, text, tlens, emo, emo_intervals=iv)
        _, stats_none, _ = model(speech[:1], lens[:1], text[:1, : tlens[0]], tlens[:1], emo[:1], emo_intervals=iv[:1])
    assert torch.isclose(stats_all["loss_ce"], torch.nn.functional.cross_entropy(logits, emo), atol=1e-6)
    assert stats_none["loss_ce"] == 0
    # a batch in which no utterance has intervals (K = 0) trains the head on every utterance
    assert mixed_intervals(torch.full((3, 0, 3), -1.0)).tolist() == [False, False, False]
    with torch.no_grad():
        _, stats_k0, _ = model(speech, lens, text, tlens, emo, emo_intervals=torch.full((3, 0, 3), -1.0))
    assert torch.isclose(stats_k0["loss_ce"], torch.nn.functional.cross_entropy(logits, emo), atol=1e-6)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="blank predictor"):
        tiny_model("ent").__class__(
            VOCAB, EMOTIONS, Fbank(n_mels=20), None, None,
            ConformerEncoder(20, num_blocks=1, hidden_size=16, linear_size=32, heads=2),
            RNNPredictor(VOCAB, embed_dim=8, hidden_dim=16), None, variant="fent",
        )
    with pytest.raises(ValueError, match="neutral"):
        tiny_model("ent", neutral="calm")
    with pytest.raises(ValueError, match="unknown RNN-T loss backend"):
        ComputeBackends(rnnt="warp")
    with pytest.raises(ValueError, match=r"unknown head_conf option\(s\) \['pooling'\]"):
        tiny_model("ent", head={"pooling": "stats"})
    with pytest.raises(ValueError, match="needs joint_conf.activation 'tanh'"):
        tiny_model("ent").__class__(
            VOCAB, EMOTIONS, Fbank(n_mels=20), None, None,
            ConformerEncoder(20, num_blocks=1, hidden_size=16, linear_size=32, heads=2),
            RNNPredictor(VOCAB, embed_dim=8, hidden_dim=16), joint_conf={"activation": "relu"},
            backends=ComputeBackends(lattice="numba"),
        )


def test_auxiliary_ctc_equals_per_utterance_ctc() -> None:
    model = tiny_model("ent", loss={"ctc_weight": 0.5}).eval()
    speech, lens, text, tlens, emo = batch()
    with torch.no_grad():
        loss, stats, _ = model(speech, lens, text, tlens, emo)
        out = model.encode(speech, lens)
        enc, enc_lens = out.enc, out.lengths
        expected = []
        for b in range(3):
            lp = torch.log_softmax(model.ctc_lin(enc[b, : enc_lens[b]]), -1)
            expected.append(torch.nn.functional.ctc_loss(
                lp[:, None], text[b : b + 1, : tlens[b]], enc_lens[b : b + 1], tlens[b : b + 1],
                reduction="sum",
            ))
    assert torch.isclose(stats["loss_ctc"], torch.stack(expected).mean(), atol=1e-4)
    plain = tiny_model("ent").eval()
    with torch.no_grad():
        loss0, _, _ = plain(speech, lens, text, tlens, emo)
    assert torch.isclose(loss, loss0 + 0.5 * stats["loss_ctc"], atol=1e-4)


def assert_batch_loss_is_mean_of_single_losses(model, speech, lens, text, tlens, emo, cmvn, pros=None) -> None:
    """Padding invariance with per-speaker statistics: the batch loss is the mean of the unpadded losses."""
    with torch.no_grad():
        full, _, _ = model(speech, lens, text, tlens, emo, speech_cmvn=cmvn, speaker_prosody=pros)
        alone = [
            model(speech[i : i + 1, : lens[i]], lens[i : i + 1], text[i : i + 1, : tlens[i]], tlens[i : i + 1],
                  emo[i : i + 1], speech_cmvn=cmvn[i : i + 1],
                  speaker_prosody=None if pros is None else pros[i : i + 1])[0]
            for i in range(len(lens))
        ]
    assert torch.allclose(full, torch.stack(alone).mean(), atol=1e-5)


def test_speaker_cmvn_replaces_the_global_normalization_and_keeps_padding_invariance() -> None:
    model = tiny_model("ent").eval()
    speech, lens, text, tlens, emo = batch()
    g = torch.Generator().manual_seed(3)
    cmvn = torch.stack([torch.randn(3, 20, generator=g), 0.5 + torch.rand(3, 20, generator=g)], dim=1)
    with torch.no_grad():
        out = model.encode(speech, lens, cmvn)
        enc, enc_lens = out.enc, out.lengths
        feats, feats_lens = model.frontend(speech, lens)
        manual = (feats - cmvn[:, 0:1]) / cmvn[:, 1:2]
        manual = manual * (torch.arange(feats.size(1))[None, :, None] < feats_lens[:, None, None])
        ref, _ = model.encoder(manual, feats_lens)
        for i in range(3):
            t = int(enc_lens[i])
            torch.testing.assert_close(enc[i, :t], ref[i, :t])
        assert not torch.allclose(enc[0, :5], model.encode(speech, lens).enc[0, :5])
        with pytest.raises(ValueError, match="speech_cmvn must have shape"):
            model.encode(speech, lens, cmvn[..., :10])
    assert_batch_loss_is_mean_of_single_losses(model, speech, lens, text, tlens, emo, cmvn)


def test_head_prosody_expert_reads_speaker_normalized_functionals() -> None:
    from ent.features.prosody import NUM_PROSODY, normalize_prosody, prosody_functionals

    with pytest.raises(ValueError, match="pitch"):
        tiny_model("ent", pitch=False).__class__(
            VOCAB, EMOTIONS, Fbank(n_mels=20), None, None,
            ConformerEncoder(20, num_blocks=1, hidden_size=16, linear_size=32, heads=2),
            RNNPredictor(VOCAB, embed_dim=8, hidden_dim=16), head_conf={"prosody": True},
        )
    model = tiny_model("ent", head={"prosody": True})
    speech, lens, text, tlens, emo = batch()
    feats, feats_lens = model.frontend(speech, lens)
    funcs = prosody_functionals(feats, feats_lens, 20)
    with pytest.raises(ValueError, match="not trained"):
        model.eval().utterance_prosody(feats, feats_lens)
    # training accumulates the global statistics, the fallback without speaker statistics
    model.train()
    model(speech, lens, text, tlens, emo)[0].backward()
    assert model.head.prosody.weight.grad.abs().sum() > 0
    model(speech[:2], lens[:2], text[:2], tlens[:2], emo[:2])
    both = torch.cat([funcs, funcs[:2]]).double()
    torch.testing.assert_close(model.prosody_stats, torch.stack([torch.ones_like(both), both, both ** 2]).sum(1))
    model.eval()
    expected = normalize_prosody(funcs.double(), both.mean(0), both.std(0, unbiased=False)).float()
    torch.testing.assert_close(model.utterance_prosody(feats, feats_lens), expected, atol=1e-4, rtol=1e-4)
    # speaker statistics: CMVN (B, 2, F) and prosody (B, 2, K), each normalizing its own
    g = torch.Generator().manual_seed(3)
    both_stats = torch.stack([torch.randn(3, 22 + NUM_PROSODY, generator=g),
                              0.5 + torch.rand(3, 22 + NUM_PROSODY, generator=g)], dim=1)
    cmvn, pros_stats = both_stats[..., :22], both_stats[..., 22:]
    with pytest.raises(ValueError, match="speaker_prosody must have shape"):
        model.utterance_prosody(feats, feats_lens, both_stats)
    with torch.no_grad():
        out, prosody = model.encode_with_prosody(speech, lens, cmvn, pros_stats)
        enc, enc_lens = out.enc, out.lengths
        torch.testing.assert_close(enc, model.encode(speech, lens, cmvn).enc)
        torch.testing.assert_close(prosody, normalize_prosody(funcs, pros_stats[:, 0], pros_stats[:, 1]))
        # the head's loss is the sum of both experts' cross entropies; the logits their product
        _, stats, _ = model(speech, lens, text, tlens, emo, speech_cmvn=cmvn, speaker_prosody=pros_stats)
        deep, pros = model.head.forward_parts(enc, enc_lens, model.predict(text)[1], tlens, prosody)
        ce = torch.nn.functional.cross_entropy
        assert torch.isclose(stats["loss_ce"], ce(deep, emo) + ce(pros, emo), atol=1e-5)
        fused = torch.softmax(model.head(enc, enc_lens, model.predict(text)[1], tlens, prosody), -1)
        product = torch.softmax(deep, -1) * torch.softmax(pros, -1)
        torch.testing.assert_close(fused, product / product.sum(-1, keepdim=True))
    # padding invariance with the prosody expert
    assert_batch_loss_is_mean_of_single_losses(model, speech, lens, text, tlens, emo, cmvn, pros_stats)
    with pytest.raises(ValueError, match="prosody must be given"):
        model.head(enc, enc_lens, model.predict(text)[1], tlens)
