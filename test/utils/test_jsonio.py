"""Strict JSON: non-finite numbers become null in ENT's results, and no JSON writer can emit a bare NaN."""

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest

from ent.utils.jsonio import dumps, finite_or_none, has_non_finite

ROOT = Path(__file__).resolve().parents[2]


def strict_loads(text: str):
    def refuse(name: str) -> None:
        raise ValueError(f"bare {name}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null() -> None:
    obj = {"a": float("nan"), "b": [1.5, float("inf"), (np.float32("-inf"), np.float64(2.0))], "c": "NaN",
           "d": {"e": np.int64(3)}}
    assert has_non_finite(obj) and not has_non_finite(finite_or_none(obj))
    text = dumps(obj)
    assert strict_loads(text) == {"a": None, "b": [1.5, None, [None, 2.0]], "c": "NaN", "d": {"e": 3}}
    with pytest.raises(ValueError):  # plain json would have written NaN
        strict_loads(json.dumps({"a": math.nan}))


def test_every_json_writer_of_the_toolkit_refuses_nan() -> None:
    """Each json.dump/json.dumps call in ent/ passes allow_nan=False (or goes through ent.utils.jsonio).

    Only round trips (``json.loads(json.dumps(x))``, which write nothing) are exempt.
    """
    offenders = []
    for path in sorted((ROOT / "ent").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        exempt = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "loads":
                exempt.update(id(arg) for arg in node.args)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("dump", "dumps") and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "json" and id(node) not in exempt):
                strict = any(k.arg == "allow_nan" and isinstance(k.value, ast.Constant) and k.value.value is False
                             for k in node.keywords)
                if not strict:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
