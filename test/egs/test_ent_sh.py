"""The shared stage driver egs/TEMPLATE/ent1/ent.sh, on a throw-away recipe."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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


def test_stage_12_trains_the_token_lm_only_when_asked(recipe: Path) -> None:
    from ent.lm.ngram import NgramLM

    assert run(recipe, "--stage", "1", "--stop_stage", "4", "--nj", "1").returncode == 0
    skipped = run(recipe, "--stage", "12", "--stop_stage", "12")
    assert skipped.returncode == 0 and "Stage 12" not in skipped.stdout
    before_training = run(recipe, "--stage", "1", "--stop_stage", "4", "--lm_order", "3")
    assert before_training.returncode == 0 and "Stage 12" not in before_training.stdout
    out = run(recipe, "--stage", "12", "--stop_stage", "12", "--lm_order", "3")
    assert out.returncode == 0, out.stdout + out.stderr
    arpa = recipe / "exp" / "lm_char_3gram" / "lm.arpa"
    lm = NgramLM.read_arpa(arpa)
    assert lm.order == 3
    tokens = (recipe / "data" / "token_list" / "char" / "tokens.txt").read_text().split()
    assert set(tokens[1:-1]) <= set(lm.vocabulary)  # every token of the list has a probability
    assert "perplexity" in out.stdout + out.stderr
    again = run(recipe, "--stage", "12", "--stop_stage", "12", "--lm_order", "3")
    assert again.returncode == 0 and "already trained" in again.stdout


def test_stages_5_to_9_train_decode_in_parallel_score_and_pack(recipe: Path) -> None:
    sys.path.insert(0, str(ROOT / "test"))
    from conftest import TINY_TRAIN_CONFIG

    (recipe / "conf").mkdir()
    (recipe / "conf" / "train_tiny.yaml").write_text(TINY_TRAIN_CONFIG + "max_epoch: 1\n")
    (recipe / "conf" / "decode.yaml").write_text(
        "search: modified_beam_search\nbeam: 2\nmax_symbols_per_frame: 2\nlm_weight: 0.3\ntoken_bonus: 0.5\n"
    )
    opts = ["--nj", "1", "--train_configs", "conf/train_tiny.yaml", "--lm_order", "3", "--inference_nj", "2",
            "--test_sets", "test", "--sed_sets", "test", "--mix", "true", "--mix_share", "0.5"]
    out = run(recipe, *opts, "--stop_stage", "9")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # --mix true: trained and validated on the mixed sets, decoded on the plain ones
    config = (recipe / "exp" / "tiny" / "config.yaml").read_text()
    assert "train_data_dir: data/train_mix" in config and "valid_data_dir: data/dev_mix" in config
    for dset in ("dev", "test"):
        ddir = recipe / "exp" / "tiny" / "decode_decode" / dset
        assert (ddir / ".done").is_file() and (ddir / "decode.log").is_file()
        assert len((ddir / "text").read_text().splitlines()) == 4
    results = (recipe / "RESULTS.md").read_text()
    assert "## tiny" in results and "EDER" in out.stdout + out.stderr
    packed = recipe / "exp" / "tiny" / "packed"
    assert (packed / "lm.arpa").is_file() and (packed / "decode.yaml").is_file()
    # A failing decoding job stops the run and shows the end of its log.
    (recipe / "conf" / "decode.yaml").write_text("search: greedy\nlm_weight: 0.3\n")
    for dset in ("dev", "test"):
        (recipe / "exp" / "tiny" / "decode_decode" / dset / ".done").unlink()
    bad = run(recipe, *opts, "--stage", "6", "--stop_stage", "6")
    assert bad.returncode != 0
    assert "decoding failed" in bad.stdout + bad.stderr
    assert "lm_weight and token_bonus need search: modified_beam_search" in bad.stderr
