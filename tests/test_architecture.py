"""The import rules of ARCHITECTURE.md: no cycle between modules and no module importing a higher layer.

Every import counts, including those inside functions (a deferred import hides a cycle, it does not
remove it).  `import a.b` and `from a import b` (b a module) are edges to a.b; `from a.b import name`
is an edge to a.b.  Package __init__ files that re-export lazily (importlib with a name table) add no edge.
"""
from __future__ import annotations

import ast
import os

import pytest

PACKAGE = "flowmatch"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)

# Layers from the bottom up; a module may import its own layer and the ones below.  The first
# matching prefix wins: "flowmatch.x" matches flowmatch.x and flowmatch.x.*; "flowmatch._" matches the
# private helpers (flowmatch._paths, ...) but not flowmatch.__main__; "flowmatch" only the package itself.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("flowmatch.errors", "flowmatch._", "flowmatch.image", "flowmatch.io", "flowmatch.warp",
                    "flowmatch.viz", "flowmatch.checkpoint", "flowmatch.losses", "flowmatch.metrics",
                    "flowmatch.evaluation.metrics", "flowmatch.ops", "flowmatch.distributed",
                    "flowmatch.precision")),
    ("blocks", ("flowmatch.nn", "flowmatch.models", "flowmatch.data")),
    ("pipelines", ("flowmatch.pipelines", "flowmatch.estimator")),
    ("methods", ("flowmatch.methods",)),
    ("applications", ("flowmatch.evaluation", "flowmatch.evaluate", "flowmatch.video", "flowmatch.train")),
    ("interface", ("flowmatch.commands", "flowmatch.cli", "flowmatch.__main__", "flowmatch")),
]


def module_files(root: str, package: str) -> dict[str, str]:
    """Dotted module name -> file for every .py file under `root` (a package __init__ is the package)."""
    found = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), os.path.dirname(root))[:-3].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            found[".".join(rel)] = os.path.join(dirpath, f)
    return found


def imports_of(name: str, path: str, modules: set[str], package: str) -> set[str]:
    """The package modules that module `name` imports anywhere in its file."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    is_pkg = os.path.basename(path) == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules and "." in t:  # `import flowmatch.x.y` of a name inside x.y
                t = t.rsplit(".", 1)[0]
            if t in modules and (t == package or t.startswith(package + ".")) and t != name:
                out.add(t)
    return out


def _matches(name: str, prefix: str) -> bool:
    if prefix == PACKAGE:
        return name == prefix
    if prefix.endswith("_"):
        return name.startswith(prefix) and not name.startswith(prefix + "_")
    return name == prefix or name.startswith(prefix + ".")


def layer_of(name: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(_matches(name, p) for p in prefixes):
            return i
    raise AssertionError(f"module {name} is in no layer: add it to LAYERS in tests/test_architecture.py "
                         "and to ARCHITECTURE.md")


def import_graph(root: str = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    files = module_files(root, package)
    return {name: imports_of(name, path, set(files), package) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, targets in sorted(graph.items()):
        for t in sorted(targets):
            if layer_of(t) > layer_of(mod):
                bad.append(f"{mod} ({LAYERS[layer_of(mod)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})")
    return bad


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles (imports inside functions count):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_module_imports_a_higher_layer():
    bad = upward_imports(import_graph())
    assert not bad, "imports across the layers of ARCHITECTURE.md:\n" + "\n".join(bad)


def test_every_module_has_a_layer():
    for mod in import_graph():
        layer_of(mod)


def _plant(tmp_path, files: dict[str, str]) -> str:
    for rel, text in files.items():
        path = tmp_path / PACKAGE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path / PACKAGE)


def test_the_checks_catch_planted_violations(tmp_path):
    root = _plant(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "io.py": "def read():\n    from .methods.registry import get\n",   # foundation -> methods, deferred
        "methods/__init__.py": "",
        "methods/registry.py": "from ..pipelines.p import run\n",
        "pipelines/__init__.py": "",
        "pipelines/p.py": "import flowmatch.methods.registry\nfrom .. import errors\n",  # cycle with registry
    })
    graph = import_graph(root)
    assert graph["flowmatch.pipelines.p"] == {"flowmatch.methods.registry", "flowmatch.errors"}
    assert cycles(graph) == [["flowmatch.methods.registry", "flowmatch.pipelines.p"]]
    bad = upward_imports(graph)
    assert "flowmatch.io (foundation) imports flowmatch.methods.registry (methods)" in bad
    assert "flowmatch.pipelines.p (pipelines) imports flowmatch.methods.registry (methods)" in bad
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("flowmatch_other.x")


def test_no_source_file_over_500_lines():
    long = {name: n for name, path in module_files(ROOT, PACKAGE).items()
            if (n := sum(1 for _ in open(path, encoding="utf-8"))) > 500}
    assert not long, f"split these modules (lines): {long}"
