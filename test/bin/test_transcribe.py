"""ent-transcribe --plot: the emotion timeline picture of each transcribed file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from ent.bin import transcribe

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path: Path) -> bool:
    if path.read_bytes()[:8] != PNG_MAGIC:
        return False
    with Image.open(path) as im:
        im.verify()
    return True


@pytest.fixture()
def wavs(tiny_recipe: dict) -> list:
    return sorted((tiny_recipe["root"] / "audio").rglob("*.wav"))


def test_plot_one_file_writes_the_picture(tiny_recipe: dict, wavs: list, tmp_path: Path, capsys) -> None:
    png = tmp_path / "pics" / "one.png"
    transcribe.main(["--model", str(tiny_recipe["model_dir"]), "--plot", str(png),
                     str(wavs[0])])
    assert capsys.readouterr().out.startswith(f"{wavs[0]}: [")  # the transcript is printed as without --plot
    assert is_png(png) and [p.name for p in png.parent.iterdir()] == ["one.png"]
    # an existing directory receives <name>.png
    transcribe.main(["--model", str(tiny_recipe["model_dir"]), "--plot",
                     str(tmp_path / "pics"), str(wavs[1])])
    assert is_png(tmp_path / "pics" / f"{wavs[1].stem}.png")


def test_plot_several_files_into_a_directory(tiny_recipe: dict, wavs: list, tmp_path: Path, capsys) -> None:
    out = tmp_path / "timelines"
    transcribe.main(["--model", str(tiny_recipe["model_dir"]), "--json",
                     "--plot", str(out), *map(str, wavs[:3])])
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{w.stem}.png" for w in wavs[:3])
    assert all(is_png(p) for p in out.iterdir())


def test_plot_rules_for_several_files_are_one_line_errors(tiny_recipe: dict, wavs: list, tmp_path: Path,
                                                          capsys) -> None:
    target = tmp_path / "file.png"
    target.write_bytes(b"")
    with pytest.raises(SystemExit):
        transcribe.main(["--model", str(tiny_recipe["model_dir"]), "--plot",
                         str(target), str(wavs[0]), str(wavs[1])])
    err = capsys.readouterr().err
    assert err == f"ent-transcribe: {target}: --plot with 2 audio files needs a directory (it receives one " \
        "<name>.png per file)\n"
    twin = tmp_path / "other" / wavs[0].name
    twin.parent.mkdir()
    shutil.copy(wavs[0], twin)
    with pytest.raises(SystemExit):
        transcribe.main(["--model", str(tiny_recipe["model_dir"]), "--plot",
                         str(tmp_path / "dir"), str(wavs[0]), str(twin)])
    assert f"{twin}: --plot: has the same name as {wavs[0]}" in capsys.readouterr().err
    assert not (tmp_path / "dir").exists()  # refused before anything is decoded or written


def test_plot_paths_rule(tmp_path: Path) -> None:
    assert transcribe.plot_paths(tmp_path / "x.png", ["a/b.wav"]) == [tmp_path / "x.png"]
    assert transcribe.plot_paths(tmp_path, ["a/b.wav"]) == [tmp_path / "b.png"]
    assert transcribe.plot_paths(tmp_path / "new", ["a/b.wav", "c.flac"]) == [tmp_path / "new" / "b.png",
                                                                               tmp_path / "new" / "c.png"]
    help_text = " ".join(transcribe.get_parser().format_help().split())
    assert "with one audio file FILE is the PNG" in help_text and "with several FILE is a directory" in help_text


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


def test_plot_with_streaming(tiny_recipe: dict, wavs: list, tmp_path: Path, capsys) -> None:
    from ent.bin import train

    config = tmp_path / "streaming.yaml"
    config.write_text(STREAMING_CONFIG)
    train.main([
        "--config", str(config), "--train_data_dir", str(tiny_recipe["data"]),
        "--valid_data_dir", str(tiny_recipe["data"]), "--token_dir", str(tiny_recipe["tokens"]),
        "--normalize_conf", f"stats_file={tiny_recipe['stats']}", "--output_dir", str(tmp_path / "exp"),
        "--max_epoch", "1",
    ])
    png = tmp_path / "stream.png"
    transcribe.main(["--model", str(tmp_path / "exp"), "--streaming", "--plot",
                     str(png), str(wavs[0])])
    assert "emotion timeline: 0.00-" in capsys.readouterr().out
    assert is_png(png)
