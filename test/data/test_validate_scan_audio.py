"""validate_data_dir --scan-audio: NaN/Inf samples (error), digital silence and clipping (warnings), file:line."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from datadir_factory import wav_path
from ent.data.validate import validate_data_dir


def rewrite(path: Path, edit) -> None:
    wave, sr = sf.read(str(path), dtype="float32")
    sf.write(str(path), edit(wave.copy()), sr, subtype="FLOAT")


def test_scan_reports_nan_silence_and_clipping_on_the_wav_scp_line(data_dir_factory) -> None:
    data = data_dir_factory(5)
    paths = {u: wav_path(data, u) for u in ("utt002", "utt003", "utt004")}

    def nan(w):
        w[1600:1610] = np.nan
        w[2000] = -np.inf
        return w

    rewrite(paths["utt002"], nan)
    rewrite(paths["utt003"], np.zeros_like)
    rewrite(paths["utt004"], lambda w: np.clip(w * 20, -1.0, 1.0))
    assert validate_data_dir(data) == []  # the headers are fine
    problems = [str(p) for p in validate_data_dir(data, scan_audio=True)]
    wav = data / "wav.scp"
    assert problems[0] == f"{wav}:2: audio has 11 NaN/Inf samples (first at 0.100 s) ({paths['utt002']})"
    assert problems[1] == f"{wav}:3: warning: audio is digital silence (every sample 0) ({paths['utt003']})"
    assert problems[2].startswith(f"{wav}:4: warning: audio is clipped: ")
    assert problems[2].endswith(f"% of the samples at full scale ({paths['utt004']})") and len(problems) == 3


def test_cli_scan_audio(data_dir_factory) -> None:
    data = data_dir_factory(2)
    rewrite(wav_path(data, "utt001"), lambda w: np.full_like(w, np.nan))
    cmd = [sys.executable, "-m", "ent.bin.validate_data_dir", str(data)]
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    out = subprocess.run(cmd + ["--scan-audio"], capture_output=True, text=True)
    assert out.returncode == 1
    assert f"{data}/wav.scp:1: audio has " in out.stdout and "errors: 1, warnings: 0" in out.stdout
    both = subprocess.run(cmd + ["--scan-audio", "--no-audio"], capture_output=True, text=True)
    assert both.returncode == 2 and "cannot go with --no-audio" in both.stderr
