"""Fixtures for the corpus preparation tests.

Puts ``test/corpora`` on ``sys.path`` so that test modules (here and in
``test/bin``, ``test/egs``) can ``import iemocap_fixture`` and ``zed_fixture``.
"""

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from iemocap_fixture import make_iemocap_tree  # noqa: E402
from zed_fixture import make_zed_tree  # noqa: E402


@pytest.fixture
def iemocap_root(tmp_path: Path) -> Path:
    """A fresh IEMOCAP fixture tree (see :mod:`iemocap_fixture`)."""
    return make_iemocap_tree(tmp_path / "IEMOCAP_full_release")


@pytest.fixture
def zed_root(tmp_path: Path) -> Path:
    """A fresh ZED fixture folder (see :mod:`zed_fixture`)."""
    return make_zed_tree(tmp_path / "ZED")
