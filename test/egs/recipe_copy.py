"""Copies a recipe folder for tests: files copied, ``ent.sh``/``ser.sh``/``utils`` linked to the template.

Import with ``sys.path.insert(0, str(Path(__file__).parent))`` from a test in
``test/egs``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "egs" / "TEMPLATE" / "ent1"
PYTHON = sys.executable


def copy_recipe(name: str, dest: Path) -> Path:
    """Copy ``egs/<name>/ent1`` to ``dest`` (its outputs ``data/``, ``exp/`` left out)."""
    src = REPO / "egs" / name / "ent1"
    dest.mkdir(parents=True)
    for item in src.iterdir():
        if item.name in ("data", "exp", "ent.sh", "utils", "RESULTS.md"):
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name)
        else:
            shutil.copy2(item, dest / item.name)
    (dest / "utils").symlink_to(TEMPLATE / "utils")
    if (src / "ent.sh").exists():
        (dest / "ent.sh").symlink_to(TEMPLATE / "ent.sh")
    return dest


def copy_ser_recipe(corpus: str, dest: Path) -> Path:
    """Copy ``egs/<corpus>/ser1`` to ``dest`` (links to the template re-made, outputs left out)."""
    src = REPO / "egs" / corpus / "ser1"
    dest.mkdir(parents=True)
    for item in src.iterdir():
        if item.name in ("data", "exp", "wav", "ser.sh", "utils", "RESULTS.md"):
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, dest / item.name)
    (dest / "utils").symlink_to(TEMPLATE / "utils")
    (dest / "ser.sh").symlink_to(REPO / "egs" / "TEMPLATE" / "ser1" / "ser.sh")
    return dest


def stub_driver(recipe: Path, driver: str, script: str, folds: Sequence[int] = (1, 3)) -> Path:
    """Replace the link ``recipe/driver`` (ent.sh, ser.sh) by ``script``; give ``recipe`` data/fold<k>/train."""
    (recipe / driver).unlink()
    (recipe / driver).write_text(script)
    (recipe / driver).chmod(0o755)
    for k in folds:
        (recipe / "data" / f"fold{k}" / "train").mkdir(parents=True)
        (recipe / "data" / f"fold{k}" / "train" / "text").write_text("u1 hi\n")
    return recipe


def run_script(recipe: Path, *args: str, timeout: int = 600,
               env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run ``./<script> args`` in ``recipe`` with this checkout on ``PYTHONPATH``."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([f"./{args[0]}", *args[1:]], cwd=recipe, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


