"""ENT and FENT on a tiny pretrained (wav2vec 2.0) front end: training, the blank branch, decoding."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))
from ssl_factory import HIDDEN, save_tiny_ssl, waves  # noqa: E402

from ent.decoding.beam_search import modified_beam_search  # noqa: E402
from ent.decoding.greedy import StepScorer, greedy_search  # noqa: E402
from ent.decoding.hypothesis import utterance_emotion  # noqa: E402
from ent.features.ssl import SSLFrontend  # noqa: E402
from ent.kernels.backends import ComputeBackends  # noqa: E402
from ent.models.encoder_output import EncoderOutput  # noqa: E402
from ent.models.transducer import EmotionTransducer  # noqa: E402
from ent.nets.encoder import ConformerEncoder  # noqa: E402
from ent.nets.predictor import RNNPredictor  # noqa: E402

VOCAB = 8
EMOTIONS = ("neutral", "happy", "angry", "sad")
TEXTS = [[1, 2, 3], [4, 5], [6, 2, 7, 1], [3, 3, 5]]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_ssl(tmp_path_factory.mktemp("ssl_model"), "wav2vec2")


def build(model_dir: Path, variant: str, blank_weighting: bool = False, **conf) -> EmotionTransducer:
    torch.manual_seed(0)
    frontend = SSLFrontend(str(model_dir), blank_weighting=blank_weighting)
    encoder = ConformerEncoder(
        HIDDEN, num_blocks=1, hidden_size=32, linear_size=64, heads=2, conv_mod_kernel_size=3,
        subsampling_factor=2, dropout_rate=0.0, att_dropout_rate=0.0, pos_wise_dropout_rate=0.0,
    )
    blank = RNNPredictor(VOCAB, embed_dim=16, hidden_dim=32) if variant == "fent" else None
    return EmotionTransducer(
        VOCAB, EMOTIONS, frontend, None, None, encoder, RNNPredictor(VOCAB, embed_dim=16, hidden_dim=32),
        blank, variant=variant, joint_conf={"dim": 32}, loss_conf=conf, backends=ComputeBackends(lattice="torch"),
    )


def batch():
    speech, lens = waves((12800, 11200, 9600, 8000))
    text = torch.full((4, 4), -1, dtype=torch.long)
    for i, t in enumerate(TEXTS):
        text[i, : len(t)] = torch.tensor(t)
    return speech, lens, text, torch.tensor([len(t) for t in TEXTS]), torch.tensor([0, 1, 2, 3])


@pytest.mark.parametrize("variant, blank_weighting", [("ent", False), ("fent", False), ("fent", True)])
def test_training_with_the_ssl_front_end_lowers_the_loss(model_dir: Path, variant: str,
                                                         blank_weighting: bool) -> None:
    model = build(model_dir, variant, blank_weighting, ctc_weight=0.3)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    data = batch()
    losses = []
    for _ in range(8):
        model.train()
        loss, stats, _ = model(*data)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0], losses
    ssl = model.frontend.ssl_model
    assert not ssl.training and all(p.grad is None for p in ssl.parameters())
    weightings = [model.frontend.weighting] + ([model.frontend.blank_weighting] if blank_weighting else [])
    for ws in weightings:
        assert not torch.allclose(ws.weights, torch.full_like(ws.weights, 1 / ws.num_layers))  # learned
        assert torch.isclose(ws.weights.sum(), torch.tensor(1.0))


def test_second_weighting_feeds_only_the_blank_branch(model_dir: Path) -> None:
    model = build(model_dir, "fent", blank_weighting=True).eval()
    speech, lens, text, tlens, emo = batch()
    with torch.no_grad():
        enc = model.encode(speech, lens)
        assert enc.enc.shape == enc.enc_blank.shape and enc.enc.shape[-1] == model.encoder.output_size()
        model.frontend.blank_weighting.weight_logits.copy_(torch.tensor([3.0, -2.0, 0.0]))
        enc2 = model.encode(speech, lens)
    assert torch.equal(enc.enc, enc2.enc)  # vocabulary branch unchanged
    assert not torch.allclose(enc.enc_blank, enc2.enc_blank)  # blank branch moved
    # Decoding hands each branch its stream: the blank and emotion joints read enc_blank.
    with torch.no_grad():
        for hyps in (greedy_search(model, enc), modified_beam_search(model, enc, beam=2)):
            assert len(utterance_emotion(model, hyps, enc.blank, enc.lengths)) == 4
        scorer = StepScorer(model, enc)
        rows = scorer.start(4)
        utt, frame = torch.arange(4), torch.zeros(4, dtype=torch.long)
        pred = model.predict(torch.zeros(4, 0, dtype=torch.long))
        expected = model.token_logits(enc.enc[:, 0], pred[0][:, 0], pred[1][:, 0], enc_blank=enc.enc_blank[:, 0])
        torch.testing.assert_close(scorer.token_logits(utt, frame, rows), expected)
        torch.testing.assert_close(scorer.emotion_logits(utt, frame, rows),
                                   model.emotion_logits(enc.enc_blank[:, 0], pred[1][:, 0]))
        with pytest.raises(ValueError, match="this FENT reads a second encoder stream .* has no enc_blank"):
            greedy_search(model, EncoderOutput(enc.enc, enc.lengths))
        loss, _, _ = model(speech, lens, text, tlens, emo)
    assert torch.isfinite(loss)


def test_padding_invariant_loss_with_the_blank_branch(model_dir: Path) -> None:
    model = build(model_dir, "fent", blank_weighting=True).eval()
    speech, lens, text, tlens, emo = batch()
    with torch.no_grad():
        full, _, _ = model(speech, lens, text, tlens, emo)
        alone = [model(speech[i : i + 1, : lens[i]], lens[i : i + 1], text[i : i + 1, : tlens[i]],
                       tlens[i : i + 1], emo[i : i + 1])[0] for i in range(4)]
    assert torch.allclose(full, torch.stack(alone).mean(), atol=1e-4)


def test_blank_weighting_needs_fent(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="variant: fent"):
        build(model_dir, "ent", blank_weighting=True)
