"""The model option groups, and models saved with the old flat model_conf: migrated, loaded, packed."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ent.bin import pack_model, train_tokenizer
from ent.decoding.recognizer import DecodeOptions, EmotionRecognizer
from ent.kernels.backends import ComputeBackends
from ent.models.model_config import (
    DROPPED_KEYS,
    MOVED_KEYS,
    REMOVED_OPTIONS,
    HeadConf,
    JointConf,
    LossConf,
    migrate_model_config,
)
from ent.utils.errors import DataError

#: model_conf as a config.yaml written before the regrouping holds it: the 23 old keys
#: (the values of egs/mini_emo/ent1/conf/train_fent.yaml, sizes shrunk, and every default).
OLD_MODEL_CONF = {
    "variant": "fent", "joint_dim": 32, "emotion_joint_dim": None, "joint_activation": "tanh",
    "neutral": "neutral", "lattice_mode": "topk", "lattice_topk": 1.0, "rnnt_weight": 1.0, "head_weight": 3.0,
    "lattice_weight": 1.0, "lm_weight": 0.0, "head_dropout": 0.1, "head_pooling": "mean", "head_hidden_dim": 0,
    "label_smoothing": 0.0, "head_skip_mixed": True, "head_prosody": False, "head_prosody_fit": True,
    "head_prosody_l2": 1.0e-3, "frame_shift": 0.04, "ctc_weight": 0.3, "lattice_backend": "auto",
    "rnnt_backend": "auto", "fused_joint": True,
}

NEW_GROUPS = {
    "model_conf": {"variant": "fent", "neutral": "neutral"},
    "joint_conf": {"dim": 32, "emotion_dim": None, "activation": "tanh"},
    "head_conf": {"dropout": 0.1, "skip_mixed": True, "prosody": False, "prosody_l2": 1.0e-3},
    "loss_conf": {"lattice_mode": "topk", "lattice_topk": 1.0, "rnnt_weight": 1.0, "head_weight": 3.0,
                  "lattice_weight": 1.0, "predictor_lm_weight": 0.0, "label_smoothing": 0.0, "ctc_weight": 0.3},
}


def test_every_old_key_has_a_place() -> None:
    assert len(OLD_MODEL_CONF) == 24  # 23 options and variant
    assert set(OLD_MODEL_CONF) == {"variant", "neutral"} | set(MOVED_KEYS) | set(DROPPED_KEYS) | set(REMOVED_OPTIONS)
    groups = {"joint_conf": JointConf, "head_conf": HeadConf, "loss_conf": LossConf}
    for group, key in MOVED_KEYS.values():
        assert key in groups[group].__dataclass_fields__, (group, key)


def test_old_model_conf_migrates_to_the_groups() -> None:
    old = {"model_conf": dict(OLD_MODEL_CONF), "max_epoch": 7}
    new = migrate_model_config(old)
    assert new == dict(NEW_GROUPS, max_epoch=7)
    assert old["model_conf"] == OLD_MODEL_CONF  # the input is not modified
    assert migrate_model_config(new) == new  # the current layout is left alone
    # an old key wins over a group's default (the parser fills the groups with their defaults)
    mixed = migrate_model_config({"model_conf": {"variant": "ent", "head_weight": 3.0},
                                  "loss_conf": {"head_weight": 1.0, "ctc_weight": 0.0}})
    assert mixed["loss_conf"] == {"head_weight": 3.0, "ctc_weight": 0.0} and mixed["model_conf"] == {"variant": "ent"}


@pytest.mark.parametrize("key, value", [("head_pooling", "stats"), ("head_hidden_dim", 256),
                                        ("head_prosody_fit", False)])
def test_a_removed_option_fails_in_one_line_naming_the_revision(key: str, value) -> None:
    with pytest.raises(ValueError) as err:
        migrate_model_config({"model_conf": dict(OLD_MODEL_CONF, **{key: value})})
    message = str(err.value)
    assert "\n" not in message and f"model_conf.{key}" in message and "git checkout 08fe8af" in message


def test_backends_come_from_the_environment() -> None:
    assert ComputeBackends.from_env({}) == ComputeBackends("auto", "auto", True)
    env = {"ENT_RNNT_BACKEND": "torchaudio", "ENT_LATTICE_BACKEND": "torch", "ENT_FUSED_JOINT": "false"}
    assert ComputeBackends.from_env(env) == ComputeBackends("torchaudio", "torch", False)
    with pytest.raises(ValueError, match="ENT_FUSED_JOINT"):
        ComputeBackends.from_env({"ENT_FUSED_JOINT": "maybe"})
    with pytest.raises(ValueError, match="ENT_LATTICE_BACKEND"):
        ComputeBackends.from_env({"ENT_LATTICE_BACKEND": "fast"})


def _model_dir(tmp_path: Path, model_conf: dict, groups: dict) -> Path:
    """A model directory as training leaves it: config.yaml (the given layout), checkpoint, token list."""
    text = tmp_path / "text"
    text.write_text("u1 hello there\nu2 a quiet day\n", encoding="utf-8")
    tokens = tmp_path / "tokens"
    if not tokens.is_dir():
        train_tokenizer.main(["--text", str(text), "--token-type", "char", "--out-dir", str(tokens)])
    model_dir = tmp_path / f"model_{len(list(tmp_path.glob('model_*')))}"
    model_dir.mkdir()
    config = {
        "token_dir": str(tokens), "emotions": "neutral,happy,angry,sad", "frontend": "fbank",
        "frontend_conf": {"n_mels": 20}, "normalize_conf": {}, "specaug_conf": {}, "speaker_cmvn": False,
        "encoder": "conformer", "encoder_conf": {"num_blocks": 1, "hidden_size": 16, "linear_size": 32, "heads": 2,
                                                 "conv_mod_kernel_size": 3},
        "predictor": "rnn", "predictor_conf": {"embed_dim": 8, "hidden_dim": 16}, "blank_predictor_conf": {},
        "model_conf": model_conf, **groups,
    }
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return model_dir


def test_a_model_saved_with_the_old_model_conf_loads_decodes_and_repacks(tmp_path: Path) -> None:
    new_dir = _model_dir(tmp_path, NEW_GROUPS["model_conf"], {k: v for k, v in NEW_GROUPS.items() if k != "model_conf"})
    old_dir = _model_dir(tmp_path, OLD_MODEL_CONF, {})
    # a checkpoint of the current model, saved beside both configs (parameter names are unchanged)
    import argparse

    from ent.tasks.ent_task import ENTTask

    torch.manual_seed(0)
    model = ENTTask.build_model(argparse.Namespace(**yaml.safe_load((new_dir / "config.yaml").read_text())))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    for d in (new_dir, old_dir):
        torch.save(model.state_dict(), d / "model.pth")
    wave = (0.1 * np.sin(np.arange(16000) * 0.05)).astype(np.float32)
    options = DecodeOptions(search="greedy")
    results = {}
    for name, d in (("new", new_dir), ("old", old_dir)):
        rec = EmotionRecognizer.from_model_dir(d, "model.pth", options=options)
        assert rec.model.loss_conf == LossConf(**NEW_GROUPS["loss_conf"]) and rec.model.head_conf.skip_mixed
        assert rec.model.frame_shift == pytest.approx(0.04)
        for key, value in model.state_dict().items():
            assert torch.equal(rec.model.state_dict()[key], value), key
        (results[name],) = rec.decode(["u"], [wave])
    assert results["old"].text == results["new"].text
    assert results["old"].frame_emotions == results["new"].frame_emotions
    assert results["old"].emotion_scores == pytest.approx(results["new"].emotion_scores, abs=0)
    # packing writes the current layout; the pack loads
    pack_model.pack_model(old_dir, "model.pth", tmp_path / "packed")
    packed = yaml.safe_load((tmp_path / "packed" / "config.yaml").read_text())
    assert {k: packed[k] for k in NEW_GROUPS} == NEW_GROUPS
    (again,) = EmotionRecognizer.from_model_dir(tmp_path / "packed", "model.pth", options=options).decode(["u"], [wave])
    assert again.text == results["new"].text and again.frame_emotions == results["new"].frame_emotions
    # a removed option: one line naming the config and the revision that has it, for loading and packing
    bad_dir = _model_dir(tmp_path, dict(OLD_MODEL_CONF, head_pooling="stats"), {})
    torch.save(model.state_dict(), bad_dir / "model.pth")
    for load in (lambda: EmotionRecognizer.from_model_dir(bad_dir, "model.pth"),
                 lambda: pack_model.pack_model(bad_dir, "model.pth", tmp_path / "packed_bad")):
        with pytest.raises(DataError) as err:
            load()
        assert str(err.value).startswith(f"{bad_dir / 'config.yaml'}: model_conf.head_pooling: 'stats'")
        assert "\n" not in str(err.value) and "08fe8af" in str(err.value)
