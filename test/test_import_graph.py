"""The import structure of ent/: every module imports on its own, and the package graph stays layered.

The graph is built from the AST of every file under ent/. An edge ``a -> b``
is an ``import`` or ``from ... import`` of module ``b`` anywhere in ``a``: at
module level, inside functions (lazy imports) and under ``TYPE_CHECKING``
alike. ``from ent.x import y`` is an edge to ``ent.x.y`` when that is a
module, else to ``ent.x``. The implicit import of a module's parent packages
is not an edge (each package's ``__init__`` re-exports its submodules, so
counting it would make every package a cycle).

Rules:

* no cycle;
* no edge between ``ent.nets`` and ``ent.losses`` (either way; the model
  passes the nets' outputs to the losses as tensors, shared code lives in
  ``ent.kernels`` or ``ent.utils``);
* no edge from ``ent.kernels`` to ``ent.nets``, ``ent.losses`` or ``ent.models``;
* no import of a private name (``from ent.x import _y``) from another module.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
Graph = Dict[str, Set[str]]


def module_files(root: Path = REPO) -> Dict[str, Path]:
    """Dotted name -> file of every module under ``root/ent``."""
    out: Dict[str, Path] = {}
    for path in sorted((root / "ent").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _known(name: str, modules: Dict[str, Path]) -> str:
    """The longest prefix of ``name`` that is a module of ent/."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def import_graph(modules: Dict[str, Path]) -> Tuple[Graph, List[Tuple[str, str, str]]]:
    """The ent-internal import graph, and the private names imported across modules.

    Returns:
        ``(graph, private)``: module -> modules it imports; and
        ``(importer, module, name)`` for each ``from module import _name``
        with ``module`` another ent module.
    """
    graph: Graph = {name: set() for name in modules}
    private: List[Tuple[str, str, str]] = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "ent" or alias.name.startswith("ent."):
                        graph[name].add(_known(alias.name, modules))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                if not (base == "ent" or base.startswith("ent.")):
                    continue
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    if target in modules:
                        graph[name].add(target)
                        continue
                    owner = _known(base, modules)
                    graph[name].add(owner)
                    if alias.name.startswith("_") and owner != name:
                        private.append((name, owner, alias.name))
    return graph, private


def find_cycle(graph: Graph) -> Optional[List[str]]:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if state.get(root):
            continue
        path: List[str] = [root]
        stack = [iter(sorted(graph.get(root, ())))]
        state[root] = 1
        while stack:
            for nxt in stack[-1]:
                if state.get(nxt) == 1:
                    return path[path.index(nxt):] + [nxt]
                if not state.get(nxt):
                    state[nxt] = 1
                    path.append(nxt)
                    stack.append(iter(sorted(graph.get(nxt, ()))))
                    break
            else:
                state[path.pop()] = 2
                stack.pop()
    return None


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def forbidden_edges(graph: Graph) -> List[Tuple[str, str]]:
    """Edges that break the layering rules of the module docstring."""
    bad = []
    for src, targets in graph.items():
        for dst in targets:
            if (_in(src, "ent.nets") and _in(dst, "ent.losses")) or (_in(src, "ent.losses") and _in(dst, "ent.nets")):
                bad.append((src, dst))
            elif _in(src, "ent.kernels") and any(_in(dst, p) for p in ("ent.nets", "ent.losses", "ent.models")):
                bad.append((src, dst))
    return sorted(bad)


# ------------------------------------------------------------------ the checker itself


def test_find_cycle_on_hand_graphs() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}) is None  # a diamond
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]
    assert find_cycle({"x": {"a"}, "a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]


def test_graph_builder_on_a_small_package(tmp_path: Path) -> None:
    files = {
        "ent/__init__.py": "",
        "ent/nets/__init__.py": "from ent.nets.joint import Joint\n",
        "ent/nets/joint.py": "def f():\n    from ent.losses import fused\n",
        "ent/losses/__init__.py": "",
        "ent/losses/fused.py": "from . import helpers\nfrom .helpers import _private, public\n",
        "ent/losses/helpers.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ent.losses.fused\n",
        "ent/kernels/__init__.py": "import ent.models.x\n",
        "ent/models/__init__.py": "",
        "ent/models/x.py": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    graph, private = import_graph(module_files(tmp_path))
    assert graph["ent.nets.joint"] == {"ent.losses.fused"}  # a function-level import counts
    assert graph["ent.losses.fused"] == {"ent.losses.helpers"}
    assert graph["ent.losses.helpers"] == {"ent.losses.fused"}  # so does TYPE_CHECKING
    assert private == [("ent.losses.fused", "ent.losses.helpers", "_private")]
    assert find_cycle(graph) == ["ent.losses.fused", "ent.losses.helpers", "ent.losses.fused"]
    assert forbidden_edges(graph) == [("ent.kernels", "ent.models.x"), ("ent.nets.joint", "ent.losses.fused")]


# ------------------------------------------------------------------ ent/

MODULES = module_files()
GRAPH, PRIVATE = import_graph(MODULES)


def test_the_graph_is_built_from_every_module() -> None:
    assert {"ent.kernels.backends", "ent.losses.fused_lattice", "ent.nets.joint"} <= set(MODULES)
    assert "ent.kernels.backends" in GRAPH["ent.losses.fused_lattice"]


def test_no_import_cycle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_layering() -> None:
    assert forbidden_edges(GRAPH) == []


def test_no_private_names_imported_across_modules() -> None:
    assert PRIVATE == [], "\n".join(f"{a} imports {name} from {b}" for a, b, name in PRIVATE)


_ISOLATED_IMPORTS = """
import importlib, json, sys, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "ent" or m.startswith("ent.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-3)
print(json.dumps(failed))
"""


def test_every_module_imports_on_its_own() -> None:
    """Each module in a clean ``ent`` namespace (third-party packages stay loaded, for speed)."""
    done = subprocess.run(
        [sys.executable, "-c", _ISOLATED_IMPORTS, json.dumps(sorted(MODULES))],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert failed == {}, "\n".join(f"{name}:\n{tb}" for name, tb in failed.items())


@pytest.mark.parametrize("package", ["ent.kernels", "ent.losses", "ent.nets"])
def test_importing_does_not_import_numba(package: str) -> None:
    """numba (about 0.3 s) is imported when a numba kernel first runs, not at start-up."""
    code = f"import sys, {package}; print('numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"
