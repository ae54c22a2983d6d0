"""egs/TEMPLATE/ent1/utils/run_local.sh: the run.pl-style local job runner of cmd.sh."""

import subprocess
import time
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "ent1" / "utils" / "run_local.sh"


def runner(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUNNER), *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_job_ranges_and_lists_substitute_the_job_value(tmp_path: Path) -> None:
    out = runner(tmp_path, "--max_jobs_run", "2", "JOB=1:3", "log/job.JOB.txt", "bash", "-c", "echo value JOB")
    assert out.returncode == 0, out.stderr
    for k in (1, 2, 3):
        log = (tmp_path / "log" / f"job.{k}.txt").read_text().splitlines()
        assert log[0].startswith("# bash -c") and log[2] == f"value {k}" and log[3].startswith("# Ended (code 0)")
    out = runner(tmp_path, "FOLD=2,5", "fold.FOLD.log", "echo", "fold", "FOLD")
    assert out.returncode == 0
    assert "fold 5" in (tmp_path / "fold.5.log").read_text()
    out = runner(tmp_path, "single.log", "echo", "JOB")  # no range: one job, nothing replaced
    assert out.returncode == 0 and "\nJOB\n" in (tmp_path / "single.log").read_text()


def test_a_failed_job_kills_the_others_and_shows_its_log(tmp_path: Path) -> None:
    start = time.monotonic()
    out = runner(tmp_path, "--max_jobs_run", "2", "JOB=1:3", "JOB.log", "bash", "-c",
                 "if [ JOB = 2 ]; then echo broken; exit 4; fi; sleep 30")
    assert time.monotonic() - start < 20  # job 1 was killed, job 3 never started
    assert out.returncode == 1
    assert "job JOB=2 (one of 3) failed (exit code 4); 1 running job(s) killed, 1 not started" in out.stderr
    assert "broken" in out.stderr and "# Ended (code 4)" in out.stderr
    assert "# Killed" in (tmp_path / "1.log").read_text()
    assert not (tmp_path / "3.log").exists()


def test_launcher_and_option_errors(tmp_path: Path) -> None:
    out = runner(tmp_path, "--launcher", "env", "--launcher_opt", "GREETING=hi", "env.log", "bash", "-c",
                 "echo $GREETING")
    assert out.returncode == 0 and "\nhi\n" in (tmp_path / "env.log").read_text()
    assert runner(tmp_path, "--max_jobs_run", "x", "a.log", "true").returncode == 2
    assert runner(tmp_path, "--frobnicate", "a.log", "true").returncode == 2
    assert runner(tmp_path, "JOB=1,,2", "a.log", "true").returncode == 2
    assert "Usage" not in runner(tmp_path, "--help").stdout  # the usage goes to stderr
