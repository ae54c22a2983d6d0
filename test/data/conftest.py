"""Fixtures for the data-layer tests.

``data_dir_factory`` builds small valid data directories with real audio
(see :func:`datadir_factory.make_data_dir`); test modules may also import
``datadir_factory`` directly, since this file puts ``test/`` on ``sys.path``.
"""

import sys
from pathlib import Path
from typing import Any, Callable

import pytest

_TEST_ROOT = str(Path(__file__).resolve().parents[1])
if _TEST_ROOT not in sys.path:
    sys.path.insert(0, _TEST_ROOT)

from datadir_factory import make_data_dir  # noqa: E402


@pytest.fixture
def data_dir_factory(tmp_path: Path) -> Callable[..., Path]:
    """``make(n=4, **kwargs) -> Path``: :func:`make_data_dir` under ``tmp_path``.

    Successive calls give ``tmp_path/data``, ``tmp_path/data1``, ... unless a
    ``name`` is passed.
    """
    count = [0]

    def make(n: int = 4, **kwargs: Any) -> Path:
        kwargs.setdefault("name", f"data{count[0]}" if count[0] else "data")
        count[0] += 1
        return make_data_dir(tmp_path, n, **kwargs)

    return make
