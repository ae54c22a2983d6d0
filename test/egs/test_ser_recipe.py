"""egs/*/ser1: the SER baselines' task folders and their stage driver ser.sh."""

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpora"))
from recipe_copy import PYTHON, REPO, copy_recipe, copy_ser_recipe, run_script  # noqa: E402

TEMPLATE = REPO / "egs" / "TEMPLATE" / "ser1"
TINY_FCN = """\
model: attention_fcn
model_conf: {channels: [4, 8, 8, 8, 8], attention_dim: 8, dropout: 0.0}
max_frames_per_batch: 1000
optim: adam
optim_conf: {lr: 0.005}
max_epoch: 1
num_att_plot: 0
keep_nbest_models: 1
best_model_criterion: [[valid, acc_emo, max]]
use_tensorboard: false
"""


@pytest.mark.parametrize("corpus", ["mini_emo", "iemocap"])
def test_layout_and_configs(corpus: str) -> None:
    recipe = REPO / "egs" / corpus / "ser1"
    assert (recipe / "ser.sh").resolve() == (TEMPLATE / "ser.sh").resolve()
    for name in ("run.sh", "local/data.sh"):
        assert (recipe / name).stat().st_mode & 0o111, f"{name} is not executable"
    import yaml

    from ent.models.ser import SER_MODELS

    models = set()
    for config in sorted((recipe / "conf").glob("train_*.yaml")):
        conf = yaml.safe_load(config.read_text())
        assert conf["model"] == "functional_classifier" or conf["model"] in SER_MODELS, config
        models.add(conf["model"])
        if conf["model"] != "functional_classifier":  # dev-only model selection
            assert conf["best_model_criterion"][0][0] == "valid", config
    assert models == set(SER_MODELS) | {"functional_classifier"}
    run_sh = (recipe / "run.sh").read_text()
    for config in sorted((recipe / "conf").glob("train_*.yaml")):
        assert f"conf/{config.name}" in run_sh  # every config runs by default


def test_show_tags_and_option_errors(tmp_path: Path) -> None:
    recipe = copy_ser_recipe("mini_emo", tmp_path / "egs" / "mini_emo" / "ser1")
    (recipe / "conf" / "tiny.yaml").write_text(TINY_FCN)
    out = run_script(recipe, "ser.sh", "--python", PYTHON, "--show_tags", "true", "--train_configs",
                     "conf/train_functional.yaml conf/tiny.yaml", "--train_args", "--max_epoch 2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "conf/train_functional.yaml functional decode_valid.acc_emo.ave",  # no training options to fold
        "conf/tiny.yaml tiny_max_epoch2 decode_valid.acc_emo.ave",
    ]
    out = run_script(recipe, "ser.sh", "--python", PYTHON, "--train_configs", "conf/missing.yaml")
    assert out.returncode == 2 and "conf/missing.yaml not found" in out.stdout
    (recipe / "conf" / "nomodel.yaml").write_text("optim: adam\n")
    out = run_script(recipe, "ser.sh", "--python", PYTHON, "--train_configs", "conf/nomodel.yaml")
    assert out.returncode == 2 and "names no model" in out.stdout
    out = run_script(recipe, "ser.sh", "--python", PYTHON, "--train_configs", "conf/tiny.yaml conf/tiny.yaml")
    assert out.returncode == 2 and "two --train_configs get the model tag tiny" in out.stdout


def fake_ent_recipe(root: Path) -> Path:
    """An ENT recipe folder with data dirs, a char token list and one decoded "ENT model"."""
    from datadir_factory import make_data_dir

    from ent.bin import train_tokenizer

    ent = root / "ent1"
    data = ent / "data"
    for name, n in (("train", 8), ("dev", 4), ("test", 4)):
        make_data_dir(data, n=n, name=name, durations=[0.8, 1.0, 0.9, 1.1] * (n // 4))
    train_tokenizer.main(["--text", str(data / "train" / "text"), "--token-type", "char",
                          "--out-dir", str(data / "token_list" / "char")])
    model = ent / "exp" / "ent_fbank_pitch_char_mix"
    for dset in ("dev", "test"):
        hyp = model / "decode_decode_lm8gram_valid.loss.ave" / dset
        hyp.mkdir(parents=True)
        shutil.copy(data / dset / "utt2emo", hyp / "utt2emo")  # a perfect "ENT"
        shutil.copy(data / dset / "text", hyp / "text")
    (model / "config.yaml").write_text("token_dir: data/token_list/char\n")
    return ent


STAND_IN_PYTHON = """#!/usr/bin/env bash
# Stands in for python: a training writes the model file ser.sh looks for, a decoding copies the
# reference emotions (a perfect model); everything else (config reads, scoring) runs for real.
opt() {{ local want=$1; shift; while [ $# -gt 1 ]; do [ "$1" = "$want" ] && {{ echo "$2"; return; }}; shift; done; }}
case "$1 $2" in
  "-m ent.bin.train_ser") echo "train_ser $*" >> calls; out=$(opt --output_dir "$@"); mkdir -p "$out"
    touch "$out/valid.acc_emo.ave.pth"; cp "$(opt --config "$@")" "$out/config.yaml"; exit 0 ;;
  "-m ent.bin.train_ser_functional") echo "train_ser_functional $*" >> calls
    touch "$(opt --out-dir "$@")/functional_classifier.json"; exit 0 ;;
  "-m ent.bin.ser_inference") cp "$(opt --data-dir "$@")/utt2emo" "$(opt --out-dir "$@")/utt2emo"; exit 0 ;;
esac
exec {python} "$@"
"""


def test_stages_2_to_4_with_a_stand_in_python(tmp_path: Path) -> None:
    """Jobs written and run through the runner, rows beside ENT's, reruns skip work (no model is trained)."""
    fake_ent_recipe(tmp_path)
    recipe = copy_ser_recipe("mini_emo", tmp_path / "ser1")
    (recipe / "conf" / "tiny_fcn.yaml").write_text(TINY_FCN)
    (recipe / "fakepy").write_text(STAND_IN_PYTHON.format(python=PYTHON))
    (recipe / "fakepy").chmod(0o755)
    args = ("run.sh", "--python", "./fakepy", "--train_configs", "conf/train_functional.yaml conf/tiny_fcn.yaml",
            "--train_args", "--max_epoch 2")
    out = run_script(recipe, *args)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    calls = (recipe / "calls").read_text()
    assert "--output_dir exp/tiny_fcn_max_epoch2" in calls and "--max_epoch 2" in calls
    assert "--out-dir exp/functional" in calls and "--emotions neutral,happy,angry,sad" in calls
    for tag in ("functional", "tiny_fcn_max_epoch2"):
        assert "# Ended (code 0)" in (recipe / "exp" / tag / "train.log").read_text()
        assert (recipe / "exp" / tag / "train.sh").read_text().startswith(
            f"#!/usr/bin/env bash\n# Written by ser.sh (stage 2): the training of exp/{tag}, run from ")
        # run.sh of the experiment: this command line, then the options that retrain this model alone
        run_sh = (recipe / "exp" / tag / "run.sh").read_text()
        assert run_sh.startswith("#!/usr/bin/env bash\n# Written by ser.sh (stage 2) on ")
        assert f"cd {recipe}\n" in run_sh and "./ser.sh --local_data_opts " in run_sh
        config = "conf/train_functional.yaml" if tag == "functional" else "conf/tiny_fcn.yaml"
        assert run_sh.rstrip().endswith(f'--stage 2 --train_configs {config} "$@"; exit $?')
        for dset in ("dev", "test"):
            ddir = recipe / "exp" / tag / "decode_valid.acc_emo.ave" / dset
            assert (ddir / ".done").is_file() and "# Ended (code 0)" in (ddir / "decode.log").read_text()
            assert json.loads((ddir / "scores.json").read_text())["emotion"]["n_utts"] == 4
    results = (recipe / "RESULTS.md").read_text()
    for section in ("## functional/decode_valid.acc_emo.ave", "## tiny_fcn_max_epoch2/decode_valid.acc_emo.ave",
                    "## ent_fbank_pitch_char_mix/decode_decode_lm8gram_valid.loss.ave"):
        assert section in results
    assert (recipe / "exp" / "ent_scores" / "ent_fbank_pitch_char_mix" / "test" / "scores.json").is_file()
    assert (recipe / "exp" / "run.sh.log").read_text().startswith("./ser.sh --local_data_opts ")
    again = run_script(recipe, *args, "--stage", "2", "--stop_stage", "3")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("already trained") == 2 and again.stdout.count("already decoded") == 4
    assert len((recipe / "calls").read_text().splitlines()) == 2  # no training ran again


@pytest.mark.slow
def test_mini_emo_run_trains_decodes_and_scores_beside_ent(tmp_path: Path) -> None:
    """run.sh with the functional baseline and a tiny FCN: rows beside the ENT row, reruns skip work."""
    fake_ent_recipe(tmp_path)
    recipe = copy_ser_recipe("mini_emo", tmp_path / "ser1")
    (recipe / "conf" / "tiny_fcn.yaml").write_text(TINY_FCN)
    args = ("run.sh", "--python", PYTHON, "--train_configs", "conf/train_functional.yaml conf/tiny_fcn.yaml")
    out = run_script(recipe, *args, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (recipe / "data").is_symlink() and (recipe / "data" / "train" / "utt2emo").is_file()
    for tag in ("functional", "tiny_fcn"):
        scores = json.loads((recipe / "exp" / tag / "decode_valid.acc_emo.ave" / "test" / "scores.json").read_text())
        assert scores["emotion"]["n_utts"] == 4 and "asr" not in scores
        assert (recipe / "exp" / tag / "train.sh").is_file()
    results = (recipe / "RESULTS.md").read_text()
    for section in ("## functional/decode_valid.acc_emo.ave", "## tiny_fcn/decode_valid.acc_emo.ave",
                    "## ent_fbank_pitch_char_mix/decode_decode_lm8gram_valid.loss.ave"):
        assert section in results
    assert "|test|4|100.0|100.0|100.0|" in results  # the "perfect ENT" row, scored from its own decode
    # the ENT recipe's decoding dir is not written into
    assert not (tmp_path / "ent1" / "exp" / "ent_fbank_pitch_char_mix" / "decode_decode_lm8gram_valid.loss.ave"
                / "test" / "scores.json").exists()
    again = run_script(recipe, *args, timeout=600)
    assert again.returncode == 0 and "exp/tiny_fcn already trained" in again.stdout
    assert "already decoded" in again.stdout


@pytest.mark.slow
def test_iemocap_folds_on_the_fixture_tree(tmp_path: Path) -> None:
    """The ENT recipe prepares the folds of the fixture; ser1 runs fold 1 and aggregates mean ± sd."""
    from iemocap_fixture import make_iemocap_tree

    from ent.bin import train_tokenizer

    ent = copy_recipe("iemocap", tmp_path / "ent1")
    root = make_iemocap_tree(tmp_path / "IEMOCAP_full_release")
    out = run_script(ent, "local/data.sh", "--iemocap_root", str(root), "--nj", "2", "--python", PYTHON)
    assert out.returncode == 0, out.stdout + out.stderr
    fold = ent / "data" / "fold1"
    train_tokenizer.main(["--text", str(fold / "train" / "text"), "--token-type", "char",
                          "--out-dir", str(fold / "token_list" / "char")])
    recipe = copy_ser_recipe("iemocap", tmp_path / "ser1")
    (recipe / "conf" / "tiny_fcn.yaml").write_text(TINY_FCN)
    out = run_script(recipe, "run.sh", "--folds", "1", "--ngpu", "0", "--python", PYTHON, "--nj", "1",
                     "--token_list", "char", "--train_configs", "conf/train_functional.yaml conf/tiny_fcn.yaml",
                     timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = (recipe / "RESULTS.md").read_text()
    assert "## functional" in results and "## tiny_fcn" in results and "mean ± std (1 fold)" in results
    assert (recipe / "exp" / "fold1" / "tiny_fcn" / "decode_valid.acc_emo.ave" / "test" / "scores.json").is_file()
