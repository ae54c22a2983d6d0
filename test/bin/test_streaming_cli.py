"""Streaming from the command line: inference --streaming / --simulate-streaming, ent-transcribe --streaming."""

import json
import logging
from pathlib import Path

import pytest

from ent.bin import inference, score, transcribe

STREAMING_CONFIG = """\
encoder_conf: {num_blocks: 1, hidden_size: 32, linear_size: 64, heads: 2, conv_mod_kernel_size: 3,
               subsampling_factor: 6, conv_size: 8, dynamic_chunk_training: true, num_left_chunks: 2}
predictor_conf: {embed_dim: 16, hidden_dim: 32}
model_conf: {variant: fent}
joint_conf: {dim: 32}
specaug_conf: {}
max_frames_per_batch: 2000
optim: adam
optim_conf: {lr: 0.002}
num_att_plot: 0
keep_nbest_models: 1
best_model_criterion: [[valid, loss, min]]
use_tensorboard: false
"""
DECODED = ("text", "token", "utt2emo", "frame_emotions", "emo_segments")


@pytest.fixture(scope="module")
def streaming_recipe(tiny_recipe: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``tiny_recipe``'s data, tokens and CMVN, with a 1-epoch streaming FENT (dynamic chunk training)."""
    from ent.bin import train

    root = tmp_path_factory.mktemp("streaming_recipe")
    config = root / "train_fent_streaming.yaml"
    config.write_text(STREAMING_CONFIG)
    train.main([
        "--config", str(config), "--train_data_dir", str(tiny_recipe["data"]),
        "--valid_data_dir", str(tiny_recipe["data"]), "--token_dir", str(tiny_recipe["tokens"]),
        "--normalize_conf", f"stats_file={tiny_recipe['stats']}", "--output_dir", str(root / "exp"),
        "--max_epoch", "1",
    ])
    return {"data": tiny_recipe["data"], "model_dir": root / "exp",
            "full_context_model_dir": tiny_recipe["model_dir"],
            "wavs": sorted((tiny_recipe["root"] / "audio").rglob("*.wav"))}


def _decode(recipe: dict, out: Path, *extra: str) -> None:
    inference.main(["--model-dir", str(recipe["model_dir"]), "--data-dir", str(recipe["data"]),
                    "--out-dir", str(out), "--search", "greedy", "--num-threads", "1", *extra])


def test_streaming_decode_equals_simulated_streaming(streaming_recipe: dict, tmp_path: Path) -> None:
    _decode(streaming_recipe, tmp_path / "stream", "--streaming", "--chunk-ms", "320")
    _decode(streaming_recipe, tmp_path / "sim", "--simulate-streaming", "--chunk-ms", "320", "--batch-size", "4")
    for name in DECODED:
        assert (tmp_path / "stream" / name).read_text() == (tmp_path / "sim" / name).read_text(), name
    frames = (tmp_path / "stream" / "frame_emotions").read_text().splitlines()
    assert len(frames) == 6 and all(line.split()[1] == "0.06" for line in frames)
    # streaming diarization is scored like any decode
    score.main(["--ref-dir", str(streaming_recipe["data"]), "--hyp-dir", str(tmp_path / "stream"), "--diarization"])
    scores = json.loads((tmp_path / "stream" / "scores.json").read_text())
    assert "diarization" in scores


def test_non_streaming_model_is_refused_in_one_line(streaming_recipe: dict, tmp_path: Path, caplog, capsys) -> None:
    model_dir = streaming_recipe["full_context_model_dir"]  # trained without dynamic_chunk_training
    for flag in ("--streaming", "--simulate-streaming"):
        caplog.clear()
        with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_info:
            inference.main(["--model-dir", str(model_dir), "--data-dir", str(streaming_recipe["data"]),
                            "--out-dir", str(tmp_path / "out"), flag])
        assert exit_info.value.code == 1
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert errors == [f"{model_dir}/config.yaml: the model is not a streaming model: its encoder's "
                          "convolutions look ahead (train with encoder_conf: {dynamic_chunk_training: true})"]
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        transcribe.main(["--model", str(model_dir), "--streaming", str(streaming_recipe["wavs"][0])])
    err = capsys.readouterr().err
    assert err.startswith(f"ent-transcribe: {model_dir}/config.yaml: the model is not a streaming model")
    assert err.count("\n") == 1


def test_transcribe_shows_partial_results_then_the_full_result(streaming_recipe: dict, capsys) -> None:
    wav = streaming_recipe["wavs"][-1]
    args = ["--model", str(streaming_recipe["model_dir"]), "--streaming", "--chunk-ms", "320", str(wav)]
    transcribe.main(args)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{wav}: streaming in chunks of 5 encoder frames (300 ms)"
    assert "emotions: 0.00-" in lines[1] and lines[1].lstrip().startswith("0.64s")  # first chunk + look-ahead
    final_at = next(i for i, line in enumerate(lines) if line.startswith(f"{wav}: ["))
    assert final_at >= 3 and "emotion timeline: 0.00-" in lines[-1]

    transcribe.main(["--json", *args])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["final"] for r in records] == [False] * (len(records) - 1) + [True]
    result = records[-1]["result"]
    assert result["file"] == str(wav) and result["emotion"] in ("neutral", "happy", "angry", "sad")
    # the updates add up to the complete result
    assert [w for r in records for w in r["words"]] == result["words"]
    frames = [e for r in records for e in r["frames"]["emotions"]]
    assert len(frames) == round(result["timeline"][-1][1] / records[0]["frames"]["frame_shift"])
    assert "".join(t["piece"] for r in records for t in r["tokens"]).replace("▁", " ").split() == result["text"].split()
