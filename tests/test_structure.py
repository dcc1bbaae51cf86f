"""The package's structure, enforced: layers import downward only, no import cycle (module- or
function-level), and the independent checker imports nothing but the standard library."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections import defaultdict

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "relucert")

# lower number = lower layer; a module may import only from its own layer or lower ones
LAYERS = {
    "relucert.errors": 0, "relucert.check": 0,
    "relucert.core": 1,
    "relucert.io": 2,
    "relucert.decide": 3,
    "relucert.refine": 4,
    "relucert.pipeline": 5,
    "relucert.tools": 6,
    "relucert.claims": 7,
    "relucert.commands": 8, "relucert.cli": 8,
    "relucert.torch": 8,               # live PyTorch models and the training Monitor (uses tools, pipeline)
    "relucert": 9,                     # the public API (relucert/__init__.py)
}


def _modules() -> dict[str, str]:
    mods = {}
    for dp, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dp, f)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                if rel.endswith(".__init__"):
                    rel = rel[: -len(".__init__")]
                mods[rel] = path
    return mods


def _imports(mod: str, path: str, mods: dict) -> set[str]:
    """Every relucert module imported anywhere in the file (also inside functions)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    is_pkg = path.endswith("__init__.py")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not (target == "relucert" or target.startswith("relucert.")):
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.add(sub if sub in mods else target)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "relucert" or a.name.startswith("relucert."):
                    out.add(a.name)
    out.discard(mod)
    return {m for m in out if m in mods}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def _layer(mod: str) -> int:
    best = None
    for prefix, rank in LAYERS.items():
        if mod == prefix or mod.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, rank)
    assert best is not None, f"{mod} is in no layer: add it to LAYERS"
    return best[1]


def test_every_module_has_a_layer():
    for mod in _graph():
        _layer(mod)


def test_layers_import_downward_only():
    bad = [(m, t) for m, ts in _graph().items() for t in ts if _layer(t) > _layer(m)]
    assert not bad, "upward imports (module -> imported): " + ", ".join(f"{m} -> {t}" for m, t in bad)


def test_no_import_cycle():
    g = _graph()
    state: dict[str, int] = defaultdict(int)      # 0 new, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(g[u]):
            if state[v] == 1:
                cyc = stack[stack.index(v):] + [v]
                pytest.fail("import cycle: " + " -> ".join(cyc))
            if state[v] == 0:
                visit(v)
        stack.pop()
        state[u] = 2

    for u in sorted(g):
        if state[u] == 0:
            visit(u)


def test_the_graph_sees_function_level_imports(tmp_path):
    """The cycle test would miss cycles hidden in function bodies if the parser skipped them."""
    mods = {"relucert.a": "", "relucert.b": ""}
    src = tmp_path / "a.py"
    src.write_text("def f():\n    from relucert.b import g\n    from . import b\n")
    assert _imports("relucert.a", str(src), mods) == {"relucert.b"}


def test_checker_imports_only_the_standard_library():
    check_dir = os.path.join(ROOT, "check")
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for f in os.listdir(check_dir):
        if not f.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(check_dir, f), encoding="utf-8").read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:           # relative: inside relucert/check only
                    assert node.level == 1, f"check/{f} reaches outside the checker package"
                    continue
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in stdlib, f"check/{f} imports {name}, not in the standard library"


def test_checker_runs_without_the_rest_of_the_package(tmp_path):
    """Loaded on its own (as a top-level package), the checker pulls in no third-party module."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import check; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'flint', 'sympy', 'scipy', 'mpmath', 'z3', 'relucert')); "
            "print(bad); assert not bad; assert callable(check.check_certificate)")
    r = subprocess.run([sys.executable, "-I", "-c", code, ROOT], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
