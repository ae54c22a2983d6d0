"""egs/zed/ent1: data preparation from ZED's JSON and the model checks of run.sh."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpora"))
from recipe_copy import PYTHON, copy_recipe, run_script  # noqa: E402
from zed_fixture import EXPECTED, make_zed_tree  # noqa: E402

from ent.bin.validate_data_dir import main as validate_main  # noqa: E402


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    return copy_recipe("zed", tmp_path / "egs" / "zed" / "ent1")


def test_data_sh_prepares_a_valid_data_dir(recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_zed_tree(tmp_path / "ZED")
    out = run_script(recipe, "local/data.sh", "--zed_root", str(root), "--nj", "2", "--python", PYTHON)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"kept: {len(EXPECTED)} utterances" in out.stdout
    ddir = recipe / "data" / "zed"
    validate_main([str(ddir)])  # python -m ent.bin.validate_data_dir data/zed
    assert "errors: 0, warnings: 0" in capsys.readouterr().out
    assert len((ddir / "emo_segments").read_text().splitlines()) == 4
    assert (recipe / "data" / "zed_prep_report.txt").is_file()


def test_data_sh_and_run_sh_errors(recipe: Path, tmp_path: Path) -> None:
    out = run_script(recipe, "local/data.sh", "--python", PYTHON)
    assert out.returncode == 2 and "--zed_root DIR is required" in out.stdout
    out = run_script(recipe, "run.sh", "--help")
    assert out.returncode == 0 and "--model_dirs" in out.stdout
    # Stage 1 only needs no model.
    out = run_script(recipe, "run.sh", "--stop_stage", "1", "--ngpu", "0", "--python", PYTHON)
    assert out.returncode == 2 and "stage 1 needs --zed_root DIR" in out.stdout
    out = run_script(recipe, "run.sh", "--stage", "2", "--ngpu", "0", "--model_dirs", str(tmp_path / "nope"))
    assert out.returncode == 1 and "model dir" in out.stdout and "not found" in out.stdout
    unpacked = tmp_path / "exp" / "fold1" / "ent"
    unpacked.mkdir(parents=True)
    (unpacked / "config.yaml").write_text("token_dir: data/token_list/bpe300\n")
    out = run_script(recipe, "run.sh", "--stage", "2", "--ngpu", "0", "--model_dirs", str(unpacked))
    assert out.returncode == 1 and "training dir without packed/model.pth" in out.stdout
    for m in ("a", "b"):
        (tmp_path / m / "x").mkdir(parents=True)
        (tmp_path / m / "x" / "model.pth").write_bytes(b"")
    out = run_script(recipe, "run.sh", "--stage", "2", "--ngpu", "0",
                     "--model_dirs", f"{tmp_path / 'a' / 'x'} {tmp_path / 'b' / 'x'}", "--model_names", "one")
    assert out.returncode == 2 and "--model_names has 1 names for 2 model dirs" in out.stdout
    out = run_script(recipe, "run.sh", "--stage", "2", "--ngpu", "0",
                     "--model_dirs", f"{tmp_path / 'a' / 'x'} {tmp_path / 'a' / 'x'}")
    assert out.returncode == 2 and "two models get the label 'a_x'" in out.stdout
