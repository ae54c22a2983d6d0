"""egs/iemocap/ent1: data preparation from the release layout, configs, and (slow) the full run."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpora"))
from iemocap_fixture import EXPECTED, make_iemocap_tree  # noqa: E402
from recipe_copy import PYTHON, REPO, copy_recipe, run_script, stub_driver  # noqa: E402

from ent.bin.validate_data_dir import main as validate_main  # noqa: E402
from zed_fixture import make_zed_tree  # noqa: E402

RECIPE = REPO / "egs" / "iemocap" / "ent1"
TINY_CONFIG = """\
frontend_conf: {{n_mels: 80}}
encoder_conf: {{num_blocks: 1, hidden_size: 32, linear_size: 64, heads: 2, conv_mod_kernel_size: 3}}
predictor_conf: {{embed_dim: 16, hidden_dim: 32}}
model_conf: {{variant: {variant}}}
joint_conf: {{dim: 32}}
loss_conf: {{lattice_weight: 0.5}}
specaug_conf: {{}}
max_frames_per_batch: 2000
optim: adam
optim_conf: {{lr: 0.002}}
max_epoch: 1
num_att_plot: 0
keep_nbest_models: 1
best_model_criterion: [[valid, loss, min]]
use_tensorboard: false
"""


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    return copy_recipe("iemocap", tmp_path / "egs" / "iemocap" / "ent1")


def test_recipe_layout() -> None:
    assert (RECIPE / "ent.sh").resolve() == (REPO / "egs" / "TEMPLATE" / "ent1" / "ent.sh").resolve()
    assert (RECIPE / "utils").is_symlink()
    for name in ("run.sh", "local/data.sh"):
        assert (RECIPE / name).stat().st_mode & 0o111, f"{name} is not executable"


def test_data_sh_prepares_sessions_and_folds_that_validate(recipe: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    root = make_iemocap_tree(tmp_path / "IEMOCAP_full_release")
    out = run_script(recipe, "local/data.sh", "--iemocap_root", str(root), "--nj", "3", "--python", PYTHON)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "kept: 25 utterances" in out.stdout and "missing audio: 1" in out.stdout
    data = recipe / "data"
    tested = []
    for k in range(1, 6):
        for name in ("train", "dev", "test"):
            validate_main([str(data / f"fold{k}" / name)])  # python -m ent.bin.validate_data_dir DIR
            assert "errors: 0, warnings: 0" in capsys.readouterr().out
        tested += [line.split()[0] for line in (data / f"fold{k}" / "test" / "text").read_text().splitlines()]
    assert sorted(tested) == sorted(EXPECTED)  # every kept utterance is tested exactly once
    again = run_script(recipe, "local/data.sh", "--iemocap_root", str(root), "--python", PYTHON)
    assert again.returncode == 0 and "already prepared" in again.stdout


def test_data_sh_errors(recipe: Path, tmp_path: Path) -> None:
    out = run_script(recipe, "local/data.sh", "--python", PYTHON)
    assert out.returncode == 2 and "--iemocap_root DIR is required" in out.stdout
    out = run_script(recipe, "local/data.sh", "--iemocap_root", str(tmp_path), "--python", PYTHON)
    assert out.returncode == 1 and "must name the IEMOCAP release root" in out.stdout
    out = run_script(recipe, "local/data.sh", "--iemocap_root", str(tmp_path), "--strict", "maybe")
    assert out.returncode == 2 and "--strict must be true or false" in out.stdout


def test_run_sh_help_and_option_errors(recipe: Path) -> None:
    out = run_script(recipe, "run.sh", "--help")
    assert out.returncode == 0 and "--iemocap_root" in out.stdout and "--folds" in out.stdout
    assert "--mix true|false" in out.stdout
    out = run_script(recipe, "run.sh", "--folds", "1 7", "--ngpu", "0")
    assert out.returncode == 2 and "--folds takes numbers among 1 2 3 4 5, got '7'" in out.stdout
    out = run_script(recipe, "run.sh", "--ngpu", "0", "--python", PYTHON)
    assert out.returncode == 2 and "stage 1 needs --iemocap_root DIR" in out.stdout
    out = run_script(recipe, "run.sh", "--stage", "2", "--ngpu", "0", "--python", PYTHON)
    assert out.returncode == 1 and "data/fold1/train not found: run stage 1 first" in out.stdout


@pytest.mark.parametrize("variant", ["ent", "fent"])
def test_configs_build_the_gpu_sized_models(variant: str, tmp_path: Path) -> None:
    from ent.bin import train_tokenizer
    from ent.tasks.ent_task import ENTTask

    (tmp_path / "text").write_text("u1 hello world\nu2 the cat sat on the mat\n")
    train_tokenizer.main(["--text", str(tmp_path / "text"), "--token-type", "char",
                          "--out-dir", str(tmp_path / "tok")])
    args = ENTTask.get_parser().parse_args([
        "--config", str(RECIPE / "conf" / f"train_{variant}.yaml"), "--token_dir", str(tmp_path / "tok"),
        "--train_data_dir", "unused", "--valid_data_dir", "unused",
    ])
    model = ENTTask.build_model(args)
    assert model.variant == variant
    assert len(model.encoder.encoders.blocks) == 12
    assert 15e6 < sum(p.numel() for p in model.parameters()) < 40e6


@pytest.mark.slow
def test_full_run_on_the_fixture_then_zed_on_its_models(tmp_path: Path) -> None:
    """run.sh (fold 1, tiny configs) to RESULTS.md, then egs/zed/ent1/run.sh with the packed models."""
    recipe = copy_recipe("iemocap", tmp_path / "egs" / "iemocap" / "ent1")
    for variant in ("ent", "fent"):
        (recipe / "conf" / f"tiny_{variant}.yaml").write_text(TINY_CONFIG.format(variant=variant))
    root = make_iemocap_tree(tmp_path / "IEMOCAP_full_release")
    out = run_script(recipe, "run.sh", "--iemocap_root", str(root), "--folds", "1", "--ngpu", "0", "--nj", "1",
                     "--python", PYTHON, "--train_configs", "conf/tiny_ent.yaml conf/tiny_fent.yaml",
                     "--token_type", "char", timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = (recipe / "RESULTS.md").read_text()
    assert "## tiny_ent" in results and "## tiny_fent" in results and "|fold1|5|" in results
    assert "mean ± std (1 fold)" in results
    for tag in ("tiny_ent_fbank_char_mix", "tiny_fent_fbank_char_mix"):
        assert (recipe / "exp" / "fold1" / tag / "packed" / "model.pth").is_file()
        assert (recipe / "exp" / "fold1" / tag / "decode_decode_nolm_valid.loss.ave" / "test" / "scores.json").is_file()
    assert (recipe / "data" / "fold1" / "token_list" / "char" / "tokens.txt").is_file()
    # Emotion mixing (on by default): within the fold's training speakers, the test session never mixed.
    fold = recipe / "data" / "fold1"
    speakers = lambda d: {line.split()[1] for line in (d / "utt2spk").read_text().splitlines()}  # noqa: E731
    mixes = [line.split() for line in (fold / "train_mix" / "utt2spk").read_text().splitlines() if "-mix-" in line]
    assert mixes and {spk for _, spk in mixes} <= speakers(fold / "train")
    assert not speakers(fold / "train_mix") & speakers(fold / "test")
    assert not (fold / "test_mix").exists()
    assert "train_data_dir: data/fold1/train_mix" in (
        recipe / "exp" / "fold1" / "tiny_ent_fbank_char_mix" / "config.yaml").read_text()

    zed = copy_recipe("zed", tmp_path / "egs" / "zed" / "ent1")
    zed_root = make_zed_tree(tmp_path / "ZED")
    models = " ".join(str(recipe / "exp" / "fold1" / t) for t in ("tiny_ent_fbank_char_mix", "tiny_fent_fbank_char_mix"))
    out = run_script(zed, "run.sh", "--zed_root", str(zed_root), "--model_dirs", models, "--ngpu", "0",
                     "--python", PYTHON, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = (zed / "RESULTS.md").read_text()
    assert "|model|Snt|EDER|frame acc|WER|CER|" in table
    assert "|fold1_tiny_ent_fbank_char_mix|4|" in table and "|fold1_tiny_fent_fbank_char_mix|4|" in table


STUB_ENT_SH = """#!/usr/bin/env bash
# Stands in for ent.sh: answers --show_tags, records its options, fails for --datadir data/fold3 with FAIL set.
case " $* " in *" --show_tags true "*) echo "conf/train_ent.yaml ent_fbank_bpe300 decode_decode_nolm_valid.loss.ave"; exit 0 ;; esac
echo "ent.sh $*"
case " $* " in *" data/fold3 "*) [ -n "${FAIL:-}" ] && { echo "fold 3 broke"; exit 3; } ;; esac
sleep 1
echo "Successfully finished."
"""


def stub_recipe(tmp_path: Path) -> Path:
    return stub_driver(copy_recipe("iemocap", tmp_path / "egs" / "iemocap" / "ent1"), "ent.sh", STUB_ENT_SH)


def test_folds_are_train_cmd_jobs_that_reach_packing_and_the_ssl_cache(tmp_path: Path) -> None:
    recipe = stub_recipe(tmp_path)
    assert (recipe / "cmd.sh").is_file()
    out = run_script(recipe, "run.sh", "--stage", "2", "--stop_stage", "11", "--folds", "1 3", "--fold_nj", "2",
                     "--ngpu", "0", "--python", PYTHON, "--ent_opts", "--ssl_cache_configs conf/ssl.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    for k in (1, 3):
        log = (recipe / "exp" / f"fold{k}" / "ent.log").read_text()
        assert "--stage 2 --stop_stage 11 " in log  # packing is stage 11 of ent.sh, the SSL cache stage 5
        assert f"--datadir data/fold{k} --expdir exp/fold{k} " in log and "--ssl_cache_configs conf/ssl.yaml" in log
        assert "# Ended (code 0)" in log
    # The default run goes on to the aggregation (stage 12) of the ent.sh tags.
    out = run_script(recipe, "run.sh", "--stage", "12", "--folds", "1", "--ngpu", "0", "--python", PYTHON)
    assert out.returncode != 0
    assert "Stage 12: aggregating folds 1 of ent_fbank_bpe300" in out.stdout
    assert "decode_decode_nolm_valid.loss.ave" in out.stdout + out.stderr


def test_a_failed_fold_stops_the_others_and_shows_its_log(tmp_path: Path) -> None:
    recipe = stub_recipe(tmp_path)
    out = run_script(recipe, "run.sh", "--stage", "2", "--stop_stage", "11", "--folds", "1 3", "--fold_nj", "2",
                     "--ngpu", "0", "--python", PYTHON, env={"FAIL": "1"})
    assert out.returncode == 1
    assert "job FOLD=3 (one of 2) failed (exit code 3)" in out.stderr and "fold 3 broke" in out.stderr
    assert "a fold failed" in out.stdout
    assert "# Killed" in (recipe / "exp" / "fold1" / "ent.log").read_text()


@pytest.mark.slow
def test_the_ssl_cache_runs_under_the_recipe_stop_stage(tmp_path: Path) -> None:
    """run.sh --stop_stage 11 (the fold part) caches the SSL features of every fold set (ent.sh stage 5)."""
    sys.path.insert(0, str(REPO / "test" / "features"))
    from ssl_factory import save_tiny_ssl

    recipe = copy_recipe("iemocap", tmp_path / "egs" / "iemocap" / "ent1")
    model = save_tiny_ssl(tmp_path, "hubert")
    (recipe / "conf" / "ssl.yaml").write_text(
        f"frontend: ssl\nfrontend_conf: {{model_dir: {model}, cache_dir: exp/ssl_cache/tiny}}\n"
    )
    root = make_iemocap_tree(tmp_path / "IEMOCAP_full_release")
    out = run_script(recipe, "run.sh", "--iemocap_root", str(root), "--folds", "1", "--ngpu", "0", "--nj", "1",
                     "--python", PYTHON, "--stop_stage", "11", "--train_configs", "", "--token_type", "char",
                     "--ent_opts", "--ssl_cache_configs conf/ssl.yaml", timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = (recipe / "exp" / "fold1" / "ent.log").read_text()
    assert "Stage 5: SSL feature cache of conf/ssl.yaml for data/fold1/train_mix data/fold1/dev_mix" in log
    manifest = json.loads((recipe / "exp" / "ssl_cache" / "tiny" / "manifest.json").read_text())
    fold = recipe / "data" / "fold1"
    utts = set()
    for name in ("train_mix", "dev_mix", "dev", "test"):
        utts |= {line.split()[0] for line in (fold / name / "wav.scp").read_text().splitlines()}
    assert {u for entry in manifest["entries"].values() for u in entry["utt_ids"]} == utts  # every set, once
