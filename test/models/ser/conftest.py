"""Fixtures of the SER baseline tests: a tiny ENT experiment directory."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_ent_experiment import make_ent_experiment  # noqa: E402


@pytest.fixture(scope="session")
def ent_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ENT experiment (global CMVN) in a temporary recipe dir."""
    return make_ent_experiment(tmp_path_factory.mktemp("recipe"))
