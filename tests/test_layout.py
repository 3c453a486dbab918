"""The package's layout holds: no import circle, arrows one way, complete registries.

Every module's imports are parsed, those inside functions included (an import inside a
function hides a circle until the function runs); imports under `if TYPE_CHECKING:` are
annotations only and left out. Importing `a.b.c` also runs `a.b/__init__`, so an import
counts as an arrow to each enclosing package of the target too, except the importer's own
(those are already being imported when it runs).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "avengers_core"

# lower layers never import higher ones (docs/ARCHITECTURE.md draws the same picture)
LAYERS = [
    {"errors", "fileio", "config", "device", "jsonsafe", "redact", "npz_limits"},
    {"data", "backends"},
    {"embed", "answers"},
    {"routing", "vote", "calibrate"},
    {"pipeline", "present"},
    {"cli", "serve"},
]
# the routing side never imports the LLM side; data never imports embed
FORBIDDEN = {
    "routing": {"backends", "answers", "vote", "calibrate", "pipeline"},
    "data": {"embed", "routing"},
    "answers": {"routing", "embed"},
    "vote": {"routing", "calibrate"},
}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:`."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for b in node.body for n in ast.walk(b))
    return out


def imports_of(path: Path, known: set[str], root: Path = ROOT) -> set[str]:
    """The package modules `path` imports (top level and inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = type_checking_nodes(tree)
    me = module_name(path, root)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` imports the submodule when `sub` is one
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known
                       else node.module for a in node.names]
        for t in targets:
            if not t.startswith("avengers_core"):
                continue
            parts = t.split(".")
            for i in range(1, len(parts) + 1):
                m = ".".join(parts[:i])
                own_ancestor = me == m or me.startswith(m + ".")
                if m in known and not own_ancestor and m != "avengers_core":
                    found.add(m)
    found.discard(me)
    return found


def graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, known) for f in files}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(g):
        if m not in state and (c := visit(m)):
            return c
    return None


def top(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def layer(module: str) -> int:
    name = top(module)
    return next((i for i, names in enumerate(LAYERS) if name in names), -1)


def test_find_cycle_sees_a_circle_through_a_function_import(tmp_path):
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from avengers_core.b import x\n")
    assert imports_of(a, {"avengers_core.b", "a"}, tmp_path) == {"avengers_core.b"}
    assert find_cycle({"x": {"y"}, "y": {"z"}, "z": {"x"}}) == ["x", "y", "z", "x"]
    assert find_cycle({"x": {"y"}, "y": set()}) is None


def test_no_import_circle_inside_the_package():
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " → ".join(cycle or [])


def test_every_module_belongs_to_a_layer():
    unplaced = sorted(m for m in graph() if m != "avengers_core" and layer(m) < 0)
    assert not unplaced, f"add these to LAYERS and docs/ARCHITECTURE.md: {unplaced}"


def test_arrows_run_one_way():
    bad = []
    for m, targets in graph().items():
        if m == "avengers_core":
            continue
        for t in targets:
            if top(t) == top(m):
                continue
            if layer(t) > layer(m) or top(t) in FORBIDDEN.get(top(m), set()):
                bad.append(f"{m} → {t}")
    assert not bad, "imports against the arrows:\n" + "\n".join(sorted(bad))


def test_no_streamlit_in_the_core():
    hits = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
            if "streamlit" in {n.split(".")[0] for n in _all_imports(p)}]
    assert not hits


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_vote_run_is_constructed_only_by_the_pipeline():
    """One controller: route-then-vote is written once (the tests may build runs)."""
    makers = []
    for folder in ("avengers_core", "app_pages", "app_state", "bench"):
        for p in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(p.read_text(encoding="utf-8"))
            if any(isinstance(n, ast.Call) and ast.unparse(n.func).endswith("VoteRun")
                   for n in ast.walk(tree)):
                makers.append(str(p.relative_to(ROOT)))
    assert makers == ["avengers_core/pipeline.py"]


@pytest.mark.parametrize("code", [
    # a registry is complete as soon as its package is imported
    "import avengers_core.routing.routers as r; print(sorted(r.ROUTERS))",
    "import avengers_core.routing.routers.base as b; "
    "print(sorted(b.ROUTERS))",
])
def test_router_registry_is_complete_on_import(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    names = eval(out.stdout)  # a printed list of str
    assert {"avengers", "best_single", "random", "knn", "auto", "logreg", "mlp", "lowrank",
            "evidence"} <= set(names)


def test_stable_api_from_the_package_root():
    code = ("import avengers_core as a, sys; "
            "print(a.load_table.__module__, a.AvengersRouter.__module__, a.VoteRun.__module__, "
            "'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.split()
    assert out == ["avengers_core.data.load", "avengers_core.routing.routers.avengers",
                   "avengers_core.vote.run", "False"]
