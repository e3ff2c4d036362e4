"""The import rules of ARCHITECTURE.md, checked on the source (ast; nothing is imported).

Each rule is a seam the project relies on: trainers run without Ray or MLflow, one module talks to
each churning library, files are written atomically in one place, and no code outside the family
registry branches on a model family's name. A change that breaks a rule fails here with the file
and line, before it blurs the layout.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("microtune", "analysis", "benchmarks", "tools") for p in (REPO / d).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line, module, imported names) for every absolute import in ``path``, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module, tuple(a.name for a in node.names)))
    return out


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _offenders(allowed_files: set[str], library: str) -> list[str]:
    return [f"{_rel(p)}:{line} imports {mod}" for p in SOURCES for line, mod, _ in _imports(p)
            if (mod == library or mod.startswith(library + ".")) and _rel(p) not in allowed_files
            and not _rel(p).startswith(("benchmarks/", "tools/"))]


@pytest.mark.parametrize("library, allowed", [
    ("ray", {"microtune/sweep/runner.py"}),
    ("mlflow", {"microtune/tracking/mlflow_io.py"}),
    ("optuna", {"microtune/sweep/runner.py", "microtune/sweep/samplers.py", "microtune/sweep/space.py",
                "analysis/importance.py"}),
    ("fcntl", {"microtune/io.py"}),
])
def test_one_module_per_churning_library(library, allowed):
    assert _offenders(allowed, library) == []


def test_trainers_know_nothing_of_sweeps_or_tracking():
    """data, gan, seg and metrics may read metric key names from tracking.schema, nothing else of
    tracking, and nothing of sweep."""
    bad = []
    for p in SOURCES:
        rel = _rel(p)
        if not rel.startswith(tuple(f"microtune/{room}/" for room in ("data", "gan", "seg", "metrics"))):
            continue
        for line, mod, names in _imports(p):
            if mod.startswith("microtune.sweep") or (mod.startswith("microtune.tracking")
                                                     and not (mod == "microtune.tracking" and names == ("schema",))
                                                     and mod != "microtune.tracking.schema"):
                bad.append(f"{rel}:{line} imports {mod} {names}")
    assert bad == []


def test_tracking_depends_on_no_other_room():
    bad = [f"{_rel(p)}:{line} imports {mod}" for p in SOURCES if _rel(p).startswith("microtune/tracking/")
           for line, mod, _ in _imports(p)
           if mod.startswith("microtune.") and mod.split(".")[1] not in ("tracking", "errors", "io")]
    assert bad == []


def test_no_family_name_outside_the_registry():
    """The issue-13 acceptance grep, widened to tracking/: family names live in sweep/families only."""
    pattern = re.compile(r"\"hptl\"|== \"dcgan\"|== \"stylegan2\"")
    bad = [f"{_rel(p)}:{i}" for p in SOURCES if _rel(p).startswith(("microtune/sweep/", "microtune/tracking/"))
           and not _rel(p).startswith("microtune/sweep/families/")
           for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert bad == []


def test_atomic_writes_in_one_place():
    """os.replace and mkstemp (the temp-file-then-rename idiom) appear only in microtune/io.py."""
    pattern = re.compile(r"\bos\.replace\(|\bmkstemp\(")
    bad = [f"{_rel(p)}:{i}" for p in SOURCES if _rel(p).startswith(("microtune/", "analysis/"))
           and _rel(p) != "microtune/io.py"
           for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert bad == []


def test_nothing_patches_sys_path():
    bad = [f"{_rel(p)}:{i}" for p in SOURCES
           for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"sys\.path\.(insert|append)", line)]
    assert bad == []


def test_the_checks_see_the_code():
    """Guards the guards: the scan finds the modules it reasons about (a moved tree fails here)."""
    names = {_rel(p) for p in SOURCES}
    assert {"microtune/sweep/runner.py", "microtune/tracking/mlflow_io.py", "microtune/io.py",
            "microtune/sweep/families/__init__.py", "analysis/report.py"} <= names
    assert any(mod == "ray" or mod.startswith("ray.") for _, mod, _ in _imports(REPO / "microtune/sweep/runner.py"))
