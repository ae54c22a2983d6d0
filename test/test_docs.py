"""The README and docs/ name only things that exist.

Scans README.md and docs/*.md for repository paths (in inline code, fenced code
blocks and relative links), ``ent.bin.<tool>`` modules and ``ent-*`` console
scripts, and checks each against the working tree and setup.py; also the
README's length and its links to the user docs.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent

README_MAX_LINES = 250
DOC_PAGES = (
    "docs/README.md",
    "docs/concepts.md",
    "docs/data_format.md",
    "docs/recipes.md",
    "docs/features.md",
    "docs/pretrained_frontends.md",
    "docs/streaming.md",
    "docs/kernels_and_benchmarks.md",
    "docs/api.md",
)
# Repository-relative paths start with one of these.
PATH_PREFIXES = ("egs/", "ent/", "conf/", "bench/", "tools/", "test/", "docs/", ".ci/")
# Names of files that runs create (a packed model's config), not repository files.
GENERATED_YAML = {"config.yaml"}

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_BIN = re.compile(r"\bent\.bin\.([A-Za-z_][A-Za-z0-9_]*)")
_TOKEN_STRIP = "\"'`,.;:()[]"


def split_code(text: str) -> Tuple[List[str], List[str]]:
    """Split markdown into (prose lines, fenced code lines)."""
    prose, code, in_code = [], [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            continue
        (code if in_code else prose).append(line)
    return prose, code


def code_tokens(text: str) -> Iterator[str]:
    """Whitespace-separated tokens of inline code spans and fenced code blocks."""
    prose, code = split_code(text)
    for line in prose:
        for span in _INLINE.findall(line):
            yield from span.split()
    for line in code:
        yield from line.split()


def links(text: str) -> Iterator[str]:
    """Relative link targets of the prose (anchors and URLs left out)."""
    prose, _ = split_code(text)
    for line in prose:
        for target in _LINK.findall(line):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            yield target.split("#", 1)[0]


def _exists(root: Path, rel: str) -> bool:
    if "*" in rel or "?" in rel:
        return bool(glob.glob(str(root / rel)))
    return (root / rel).exists()


def _resolve_conf(root: Path, name: str) -> bool:
    """``conf/X`` (or a bare ``X.yaml``) in some recipe's folder or its conf/tuning."""
    rel = name if name.startswith("conf/") else f"conf/{name}"
    candidates = [f"egs/*/ent1/{rel}", f"egs/*/ent1/conf/tuning/{rel[len('conf/'):]}"]
    return any(glob.glob(str(root / c)) for c in candidates)


def _is_placeholder(token: str) -> bool:
    return any(c in token for c in "<>{}$") or "..." in token


def check_text(text: str, doc: Path, root: Path, console_scripts: set) -> List[str]:
    """Problems of one markdown text: names that do not exist.

    Args:
        text: The markdown.
        doc: Its path (links are relative to its folder).
        root: The repository root.
        console_scripts: The console scripts setup.py declares.

    Returns:
        One message per missing name.
    """
    problems = []
    name = doc.name if doc.parent == root else f"{doc.parent.name}/{doc.name}"
    for token in code_tokens(text):
        token = token.strip(_TOKEN_STRIP)
        if token.startswith("./"):
            token = token[2:]
        if not token or _is_placeholder(token) or "=" in token:
            continue
        if token.startswith("conf/") or (token.endswith(".yaml") and "/" not in token):
            if token not in GENERATED_YAML and not _exists(root, token) and not _resolve_conf(root, token):
                problems.append(f"{name}: config {token!r} is in no recipe (egs/*/ent1/conf, conf/tuning)")
        elif token.startswith(PATH_PREFIXES):
            if not _exists(root, token.rstrip("/")):
                problems.append(f"{name}: path {token!r} does not exist")
        elif re.fullmatch(r"ent-[a-z][a-z-]*", token) and token not in console_scripts:
            problems.append(f"{name}: console script {token!r} is not declared in setup.py")
    for target in links(text):
        if target and not (doc.parent / target).exists():
            problems.append(f"{name}: link target {target!r} does not exist")
    for module in _BIN.findall(text):
        if not (root / "ent" / "bin" / f"{module}.py").is_file():
            problems.append(f"{name}: module ent.bin.{module} does not exist")
    return problems


def console_scripts(root: Path) -> set:
    """Names of the console scripts declared in ``root/setup.py``."""
    setup = (root / "setup.py").read_text(encoding="utf-8")
    return set(re.findall(r"[\"']([A-Za-z0-9_-]+)\s*=\s*[A-Za-z0-9_.]+:[A-Za-z0-9_]+[\"']", setup))


def doc_files(root: Path) -> List[Path]:
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


# --- the checker itself -----------------------------------------------------


def test_checker_reports_missing_names(tmp_path):
    (tmp_path / "egs" / "demo" / "ent1" / "conf" / "tuning").mkdir(parents=True)
    (tmp_path / "egs" / "demo" / "ent1" / "conf" / "train_ent.yaml").write_text("a: 1\n")
    (tmp_path / "egs" / "demo" / "ent1" / "conf" / "tuning" / "train_ent_weak.yaml").write_text("a: 1\n")
    (tmp_path / "ent" / "bin").mkdir(parents=True)
    (tmp_path / "ent" / "bin" / "train.py").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "here.md").write_text("")
    text = "\n".join([
        "Train with `conf/train_ent.yaml` or `conf/train_ent_weak.yaml`, not `conf/train_ent_gcmvn.yaml`.",
        "Run `python -m ent.bin.train`, then ent.bin.nosuchtool; see [here](docs/here.md), [gone](docs/gone.md).",
        "`ent-transcribe` is declared, `ent-nosuch` is not; `egs/demo/ent1/` exists, `bench/missing.py` not.",
        "```bash",
        "./run.sh --train_configs conf/train_fent_s1.yaml   # a config that is not there",
        "```",
        "`exp/<model>/packed`, `egs/<corpus>/ent1` and `config.yaml` are not repository names.",
    ])
    problems = check_text(text, tmp_path / "README.md", tmp_path, {"ent-transcribe"})
    joined = "\n".join(problems)
    assert len(problems) == 6, joined
    for missing in ("train_ent_gcmvn.yaml", "train_fent_s1.yaml", "ent.bin.nosuchtool", "docs/gone.md",
                    "ent-nosuch", "bench/missing.py"):
        assert missing in joined


def test_checker_reads_console_scripts():
    assert "ent-transcribe" in console_scripts(ROOT)


# --- the repository's docs --------------------------------------------------


@pytest.mark.parametrize("doc", doc_files(ROOT), ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_name_existing_things(doc):
    problems = check_text(doc.read_text(encoding="utf-8"), doc, ROOT, console_scripts(ROOT))
    assert not problems, "\n".join(problems)


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"


def test_readme_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = set(links(readme))
    for page in DOC_PAGES:
        assert (ROOT / page).is_file(), f"{page} is missing"
        assert page in targets, f"README.md does not link {page}"


def test_readme_states_the_ci_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = "bash tools/setup.sh --dev && python3 -m pytest -q test"
    assert command in ci and command in readme
