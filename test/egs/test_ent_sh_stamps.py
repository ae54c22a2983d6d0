"""ent.sh reuses a decoding, the CMVN statistics and the token LM only while their inputs' contents are the same.

The decodings run through a stand-in interpreter that records each ``ent.bin.inference`` call instead of
decoding (the decoding itself is tested elsewhere), so that only the stamps are exercised.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "egs" / "TEMPLATE" / "ent1"
sys.path.insert(0, str(ROOT / "test"))
from datadir_factory import make_data_dir  # noqa: E402

FAKE_PYTHON = """#!/usr/bin/env bash
# Records inference calls (a decoding that writes nothing); runs everything else.
if [ "$1" = -m ] && [ "$2" = ent.bin.inference ]; then echo "$*" >> inference_calls; exit 0; fi
exec {python} "$@"
"""


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    rdir = tmp_path / "egs" / "toy" / "ent1"
    (rdir / "conf").mkdir(parents=True)
    (rdir / "ent.sh").symlink_to(TEMPLATE / "ent.sh")
    (rdir / "utils").symlink_to(TEMPLATE / "utils")
    fake = rdir / "fakepy"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable))
    fake.chmod(0o755)
    for name, n in (("train", 4), ("dev", 2), ("test", 2)):
        make_data_dir(rdir / "data", n, name=name)
    return rdir


def run(recipe: Path, *args: str, python: str = "./fakepy") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(["./ent.sh", "--python", python, "--token_type", "char", *args],
                         cwd=recipe, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def decode_calls(recipe: Path) -> List[str]:
    """The sets decoded since the last call (and forget them)."""
    calls = recipe / "inference_calls"
    if not calls.exists():
        return []
    sets = sorted(line.split("--data-dir ")[1].split()[0] for line in calls.read_text().splitlines())
    calls.unlink()
    return sets


def test_decodings_are_redone_when_and_only_when_an_inputs_content_changes(recipe: Path) -> None:
    (recipe / "conf" / "train_tiny.yaml").write_text("max_epoch: 1\n")
    (recipe / "conf" / "decode.yaml").write_text("search: greedy\n")
    mdir = recipe / "exp" / "tiny_fbank_char"
    mdir.mkdir(parents=True)
    checkpoint = mdir / "valid.loss.ave.pth"
    checkpoint.write_bytes(b"weights 1")
    (mdir / "config.yaml").write_text("token_dir: data/token_list/char\n")
    opts = ("--stage", "8", "--stop_stage", "8", "--train_configs", "conf/train_tiny.yaml")

    run(recipe, *opts)
    assert decode_calls(recipe) == ["data/dev", "data/test"]
    stamp = json.loads((mdir / "decode_decode_nolm_valid.loss.ave" / "test" / ".done").read_text())
    assert set(stamp["files"]) >= {"exp/tiny_fbank_char/valid.loss.ave.pth", "conf/decode.yaml",
                                   "data/test/wav.scp"}
    again = run(recipe, *opts)
    assert decode_calls(recipe) == [] and again.stdout.count("already decoded") == 2
    os.utime(checkpoint)  # touched, not changed (e.g. copied with its content): not decoded again
    run(recipe, *opts, "--inference_nj", "2")  # nor with other --num-threads
    assert decode_calls(recipe) == []
    # retrained: other weights, even with an old modification time (a restored backup, a copy with -p)
    checkpoint.write_bytes(b"weights 2")
    os.utime(checkpoint, (1, 1))
    out = run(recipe, *opts)
    assert decode_calls(recipe) == ["data/dev", "data/test"]
    assert "decoding again: exp/tiny_fbank_char/decode_decode_nolm_valid.loss.ave/dev/.done: stale: changed: " \
           "exp/tiny_fbank_char/valid.loss.ave.pth" in out.stdout
    # other data in the same set
    wav_scp = recipe / "data" / "test" / "wav.scp"
    wav_scp.write_text(wav_scp.read_text().splitlines()[0] + "\n")
    run(recipe, *opts)
    assert decode_calls(recipe) == ["data/test"]
    (recipe / "conf" / "decode.yaml").write_text("search: greedy\nmax_symbols_per_frame: 2\n")
    run(recipe, *opts)
    assert decode_calls(recipe) == ["data/dev", "data/test"]
    # a decoding that did not finish leaves no stamp and is done again
    (mdir / "decode_decode_nolm_valid.loss.ave" / "dev" / ".done").unlink()
    run(recipe, *opts)
    assert decode_calls(recipe) == ["data/dev"]


@pytest.mark.slow
def test_stage_3_recomputes_the_cmvn_statistics_of_another_training_set(recipe: Path) -> None:
    opts = ("--stage", "3", "--stop_stage", "3", "--nj", "1")
    stats = recipe / "exp" / "stats_fbank80" / "feats_stats.npz"
    run(recipe, *opts, python=sys.executable)
    first = stats.read_bytes()
    again = run(recipe, *opts, python=sys.executable)
    assert "is up to date with data/train; skipping" in again.stdout + again.stderr
    fewer = run(recipe, *opts, "--cmvn_max_utts", "2", python=sys.executable)
    assert "recomputing (options changed)" in fewer.stdout + fewer.stderr and stats.read_bytes() != first
    # speed perturbation (stage 2 builds data/train_sp): the same statistics path, another training set
    run(recipe, "--stage", "2", "--stop_stage", "2", "--nj", "1", "--speed_perturb_factors", "0.9 1.0",
        python=sys.executable)
    sp = run(recipe, *opts, "--speed_perturb_factors", "0.9 1.0", python=sys.executable)
    assert "recomputing (changed: data/train_sp/wav.scp" in sp.stdout + sp.stderr


def test_stage_2_speed_perturbs_the_training_set(recipe: Path) -> None:
    run(recipe, "--stage", "2", "--stop_stage", "2", "--nj", "1", "--speed_perturb_factors", "0.9 1.0",
        python=sys.executable)
    sp = recipe / "data" / "train_sp"
    utts = [line.split()[0] for line in (sp / "wav.scp").read_text().splitlines()]
    originals = [line.split()[0] for line in (recipe / "data" / "train" / "wav.scp").read_text().splitlines()]
    assert len(utts) == 2 * len(originals)
    paths = [recipe / line.split()[1] for line in (sp / "wav.scp").read_text().splitlines()]
    assert all(p.is_file() for p in paths)  # the audio is not inside the data dir, which is replaced whole
