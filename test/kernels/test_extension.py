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
