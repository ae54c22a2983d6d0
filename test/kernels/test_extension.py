"""Tests of ent.kernels.extension: the CUDA C++ sources of ent/csrc and their build.

The sources are compiled with nvcc where it is installed; the full extension
build (bindings included) is a slow test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

import pytest
import torch

from ent.kernels import extension
from ent.kernels.availability import BackendUnavailableError

REPO = Path(__file__).resolve().parents[2]


def test_extension_failure_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = "no CUDA toolkit (nvcc) found; set CUDA_HOME"
    monkeypatch.setattr(extension, "extension_status", lambda: (None, reason))
    with pytest.raises(BackendUnavailableError, match=r"^the CUDA lattice extension cannot be built: no"):
        extension.load_extension()
    log = "Error building extension 'x': [1/2] c++ ...\nfoo.cpp:5:10: fatal error: cusparse.h: No such file\n"
    assert extension.first_error_line(log) == "foo.cpp:5:10: fatal error: cusparse.h: No such file"



KILLED_BUILD = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from torch.utils.file_baton import FileBaton
from ent.kernels.extension import build_lock
lock = build_lock({build_dir!r})
assert FileBaton(os.path.join({build_dir!r}, "lock")).try_acquire()
os.kill(os.getpid(), signal.SIGKILL)  # killed mid-build: torch's lock file stays
"""


def test_a_killed_builds_lock_is_removed_instead_of_hanging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """No nvcc needed: the build itself is replaced by torch's lock protocol."""
    from torch.utils import cpp_extension
    from torch.utils.file_baton import FileBaton

    build_dir = tmp_path / "ext"
    build_dir.mkdir()
    killed = subprocess.run([sys.executable, "-c", KILLED_BUILD.format(repo=str(REPO), build_dir=str(build_dir))])
    assert killed.returncode == -9 and (build_dir / "lock").exists()

    def fake_load(name: str, build_directory: str, **kwargs: object) -> str:
        baton = FileBaton(os.path.join(build_directory, "lock"))
        if not baton.try_acquire():  # torch would now wait for ever
            raise AssertionError("the stale lock was left in place")
        baton.release()
        return "module"

    cuda_home = tmp_path / "cuda"
    (cuda_home / "include").mkdir(parents=True)
    (cuda_home / "include" / "cuda_runtime.h").write_text("")
    monkeypatch.setenv("ENT_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(extension, "extension_build_dir", lambda: build_dir)
    monkeypatch.setattr(torch.version, "cuda", "12.0")
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(cuda_home))
    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: True)
    monkeypatch.setattr(cpp_extension, "load", fake_load)
    extension.extension_status.cache_clear()
    try:
        assert extension.extension_status() == ("module", "")
    finally:
        extension.extension_status.cache_clear()
    assert not (build_dir / "lock").exists()
    assert f"removed {build_dir / 'lock'}, the stale lock of a killed build" in caplog.text


HOLDING_BUILD = """
import sys, time
sys.path.insert(0, {repo!r})
from ent.kernels.extension import build_lock
lock = build_lock({build_dir!r})
open({build_dir!r} + "/lock", "w").close()
print("building", flush=True)
time.sleep(60)
"""


def test_a_running_build_is_waited_for_and_its_lock_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ent.utils.locking import LockBusyError

    build_dir = tmp_path / "ext"
    build_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLDING_BUILD.format(repo=str(REPO), build_dir=str(build_dir))],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "building"
        with pytest.raises(LockBusyError):
            extension.build_lock(build_dir, timeout=0.3)
        assert (build_dir / "lock").exists()  # a live build's lock is not touched
        assert f"waiting for another build of the CUDA lattice extension in {build_dir} (pid {proc.pid}" in caplog.text
    finally:
        proc.kill()
        proc.wait()
    with extension.build_lock(build_dir):
        assert not (build_dir / "lock").exists()


def _nvcc() -> Optional[str]:
    found = shutil.which("nvcc")
    if found:
        return found
    home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    candidate = Path(home) / "bin" / "nvcc"
    return str(candidate) if candidate.is_file() else None


@pytest.mark.skipif(
    _nvcc() is None, reason="nvcc is not installed (no CUDA toolkit): cannot compile the CUDA sources"
)
def test_cuda_kernels_compile_with_nvcc(tmp_path: Path) -> None:
    source = REPO / "ent" / "csrc" / "lattice_pool.cu"
    done = subprocess.run(
        # -Xptxas -O0: a compile check, not a build (halves the time).
        [_nvcc(), "-c", "-std=c++17", "-O1", "-Xptxas", "-O0", "--Werror", "all-warnings", str(source),
         "-o", str(tmp_path / "lattice_pool.o")],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "lattice_pool.o").stat().st_size > 0


def _cuda_home() -> Optional[Path]:
    """A CUDA toolkit folder with headers: $CUDA_HOME, nvcc's parent folder, or /usr/local/cuda."""
    nvcc = _nvcc()
    candidates = [os.environ.get("CUDA_HOME"), nvcc and Path(nvcc).resolve().parents[1], "/usr/local/cuda"]
    for home in candidates:
        if home and (Path(home) / "include" / "cuda_runtime.h").is_file():
            return Path(home)
    return None


@pytest.mark.slow
@pytest.mark.skipif(
    _cuda_home() is None or torch.version.cuda is None, reason="needs the CUDA toolkit and a CUDA build of PyTorch"
)
def test_extension_builds_and_checks_its_inputs(tmp_path: Path) -> None:
    """The full PyTorch extension (bindings included) builds; on CPU tensors it refuses clearly."""
    env = dict(os.environ, ENT_EXTENSIONS_DIR=str(tmp_path), PYTHONPATH=str(REPO), TORCH_CUDA_ARCH_LIST="9.0")
    env["CUDA_HOME"] = str(_cuda_home())
    script = textwrap.dedent(
        """
        import torch
        from ent.kernels.extension import load_extension
        ext = load_extension()
        x = torch.zeros(1, 1, 1)
        i = torch.zeros(1, 1, dtype=torch.long)
        try:
            ext.log_probs(x, x, x[0], x[0, 0], i, i, i, 0)
        except RuntimeError as err:
            print("refused:", str(err).splitlines()[0])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "refused: ent lattice kernels: enc must be a CUDA tensor" in done.stdout


def test_the_sources_are_found_from_the_kernels_package() -> None:
    """The build code lives in ent/kernels/, the sources stay in ent/csrc/."""
    assert extension.CSRC_DIR == REPO / "ent" / "csrc"
    assert all((extension.CSRC_DIR / name).is_file() for name in extension.EXTENSION_SOURCES)
