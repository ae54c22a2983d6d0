"""ent.sh stage 5: the SSL feature cache of a config, for every data set, on a throw-away recipe.

Slow (a subprocess that imports torch and transformers); the cache itself is
tested in test/features/test_ssl_cache.py.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "egs" / "TEMPLATE" / "ent1"
sys.path.insert(0, str(ROOT / "test"))
sys.path.insert(0, str(ROOT / "test" / "features"))
from datadir_factory import make_data_dir  # noqa: E402
from ssl_factory import save_tiny_ssl  # noqa: E402


@pytest.mark.slow
def test_stage_5_caches_every_set_once(tmp_path: Path) -> None:
    recipe = tmp_path / "egs" / "toy" / "ent1"
    (recipe / "conf").mkdir(parents=True)
    (recipe / "ent.sh").symlink_to(TEMPLATE / "ent.sh")
    (recipe / "utils").symlink_to(TEMPLATE / "utils")
    for name, durations in (("train", [0.3, 0.35]), ("dev", [0.4]), ("test", [0.45])):
        make_data_dir(recipe / "data", len(durations), name=name, durations=durations)
    model = save_tiny_ssl(tmp_path, "hubert")
    (recipe / "conf" / "ssl.yaml").write_text(
        f"frontend: ssl\nfrontend_conf: {{model_dir: {model}, cache_dir: exp/ssl_cache/tiny}}\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # Stages 5 to 11, as IEMOCAP's run.sh runs each fold (nothing to train here).
    cmd = ["./ent.sh", "--python", sys.executable, "--stage", "5", "--stop_stage", "11", "--train_configs", "",
           "--ssl_cache_configs", "conf/ssl.yaml"]
    out = subprocess.run(cmd, cwd=recipe, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Stage 5: SSL feature cache of conf/ssl.yaml for data/train data/dev data/test" in out.stdout
    manifest = json.loads((recipe / "exp" / "ssl_cache" / "tiny" / "manifest.json").read_text())
    shapes = sorted(e["shape"][1] for e in manifest["entries"].values())
    assert shapes == [14, 17, 19, 22]  # 0.3, 0.35, 0.4 and 0.45 s of 20 ms frames
    assert "4 utterances, 4 extracted" in out.stderr
    # Without --ssl_cache_configs the stage does nothing.
    quiet = subprocess.run(cmd[:-2], cwd=recipe, env=env, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and "Stage 5" not in quiet.stdout
