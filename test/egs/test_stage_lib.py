"""egs/TEMPLATE/ent1/utils/{stage_lib,fold_lib}.sh: the shell code that ent.sh, ser.sh and both IEMOCAP run.sh share."""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_copy import (PYTHON, REPO, TEMPLATE, copy_recipe, copy_ser_recipe, run_script,  # noqa: E402
                         stub_driver)

TINY_FCN = "model: attention_fcn\nmax_epoch: 1\n"


def bash(tmp_path: Path, script: str, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run ``script`` (after ``. utils/stage_lib.sh``) as ./s.sh in ``tmp_path``, where utils links the template's."""
    if not (tmp_path / "utils").exists():
        (tmp_path / "utils").symlink_to(TEMPLATE / "utils")
    path = tmp_path / "s.sh"
    path.write_text("#!/usr/bin/env bash\nset -euo pipefail\n. utils/stage_lib.sh\n" + script)
    path.chmod(0o755)
    return subprocess.run(["./s.sh", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=env or dict(os.environ, PYTHONPATH=str(REPO)))


def fold_reference(args: str) -> str:
    """The tag folding as the header of ent.sh states it: -- becomes _, then only [A-Za-z0-9._+-] stay."""
    return re.sub(r"[^A-Za-z0-9._+-]", "", args.replace("--", "_"))


FOLDED = ["--max_epoch 3 --loss_conf lattice_weight=0.5", "--optim_conf lr=1e-3 --init_param exp/a b.pth",
          "--note a,b:c;d", ""]


def test_fold_args_matches_its_reference(tmp_path: Path) -> None:
    out = bash(tmp_path, 'for a in "$@"; do printf "[%s]\\n" "$(fold_args "${a}")"; done\n', *FOLDED)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"[{fold_reference(a)}]" for a in FOLDED]
    assert fold_reference(FOLDED[0]) == "_max_epoch3_loss_conflattice_weight0.5"  # the example of ent.sh


@pytest.mark.parametrize("train_args", FOLDED[:2])
def test_both_drivers_fold_train_args_into_the_same_tag(tmp_path: Path, train_args: str) -> None:
    """The tag ent.sh derives and the tag ser.sh derives end in the same folding of the same --train_args."""
    ent = tmp_path / "ent1"
    ent.mkdir()
    (ent / "ent.sh").symlink_to(TEMPLATE / "ent.sh")
    (ent / "utils").symlink_to(TEMPLATE / "utils")
    ser = copy_ser_recipe("mini_emo", tmp_path / "ser1")
    (ser / "conf" / "train_tiny.yaml").write_text(TINY_FCN)
    common = ("--python", PYTHON, "--show_tags", "true", "--train_args", train_args)
    ent_out = run_script(ent, "ent.sh", *common, "--token_type", "char", "--train_configs", "conf/train_tiny.yaml")
    ser_out = run_script(ser, "ser.sh", *common, "--train_configs",
                         "conf/train_functional.yaml conf/train_tiny.yaml")
    assert ent_out.returncode == 0 and ser_out.returncode == 0, ent_out.stdout + ent_out.stderr + ser_out.stdout
    folded = fold_reference(train_args)
    assert [line.split()[1] for line in ent_out.stdout.splitlines()] == [f"tiny_fbank_char{folded}"]
    # the functional baseline takes no training options, so none are in its tag
    assert [line.split()[1] for line in ser_out.stdout.splitlines()] == ["functional", f"tiny{folded}"]


@pytest.mark.parametrize("driver", ["ent.sh", "ser.sh"])
def test_both_drivers_check_model_tags_alike(tmp_path: Path, driver: str) -> None:
    recipe = copy_ser_recipe("mini_emo", tmp_path / "ser1")
    (recipe / "ent.sh").symlink_to(TEMPLATE / "ent.sh")
    for name in ("a", "b"):
        (recipe / "conf" / f"train_{name}.yaml").write_text(TINY_FCN)

    def tags(*args: str) -> subprocess.CompletedProcess:
        return run_script(recipe, driver, "--python", PYTHON, "--show_tags", "true",
                          "--train_configs", "conf/train_a.yaml conf/train_b.yaml", *args)

    out = tags("--model_tag", "x y")
    assert out.returncode == 0 and [line.split()[1] for line in out.stdout.splitlines()] == ["x", "y"]
    for model_tag, error in (("x", "--model_tag has 1 tags for 2 --train_configs"),
                             ("x x/y", "model tag 'x/y' of conf/train_b.yaml: only letters, digits and . _ + -"),
                             ("x x", "two --train_configs get the model tag x")):
        out = tags("--model_tag", model_tag)
        assert out.returncode == 2 and error in out.stdout, (model_tag, out.stdout)
    out = tags("unexpected")
    assert out.returncode == 2 and "Error: unexpected arguments: unexpected" in out.stdout
    assert "Usage: " in out.stderr


def test_log_names_the_caller(tmp_path: Path) -> None:
    out = bash(tmp_path, 'stage_fn() { log "inside"; }\nlog "top level"\nstage_fn\n')
    assert out.returncode == 0, out.stderr
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"
    lines = out.stdout.splitlines()
    assert re.fullmatch(stamp + r" \(s\.sh:5:main\) top level", lines[0]), lines[0]
    assert re.fullmatch(stamp + r" \(s\.sh:4:stage_fn\) inside", lines[1]), lines[1]


def test_parse_stage_options_sets_options_records_the_command_and_sources_path_sh(tmp_path: Path) -> None:
    (tmp_path / "path.sh").write_text("export FROM_PATH_SH=yes\n")
    script = ('greeting=hello\nhelp_message="Usage: s.sh"\nparse_stage_options "$@"\n'
              'echo "greeting=${greeting} path=${FROM_PATH_SH:-no}"\necho "run_args=${run_args}"\n')
    out = bash(tmp_path, script, "--greeting", "two words")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["greeting=two words path=yes", "run_args=./s.sh --greeting two\\ words "]
    out = bash(tmp_path, script, "--greeting", "x", "extra")
    assert out.returncode == 2 and "Error: unexpected arguments: extra" in out.stdout
    assert out.stderr.strip() == "Usage: s.sh"
    out = bash(tmp_path, script, "--farewell", "x")
    assert out.returncode == 1 and "unknown option --farewell" in out.stderr


def test_threads_per_job_splits_the_cpus_at_least_one_each(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_THREAD_LIMIT")}  # nproc reads them
    out = bash(tmp_path, 'for n in 1 2 1000; do threads_per_job "${n}"; done\n', env=env)
    assert out.returncode == 0, out.stderr
    cpus = len(os.sched_getaffinity(0))  # the CPUs this process may run on, what nproc counts
    assert out.stdout.split() == [str(cpus), str(max(1, cpus // 2)), "1"]


def test_run_jobs_runs_one_job_per_word_and_stops_on_a_failure(tmp_path: Path) -> None:
    ok = bash(tmp_path, 'run_jobs "never" utils/run_local.sh 2 JOB="a  b" log/JOB.log bash -c "echo job JOB"\n'
                        'echo after\n')
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip() == "after"
    for job in ("a", "b"):
        assert f"\njob {job}\n" in (tmp_path / "log" / f"{job}.log").read_text()
    bad = bash(tmp_path, 'run_jobs "Stage 9: it broke" utils/run_local.sh 1 FOLD="1 2" f/FOLD.log '
                         'bash -c "[ FOLD = 1 ]"\necho after\n')
    assert bad.returncode == 1 and "Error: Stage 9: it broke" in bad.stdout and "after" not in bad.stdout
    assert "job FOLD=2 (one of 2) failed (exit code 1)" in bad.stderr


def test_print_summary_only_with_a_results_table(tmp_path: Path) -> None:
    script = 'python=' + PYTHON + '\nresults=RESULTS.md\nprint_summary\necho "went on"\n'
    out = bash(tmp_path, script)
    assert out.returncode == 0 and out.stdout.strip() == "went on", out.stderr


# Both IEMOCAP run.sh through utils/fold_lib.sh.

STUB_SER_SH = """#!/usr/bin/env bash
# Stands in for ser.sh: answers --show_tags, records its options.
case " $* " in *" --show_tags true "*) echo "conf/train_functional.yaml functional decode_valid.acc_emo.ave"; exit 0 ;; esac
echo "ser.sh $*"
echo "Successfully finished."
"""


def iemocap_recipe(tmp_path: Path, name: str) -> Path:
    if name == "ent1":
        return copy_recipe("iemocap", tmp_path / "iemocap" / "ent1")
    return copy_ser_recipe("iemocap", tmp_path / "iemocap" / "ser1")


@pytest.mark.parametrize("name", ["ent1", "ser1"])
def test_both_iemocap_recipes_check_folds_alike(tmp_path: Path, name: str) -> None:
    recipe = iemocap_recipe(tmp_path, name)
    out = run_script(recipe, "run.sh", "--folds", "1 7", "--ngpu", "0", "--python", PYTHON)
    assert out.returncode == 2 and "--folds takes numbers among 1 2 3 4 5, got '7'" in out.stdout
    out = run_script(recipe, "run.sh", "--folds", " ", "--ngpu", "0", "--python", PYTHON)
    assert out.returncode == 2 and "--folds is empty" in out.stdout
    out = run_script(recipe, "run.sh", "--stage", "2", "--folds", "2", "--ngpu", "0", "--python", PYTHON)
    assert out.returncode == 1 and "data/fold2/train not found: run stage 1 first" in out.stdout


def fold_logs(recipe: Path, folds: List[int]) -> List[str]:
    return [(recipe / "exp" / f"fold{k}" / "ser.log").read_text() for k in folds]


def test_ser_folds_are_train_cmd_jobs_of_ser_sh(tmp_path: Path) -> None:
    recipe = stub_driver(iemocap_recipe(tmp_path, "ser1"), "ser.sh", STUB_SER_SH)
    out = run_script(recipe, "run.sh", "--stage", "3", "--stop_stage", "4", "--folds", "1 3", "--fold_nj", "2",
                     "--ngpu", "0", "--python", PYTHON)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Folds 1 3: ser.sh stages 3-4, 2 at a time" in out.stdout
    for k, log in zip((1, 3), fold_logs(recipe, [1, 3])):
        assert "ser.sh --stage 3 --stop_stage 4 " in log
        assert f"--datadir data/fold{k} --expdir exp/fold{k} --token_dir data/fold{k}/token_list/bpe300" in log
        assert f"--ent_model_dir ../ent1/exp/fold{k}/ent_fbank_bpe300_mix" in log
        assert "# Ended (code 0)" in log
        assert f"Fold {k}: Successfully finished." in out.stdout
    out = run_script(recipe, "run.sh", "--stage", "5", "--folds", "1", "--ngpu", "0", "--python", PYTHON)
    assert out.returncode != 0  # no scores to aggregate
    assert "Stage 5: aggregating folds 1 of functional" in out.stdout
    assert "decode_valid.acc_emo.ave" in out.stdout + out.stderr
