"""`frontend: ssl` through the ENT task: cache, ESPnet training, checkpoints, decoding from the model dir."""

import sys
from pathlib import Path

import torch
import yaml

TEST = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TEST))
sys.path.insert(0, str(TEST / "features"))
from datadir_factory import make_data_dir  # noqa: E402
from ssl_factory import save_tiny_ssl  # noqa: E402

from ent.bin import (  # noqa: E402
    compute_cmvn_stats, extract_ssl_features, inference, pack_model, train, train_tokenizer,
)
from ent.data.datadir import DataDir  # noqa: E402
from ent.decoding.recognizer import DecodeOptions, EmotionRecognizer  # noqa: E402

CONFIG = """\
frontend: ssl
frontend_conf: {{model_dir: {model_dir}, blank_weighting: true, cache_dir: {cache}, cache_miss: error}}
encoder_conf: {{num_blocks: 1, hidden_size: 32, linear_size: 64, heads: 2, conv_mod_kernel_size: 3,
               subsampling_factor: 2}}
predictor_conf: {{embed_dim: 16, hidden_dim: 32}}
model_conf: {{variant: fent}}
joint_conf: {{dim: 32}}
loss_conf: {{lattice_weight: 0.5}}
max_frames_per_batch: 2000
optim: adam
optim_conf: {{lr: 0.002}}
num_att_plot: 0
keep_nbest_models: 1
best_model_criterion: [[valid, loss, min]]
use_tensorboard: false
"""


def test_train_and_decode_fent_with_a_pretrained_front_end(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ENT_LATTICE_BACKEND", "torch")  # a run-time choice, not saved with the model
    model_dir = save_tiny_ssl(tmp_path, "wav2vec2")
    data = make_data_dir(tmp_path, n=4, name="train", durations=[0.6, 0.5, 0.45, 0.4])
    tokens, stats, config, exp = tmp_path / "tok", tmp_path / "stats.npz", tmp_path / "c.yaml", tmp_path / "exp"
    train_tokenizer.main(["--text", str(data / "text"), "--token-type", "char", "--out-dir", str(tokens)])
    compute_cmvn_stats.main(["--data-dir", str(data), "--out", str(stats)])
    config.write_text(CONFIG.format(model_dir=model_dir, cache=tmp_path / "cache"))
    # Training and decoding read every waveform from the cache (cache_miss: error).
    extract_ssl_features.main(["--config", str(config), "--data-dir", str(data)])
    # As ent.sh stage 5 calls it: the fbank CMVN statistics are passed and not applied.
    train.main([
        "--config", str(config), "--train_data_dir", str(data), "--valid_data_dir", str(data),
        "--token_dir", str(tokens), "--normalize_conf", f"stats_file={stats}",
        "--output_dir", str(exp), "--max_epoch", "1",
    ])
    saved = yaml.safe_load((exp / "config.yaml").read_text())
    assert saved["frontend"] == "ssl" and saved["frontend_conf"]["blank_weighting"] is True
    assert "lattice_backend" not in str(saved) and "torch" not in str(saved.get("loss_conf"))
    state = torch.load(exp / "valid.loss.ave.pth", map_location="cpu")
    frontend_keys = sorted(k for k in state if k.startswith("frontend."))
    assert frontend_keys == [
        "frontend.blank_weighting.scale", "frontend.blank_weighting.weight_logits",
        "frontend.weighting.scale", "frontend.weighting.weight_logits",
    ]  # the frozen pretrained weights stay in model_dir, out of the checkpoints
    assert "blank_branch.proj.weight" in state and not any(k.startswith("normalize") for k in state)
    out = tmp_path / "decode"
    inference.main(["--model-dir", str(exp), "--data-dir", str(data), "--out-dir", str(out),
                    "--search", "greedy"])
    assert len((out / "utt2emo").read_text().splitlines()) == 4
    first = (out / "text").read_text().splitlines()[0]

    # Packed: the pretrained model is copied in, the training cache dropped; the
    # pack decodes from another directory after the original model dir is gone.
    packed = tmp_path / "packed"
    pack_model.main(["--model-dir", str(exp), "--out-dir", str(packed)])
    conf = yaml.safe_load((packed / "config.yaml").read_text())["frontend_conf"]
    assert conf["model_dir"] == "ssl_model" and "cache_dir" not in conf and "cache_miss" not in conf
    assert (packed / "ssl_model" / "config.json").is_file()
    # --ssl-model absolute: no copy, the recorded path is absolute.
    pack_model.main(["--model-dir", str(exp), "--out-dir", str(tmp_path / "abs"), "--ssl-model", "absolute"])
    conf = yaml.safe_load((tmp_path / "abs" / "config.yaml").read_text())["frontend_conf"]
    assert conf["model_dir"] == str(model_dir.resolve()) and not (tmp_path / "abs" / "ssl_model").exists()
    model_dir.rename(tmp_path / "moved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recognizer = EmotionRecognizer.from_model_dir(packed, "model.pth", DecodeOptions(search="greedy"))
    utt, _, hyp = first.partition(" ")
    results = recognizer.decode([utt], [DataDir.load(data).load_audio(utt)])
    assert results[0].text == hyp  # the same model as before packing


def test_recipe_configs_build(tmp_path: Path) -> None:
    """Every SSL recipe config builds (a tiny model standing in for wav2vec2-base)."""
    from ent.features.ssl import SSLFrontend
    from ent.tasks.ent_task import ENTTask

    model_dir = save_tiny_ssl(tmp_path, "wav2vec2")
    text = tmp_path / "text"
    text.write_text("u1 hello world\nu2 good morning\n")
    train_tokenizer.main(["--text", str(text), "--token-type", "char", "--out-dir", str(tmp_path / "tok")])
    configs = sorted((TEST.parent / "egs").glob("*/ent1/conf/train_*_wav2vec2.yaml"))
    assert {c.parts[-4] for c in configs} == {"mini_emo", "iemocap"} and len(configs) == 4
    for config in configs:
        args = ENTTask.get_parser().parse_args([
            "--config", str(config), "--frontend_conf", f"model_dir={model_dir}",
            "--token_dir", str(tmp_path / "tok"), "--train_data_dir", "x", "--valid_data_dir", "x",
            "--normalize_conf", "stats_file=unused.npz",
            "--encoder_conf", "num_blocks=1",  # keeps the test fast; the rest as configured
        ])
        model = ENTTask.build_model(args)
        assert isinstance(model.frontend, SSLFrontend) and model.normalize is None
        assert model.frame_shift == 0.04  # 20 ms frames, encoder subsampling 2
        assert (model.blank_branch is not None) == (model.variant == "fent"), config
