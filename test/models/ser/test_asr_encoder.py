"""The ENT encoder as a frozen pretrained ASR encoder: per-block outputs and the experiment loader."""

import shutil

import pytest
import torch

from ent.features.cmvn import apply_cmvn
from ent.models.ser.asr_encoder import ASREncoder
from ent.nets.encoder import ConformerEncoder
from ent.utils.errors import DataError
from tiny_ent_experiment import ENCODER_CONF, pad, waves


def manual_blocks(encoder: ConformerEncoder, feats: torch.Tensor, lens: torch.Tensor):
    """Reference: the encoder's layers called one by one (no hooks, no forward)."""
    x, _ = encoder.embed(feats, None)
    enc_lens = encoder.subsampled_lengths(lens)
    pad_mask = torch.arange(x.size(1))[None] >= enc_lens[:, None]
    pos = encoder.pos_enc(x)
    outs = []
    for block in encoder.encoders.blocks:
        x, _, _ = block(x, pos, pad_mask)
        outs.append(x.masked_fill(pad_mask[..., None], 0.0))
    final = encoder.encoders.norm_blocks(x).masked_fill(pad_mask[..., None], 0.0)
    return outs, final, enc_lens


@pytest.mark.parametrize("input_layer", ["stack", "conv2d"])
def test_block_outputs_match_the_layers_and_forward(input_layer: str) -> None:
    torch.manual_seed(0)
    conf = dict(ENCODER_CONF, input_layer=input_layer)
    encoder = ConformerEncoder(20, **conf).eval()
    feats = torch.randn(3, 50, 20)
    lens = torch.tensor([50, 37, 21])
    with torch.no_grad():
        ref_blocks, ref_final, ref_lens = manual_blocks(encoder, feats, lens)
        enc_out, enc_lens = encoder(feats, lens)  # the existing output, unchanged
        hidden, hid_lens = encoder.block_outputs(feats, lens)
    assert torch.equal(enc_lens, ref_lens) and torch.equal(hid_lens, ref_lens)
    torch.testing.assert_close(enc_out, ref_final, rtol=0, atol=1e-6)
    assert len(hidden) == conf["num_blocks"]
    for h, ref in zip(hidden[:-1], ref_blocks[:-1]):
        torch.testing.assert_close(h, ref, rtol=0, atol=1e-6)
    # the last entry is the encoder output (after the final normalization)
    torch.testing.assert_close(hidden[-1], enc_out, rtol=0, atol=0)
    assert not torch.allclose(hidden[0], hidden[1])
    # no hook is left behind
    assert not encoder.encoders._forward_pre_hooks and not encoder.encoders.blocks[0]._forward_hooks


def test_loader_restores_the_checkpoint_and_freezes(ent_dir) -> None:
    enc = ASREncoder.from_experiment(ent_dir)
    state = torch.load(ent_dir / "valid.loss.ave.pth", weights_only=True)
    for name, value in enc.encoder.state_dict().items():
        assert torch.equal(value, state[f"encoder.{name}"]), name
    assert torch.equal(enc.ctc_lin.weight, state["ctc_lin.weight"]) and enc.vocab_size == 10
    assert all(not p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training and not enc.encoder.training  # frozen: always eval
    assert enc.num_blocks == 3

    speech, lens = pad(waves(2, seed=3))
    hidden, enc_lens = enc(speech, lens, layers=[1, -1])
    assert len(hidden) == 2
    feats, feats_lens = enc.frontend(speech, lens)
    feats, _ = enc.normalize(feats, feats_lens)
    ref, ref_lens = enc.encoder(feats, feats_lens)
    torch.testing.assert_close(hidden[1], ref)
    assert torch.equal(enc_lens, ref_lens)
    with pytest.raises(ValueError, match="out of range"):
        enc(speech, lens, layers=[4])


def test_speaker_cmvn_model_reads_speech_cmvn(tmp_path) -> None:
    from tiny_ent_experiment import make_ent_experiment

    exp = make_ent_experiment(tmp_path, speaker_cmvn=True)
    enc = ASREncoder.from_experiment(exp)
    speech, lens = pad(waves(2, seed=4))
    feats, feats_lens = enc.frontend(speech, lens)
    cmvn = torch.stack([torch.full((2, 40), 0.0), torch.full((2, 40), 1.0)], dim=1)
    cmvn[:, 0] = feats[:, :10].mean(dim=1)
    cmvn[:, 1] = 2.0
    hidden, _ = enc(speech, lens, speech_cmvn=cmvn)
    ref, _ = enc.encoder(apply_cmvn(feats, feats_lens, cmvn), feats_lens)
    torch.testing.assert_close(hidden[-1], ref)
    glob, _ = enc(speech, lens)  # no statistics: the global CMVN, not the speaker's
    assert not torch.allclose(glob[-1], ref)


def test_loader_errors_name_the_file(tmp_path, ent_dir) -> None:
    with pytest.raises(DataError, match="config.yaml"):
        ASREncoder.from_experiment(tmp_path)
    bad = ent_dir.parent / "ent_tiny_bad"  # in the same recipe dir (the CMVN stats path)
    shutil.copytree(ent_dir, bad)
    state = torch.load(bad / "valid.loss.ave.pth", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("encoder.encoders.blocks.2")}
    torch.save(state, bad / "valid.loss.ave.pth")
    with pytest.raises(DataError, match="valid.loss.ave.pth"):
        ASREncoder.from_experiment(bad)
