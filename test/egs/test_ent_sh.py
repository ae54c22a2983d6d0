"""The shared stage driver egs/TEMPLATE/ent1/ent.sh, on a throw-away recipe."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "egs" / "TEMPLATE" / "ent1"

DATA_SH = """#!/usr/bin/env bash
# Test recipe data preparation: tiny data dirs of tones.
set -euo pipefail
nj=1
. ./utils/parse_options.sh
[ -f data/.prepared ] && { echo "data already prepared"; exit 0; }
{python} - <<'PY'
import sys
sys.path.insert(0, "{test_dir}")
from datadir_factory import make_data_dir
for name, n in (("train", 6), ("dev", 4), ("test", 4)):
    make_data_dir("data", n, name=name)
PY
touch data/.prepared
"""


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    rdir = tmp_path / "egs" / "toy" / "ent1"
    (rdir / "local").mkdir(parents=True)
    (rdir / "ent.sh").symlink_to(TEMPLATE / "ent.sh")
    (rdir / "utils").symlink_to(TEMPLATE / "utils")
    data_sh = rdir / "local" / "data.sh"
    data_sh.write_text(DATA_SH.replace("{python}", sys.executable).replace("{test_dir}", str(ROOT / "test")))
    data_sh.chmod(0o755)
    return rdir


def run(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        ["./ent.sh", "--python", sys.executable, "--token_type", "char", *args],
        cwd=recipe, env=env, capture_output=True, text=True, timeout=300,
    )


def test_help_lists_options_and_stages(recipe: Path) -> None:
    out = run(recipe, "--help")
    assert out.returncode == 0
    assert "--stop_stage" in out.stdout and "token list" in out.stdout


def test_unknown_option_is_a_clear_error(recipe: Path) -> None:
    out = run(recipe, "--no_such_option", "1")
    assert out.returncode != 0
    assert "unknown option --no_such_option" in out.stderr


def test_stages_1_to_4_prepare_and_skip_finished_work(recipe: Path) -> None:
    out = run(recipe, "--stage", "1", "--stop_stage", "4", "--nj", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    tokens = (recipe / "data" / "token_list" / "char" / "tokens.txt").read_text().split("\n")
    assert tokens[0] == "<blank>" and tokens[1] == "<unk>" and tokens[-2] == "<sos/eos>"
    assert (recipe / "exp" / "stats_fbank80" / "feats_stats.npz").is_file()
    for dset in ("train", "dev", "test"):
        assert (recipe / "data" / dset / ".validated").is_file()
    again = run(recipe, "--stage", "1", "--stop_stage", "4", "--nj", "1")
    assert again.returncode == 0, again.stderr
    assert "data already prepared" in again.stdout
    assert again.stdout.count("already validated") == 3
    # --feats_type fbank_pitch: statistics of the 80 mel bins and the 2 pitch features, in their own dir
    pitch = run(recipe, "--stage", "3", "--stop_stage", "3", "--nj", "1", "--feats_type", "fbank_pitch")
    assert pitch.returncode == 0, pitch.stdout + pitch.stderr
    with np.load(recipe / "exp" / "stats_fbank80_pitch" / "feats_stats.npz") as stats, \
            np.load(recipe / "exp" / "stats_fbank80" / "feats_stats.npz") as plain:
        assert stats["sum"].shape == (82,) and plain["sum"].shape == (80,)
        np.testing.assert_allclose(stats["sum"][:80], plain["sum"], rtol=1e-6)
    bad = run(recipe, "--stage", "3", "--stop_stage", "3", "--feats_type", "mfcc")
    assert bad.returncode == 2 and "--feats_type must be fbank or fbank_pitch, not 'mfcc'" in bad.stderr


def test_stage_2_mixes_the_training_and_validation_sets_only(recipe: Path) -> None:
    out = run(recipe, "--stage", "1", "--stop_stage", "3", "--nj", "1", "--mix", "true", "--mix_share", "1.0",
              "--mix_valid_share", "0.5", "--test_sets", "test")
    assert out.returncode == 0, out.stdout + out.stderr
    data = recipe / "data"
    for name, n_orig in (("train_mix", 6), ("dev_mix", 4)):
        utts = (data / name / "utt2spk").read_text().splitlines()
        mixes = [u for u in utts if "-mix-" in u]
        assert len(utts) - len(mixes) == n_orig and mixes  # the originals and the mixes
        assert (data / name / "emo_segments").is_file() and (data / name / ".validated").is_file()
    assert not (data / "test_mix").exists()  # a test set is never mixed
    train_mixes = [u for u in (data / "train_mix" / "utt2spk").read_text().split() if "-mix-" in u]
    dev_mixes = [u for u in (data / "dev_mix" / "utt2spk").read_text().split() if "-mix-" in u]
    assert len(dev_mixes) < len(train_mixes)  # --mix_valid_share
    again = run(recipe, "--stage", "2", "--stop_stage", "2", "--nj", "1", "--mix", "true", "--mix_share", "1.0",
                "--mix_valid_share", "0.5")
    assert again.returncode == 0 and (again.stdout + again.stderr).count("skipping") == 2
    bad = run(recipe, "--stage", "2", "--stop_stage", "2", "--mix", "maybe")
    assert bad.returncode != 0 and "--mix must be true or false" in bad.stderr


def test_invalid_data_stops_the_run_at_validation(recipe: Path) -> None:
    assert run(recipe, "--stop_stage", "1").returncode == 0
    utt2emo = recipe / "data" / "dev" / "utt2emo"
    lines = utt2emo.read_text().splitlines()
    lines[1] = lines[1].split()[0] + " bored"
    utt2emo.write_text("\n".join(lines) + "\n")
    out = run(recipe, "--stage", "3", "--stop_stage", "3")
    assert out.returncode != 0
    assert "data/dev/utt2emo:2:" in out.stdout + out.stderr


def test_help_lists_the_stages_in_run_order(recipe: Path) -> None:
    out = run(recipe, "--help")
    names = ["data preparation", "data augmentation", "validation", "token list", "SSL feature cache",
             "token n-gram LM", "training", "decoding", "scoring", "emotion diarization", "model packing",
             "streaming decoding"]
    table = out.stdout[out.stdout.index("Stages"):]
    for number, name in enumerate(names, start=1):
        assert f"\n  {number:<2} {name}" in table, name


def test_tags_name_what_changes_the_result(recipe: Path) -> None:
    def tags(*args: str) -> list:
        out = run(recipe, "--show_tags", "true", "--train_configs", "conf/train_ent.yaml conf/tuning/train_fent.yaml",
                  *args)
        assert out.returncode == 0, out.stderr
        return [line.split() for line in out.stdout.splitlines()]

    assert tags("--feats_type", "fbank_pitch", "--lm_order", "8") == [
        ["conf/train_ent.yaml", "ent_fbank_pitch_char", "decode_decode_lm8gram_valid.loss.ave"],
        ["conf/tuning/train_fent.yaml", "fent_fbank_pitch_char", "decode_decode_lm8gram_valid.loss.ave"],
    ]
    assert tags("--token_type", "bpe", "--nbpe", "300", "--speed_perturb_factors", "0.9 1.0 1.1",
                "--train_args", "--max_epoch 3 --loss_conf lattice_weight=0.5", "--inference_args", "--beam 8",
                "--inference_model", "valid.acc.best.pth")[0] == [
        "conf/train_ent.yaml", "ent_fbank_bpe300_sp_max_epoch3_loss_conflattice_weight0.5",
        "decode_decode_beam8_nolm_valid.acc.best"]
    # the mixing stage changes the training data: --mix true and false train different models
    assert [t[1] for t in tags("--mix", "true")] == ["ent_fbank_char_mix", "fent_fbank_char_mix"]
    assert [t[1] for t in tags("--mix", "false")] == ["ent_fbank_char", "fent_fbank_char"]
    assert [t[1] for t in tags("--model_tag", "a b")] == ["a", "b"]
    bad = run(recipe, "--show_tags", "true", "--model_tag", "a b")
    assert bad.returncode == 2 and "--model_tag has 2 tags for 1 --train_configs" in bad.stdout
    bad = run(recipe, "--show_tags", "true", "--streaming_configs", "conf/other.yaml")
    assert bad.returncode == 2 and "conf/other.yaml is not among --train_configs" in bad.stdout


def test_stage_5_caches_nothing_without_ssl_configs_and_stage_6_needs_lm_order(recipe: Path) -> None:
    assert run(recipe, "--stage", "1", "--stop_stage", "4", "--nj", "1").returncode == 0
    out = run(recipe, "--stage", "5", "--stop_stage", "11", "--train_configs", "")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Stage 5" not in out.stdout and "Stage 6" not in out.stdout


def test_stage_6_trains_the_token_lm_only_when_asked(recipe: Path) -> None:
    from ent.lm.ngram import NgramLM

    assert run(recipe, "--stage", "1", "--stop_stage", "4", "--nj", "1").returncode == 0
    skipped = run(recipe, "--stage", "6", "--stop_stage", "6")
    assert skipped.returncode == 0 and "Stage 6" not in skipped.stdout
    before = run(recipe, "--stage", "1", "--stop_stage", "5", "--lm_order", "3")
    assert before.returncode == 0 and "Stage 6" not in before.stdout
    out = run(recipe, "--stage", "6", "--stop_stage", "6", "--lm_order", "3")
    assert out.returncode == 0, out.stdout + out.stderr
    arpa = recipe / "exp" / "lm_char_3gram" / "lm.arpa"
    lm = NgramLM.read_arpa(arpa)
    assert lm.order == 3
    tokens = (recipe / "data" / "token_list" / "char" / "tokens.txt").read_text().split()
    assert set(tokens[1:-1]) <= set(lm.vocabulary)  # every token of the list has a probability
    assert "perplexity" in out.stdout + out.stderr
    again = run(recipe, "--stage", "6", "--stop_stage", "6", "--lm_order", "3")
    assert again.returncode == 0 and "already trained" in again.stdout
    # Decoding without the LM that --lm_order asks for is a clear error.
    (recipe / "conf").mkdir()
    (recipe / "conf" / "train_tiny.yaml").write_text("max_epoch: 1\n")
    arpa.unlink()
    model = recipe / "exp" / "tiny_fbank_char"
    model.mkdir(parents=True)
    (model / "valid.loss.ave.pth").write_bytes(b"")
    missing = run(recipe, "--stage", "8", "--stop_stage", "8", "--lm_order", "3",
                  "--train_configs", "conf/train_tiny.yaml")
    assert missing.returncode == 1 and "lm.arpa not found: train the LM first (stage 6" in missing.stdout


def tiny_recipe_confs(recipe: Path) -> None:
    sys.path.insert(0, str(ROOT / "test"))
    from conftest import TINY_TRAIN_CONFIG

    (recipe / "conf").mkdir()
    (recipe / "conf" / "train_tiny.yaml").write_text(TINY_TRAIN_CONFIG + "max_epoch: 1\n")
    (recipe / "conf" / "decode.yaml").write_text(
        "search: modified_beam_search\nbeam: 2\nmax_symbols_per_frame: 2\nlm_weight: 0.3\ntoken_bonus: 0.5\n"
    )


def test_stages_7_to_11_train_decode_in_parallel_score_and_pack(recipe: Path) -> None:
    tiny_recipe_confs(recipe)
    opts = ["--nj", "1", "--train_configs", "conf/train_tiny.yaml", "--lm_order", "3", "--inference_nj", "2",
            "--test_sets", "test", "--sed_sets", "test", "--mix", "true", "--mix_share", "0.5"]
    out = run(recipe, *opts, "--stop_stage", "11")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    mdir = recipe / "exp" / "tiny_fbank_char_mix"
    # --mix true: trained and validated on the mixed sets, decoded on the plain ones
    config = (mdir / "config.yaml").read_text()
    assert "train_data_dir: data/train_mix" in config and "valid_data_dir: data/dev_mix" in config
    # run.sh of the experiment: this command line, then the options that rerun this model from training on
    run_sh = (mdir / "run.sh").read_text()
    assert f"cd {recipe}\n" in run_sh and "./ent.sh --python " in run_sh
    assert "--lm_order 3 --inference_nj 2" in run_sh
    assert run_sh.rstrip().endswith('--stage 7 --train_configs conf/train_tiny.yaml "$@"; exit $?')
    decode = mdir / "decode_decode_lm3gram_valid.loss.ave"
    for dset in ("dev", "test"):
        ddir = decode / dset
        assert (ddir / ".done").is_file() and (ddir / "decode.sh").is_file()
        assert "# Ended (code 0)" in (ddir / "decode.log").read_text()
        assert len((ddir / "text").read_text().splitlines()) == 4
    assert "--num-threads" in (decode / "dev" / "decode.sh").read_text()
    results = (recipe / "RESULTS.md").read_text()
    assert "## tiny_fbank_char_mix/decode_decode_lm3gram_valid.loss.ave" in results
    assert "- config: `conf/train_tiny.yaml`" in results and "- model dir: `exp/tiny_fbank_char_mix`" in results
    assert "EDER" in out.stdout + out.stderr
    packed = mdir / "packed"
    assert (packed / "lm.arpa").is_file() and (packed / "decode.yaml").is_file()
    again = run(recipe, *opts, "--stage", "7", "--stop_stage", "8")
    assert again.returncode == 0 and "already trained" in again.stdout
    assert again.stdout.count("already decoded") == 2
    # An edited decoding config decodes again; a failing job stops the run and shows the end of its log.
    (recipe / "conf" / "decode.yaml").write_text("search: greedy\nlm_weight: 0.3\n")
    bad = run(recipe, *opts, "--stage", "8", "--stop_stage", "8")
    assert bad.returncode != 0
    assert "Stage 8: decoding failed" in bad.stdout
    assert "run_local.sh: job JOB=tiny_fbank_char_mix/decode_decode_lm3gram_valid.loss.ave/" in bad.stderr
    assert "lm_weight and token_bonus need search: modified_beam_search" in bad.stderr


def test_a_changed_token_type_or_training_option_trains_a_new_model(recipe: Path) -> None:
    tiny_recipe_confs(recipe)
    opts = ["--nj", "1", "--train_configs", "conf/train_tiny.yaml"]
    char = run(recipe, *opts, "--stop_stage", "7")
    assert char.returncode == 0, char.stdout[-3000:] + char.stderr[-3000:]
    char_dir = recipe / "exp" / "tiny_fbank_char"
    assert "token_dir: data/token_list/char" in (char_dir / "config.yaml").read_text()
    bpe = run(recipe, *opts, "--stage", "4", "--stop_stage", "7", "--token_type", "bpe", "--nbpe", "25")
    assert bpe.returncode == 0, bpe.stdout[-3000:] + bpe.stderr[-3000:]
    assert "already trained" not in bpe.stdout
    bpe_dir = recipe / "exp" / "tiny_fbank_bpe25"
    assert "token_dir: data/token_list/bpe25" in (bpe_dir / "config.yaml").read_text()
    assert (bpe_dir / "valid.loss.ave.pth").is_file()
    # --train_args override the config's values (a nested key of loss_conf alone) and name a new dir.
    args = run(recipe, *opts, "--stage", "7", "--stop_stage", "7", "--train_args",
               "--loss_conf lattice_weight=0.25 --keep_nbest_models 1")
    assert args.returncode == 0, args.stdout[-3000:] + args.stderr[-3000:]
    args_dir = recipe / "exp" / "tiny_fbank_char_loss_conflattice_weight0.25_keep_nbest_models1"
    config = yaml.safe_load((args_dir / "config.yaml").read_text())
    assert config["loss_conf"]["lattice_weight"] == 0.25 and config["loss_conf"]["predictor_lm_weight"] == 0.1
    assert config["model_conf"]["variant"] == "fent"
    assert config["keep_nbest_models"] == [1]  # a list in ESPnet's config
    assert yaml.safe_load((char_dir / "config.yaml").read_text())["loss_conf"]["lattice_weight"] == 0.5
    same = run(recipe, *opts, "--stage", "7", "--stop_stage", "7")
    assert same.returncode == 0 and "exp/tiny_fbank_char already trained" in same.stdout
