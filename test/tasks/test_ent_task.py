"""Training through ESPnet's Trainer: checkpoints, resumption, averaging."""

from pathlib import Path

import torch

from ent.bin import train


def run_training(recipe: dict, out: Path, max_epoch: int) -> None:
    train.main([
        "--config", str(recipe["config"]), "--train_data_dir", str(recipe["data"]),
        "--valid_data_dir", str(recipe["data"]), "--token_dir", str(recipe["tokens"]),
        "--normalize_conf", f"stats_file={recipe['stats']}",
        "--output_dir", str(out), "--max_epoch", str(max_epoch), "--resume", "true",
    ])


def test_train_resume_and_average(tiny_recipe: dict, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    run_training(tiny_recipe, exp, max_epoch=1)
    first = torch.load(exp / "1epoch.pth", map_location="cpu")
    assert (exp / "checkpoint.pth").is_file() and not (exp / "2epoch.pth").exists()
    # A second call resumes from the checkpoint: epoch 1 is not trained again.
    run_training(tiny_recipe, exp, max_epoch=2)
    assert (exp / "2epoch.pth").is_file()
    again = torch.load(exp / "1epoch.pth", map_location="cpu")
    assert all(torch.equal(first[k], again[k]) for k in first)
    averaged = torch.load(exp / "valid.loss.ave.pth", map_location="cpu")
    assert set(averaged) == set(first)
    config = (exp / "config.yaml").read_text()
    assert "token_dir" in config and "variant: fent" in config


def test_built_model_uses_fast_dropout(tiny_recipe: dict) -> None:
    from ent.decoding.recognizer import EmotionRecognizer
    from ent.nets.dropout import FastDropout

    model = EmotionRecognizer.from_model_dir(tiny_recipe["model_dir"]).model
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(type(m) is FastDropout for m in dropouts)


def test_prosody_expert_is_fitted_before_training_and_stays_fixed(tiny_recipe: dict, tmp_path: Path) -> None:
    import numpy as np

    from conftest import TINY_TRAIN_CONFIG
    from ent.bin import compute_cmvn_stats
    from ent.data.datadir import DataDir
    from ent.decoding.recognizer import EmotionRecognizer
    from ent.features.cmvn import normalized_prosody_table
    from ent.features.fbank import Fbank
    from ent.nets.utterance_head import UtteranceEmotionHead

    data = tiny_recipe["data"]
    stats = tmp_path / "stats82.npz"
    compute_cmvn_stats.main(["--data-dir", str(data), "--out", str(stats), "--pitch"])
    config = tmp_path / "prosody.yaml"
    config.write_text(
        TINY_TRAIN_CONFIG.replace("model_conf: {variant: fent}", "model_conf: {variant: fent}\nhead_conf: {prosody: true}")
        + "frontend_conf: {pitch: true}\nspeaker_cmvn: true\n"
    )
    exp = tmp_path / "exp"
    train.main([
        "--config", str(config), "--train_data_dir", str(data), "--valid_data_dir", str(data),
        "--token_dir", str(tiny_recipe["tokens"]), "--normalize_conf", f"stats_file={stats}",
        "--output_dir", str(exp), "--max_epoch", "1",
    ])
    state = torch.load(exp / "1epoch.pth", map_location="cpu")
    # the expert in the checkpoint is the logistic regression fitted on the training set
    dd = DataDir.load(data)
    table = normalized_prosody_table(dd, Fbank(pitch=True), per_speaker=True)
    emotions = ["neutral", "happy", "angry", "sad"]
    x = torch.from_numpy(np.stack([table[u] for u in dd.utt_ids]))
    y = torch.tensor([emotions.index(dd.utt2emo[u]) for u in dd.utt_ids])
    head = UtteranceEmotionHead(4, 4, 4, prosody_dim=x.size(1))
    head.fit_prosody_expert(x, y, l2=1.0e-3)
    torch.testing.assert_close(state["head.prosody.weight"], head.prosody.weight, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(state["head.prosody.bias"], head.prosody.bias, atol=1e-5, rtol=1e-4)
    assert float(state["prosody_stats"][0, 0]) > 0  # training accumulated the global statistics
    # decoding reads the speakers' prosody statistics
    rec = EmotionRecognizer.from_model_dir(exp, "1epoch.pth")
    stats_by_utt = rec.speaker_stats(dd, dd.utt_ids)
    first = next(iter(stats_by_utt.values()))  # SpeakerStats: CMVN and prosody statistics
    assert first.cmvn.shape == (2, 82) and first.prosody.shape == (2, x.size(1))
    utt = dd.utt_ids[0]
    (result,) = rec.decode([utt], [dd.load_audio(utt)], cmvn=[stats_by_utt[utt]])
    assert result.emotion in emotions


def test_bad_model_conf_value_is_one_line_naming_the_config(tiny_recipe: dict, tmp_path: Path, caplog) -> None:
    import pytest

    config = tmp_path / "bad.yaml"
    text = tiny_recipe["config"].read_text()
    assert "model_conf: {" in text
    config.write_text(text.replace("model_conf: {", "model_conf: {neutral: calm, "))
    recipe = dict(tiny_recipe, config=config)
    with pytest.raises(SystemExit) as exit_info:
        run_training(recipe, tmp_path / "exp", max_epoch=1)
    assert exit_info.value.code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [f"{config}: model options: neutral class 'calm' is not among the emotions "
                      "['neutral', 'happy', 'angry', 'sad']"]
    assert not (tmp_path / "exp" / "checkpoint.pth").exists()


def test_max_frames_drops_long_utterances_and_counts_them(tmp_path: Path, caplog) -> None:
    import argparse
    import sys

    from espnet2.train.distributed_utils import DistributedOption

    from ent.bin import train_tokenizer
    from ent.tasks.ent_task import MAX_FRAMES, ENTTask, long_filter

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from datadir_factory import make_data_dir

    data = make_data_dir(tmp_path, n=5, name="train", durations=[1.0, 3.0, 1.2, 2.5, 1.6])
    tokens = tmp_path / "tok"
    train_tokenizer.main(["--text", str(data / "text"), "--token-type", "char", "--out-dir", str(tokens)])

    def utterances(max_frames: int) -> list:
        args = argparse.Namespace(
            train_data_dir=str(data), valid_data_dir=str(data), token_dir=str(tokens), min_frames=20,
            max_frames=max_frames, speaker_cmvn=False, model_conf={}, emotions="neutral,happy,angry,sad",
            use_emo_segments=True, max_frames_per_batch=100000, max_batch_size=None, seed=0,
            num_iters_per_epoch=None, num_workers=0, ngpu=0,
        )
        factory = ENTTask.build_iter_factory(args, DistributedOption(), "train")
        return sorted(utt for ids, _ in factory.build_iter(1) for utt in ids)

    with caplog.at_level("WARNING"):
        kept = utterances(200)  # 2 s of 10 ms frames: the 2.5-s and 3-s utterances go
    assert kept == ["utt001", "utt003", "utt005"]
    assert "skipping 2 utterances longer than --max_frames 200" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert utterances(0) == [f"utt00{i}" for i in range(1, 6)]  # 0: no limit
        assert utterances(MAX_FRAMES) == [f"utt00{i}" for i in range(1, 6)]
    assert "--max_frames" not in caplog.text
    assert long_filter(["a", "b", "c"], {"a": 5, "b": 6, "c": 7}, 6) == (["a", "b"], 1)
    assert long_filter(["a"], {"a": 5}, 0) == (["a"], 0)
