"""The package's import structure (issue 32): imports point one way, down the stack in
STYLE.md, with no circles and no import of the package root from inside it. An AST scan
of every module, function-level imports included (a lazy import is still an edge)."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "keras_convx")
# the stack, top first: a module may import its own floor or any floor below
FLOORS = [
    ("__main__", "cli", "cli_args", "cli_parser", "cli_render", "testing", "pytest_plugin"),
    ("exporter", "importer"),
    ("verification",),
    ("model_config", "conversion", "weights"),
    ("layers", "ops", "constraints", "regularizers"),
    ("interop", "utils"),
]


def _modules():
    """{dotted name: path} of every module of the package."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), ROOT)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out[".".join(rel)] = os.path.join(folder, name)
    return out


def _imports(module, path, modules):
    """(imported module, line, imports the root's namespace) for every import in `path`."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "keras_convx":
                    yield alias.name, node.lineno, alias.name == "keras_convx"
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if base.split(".")[0] != "keras_convx":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    yield sub, node.lineno, False
                else:
                    yield base, node.lineno, base == "keras_convx"


def _floor(module):
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for i, names in enumerate(FLOORS):
        if top in names:
            return i
    return None


@pytest.fixture(scope="module")
def graph():
    modules = _modules()
    return modules, {m: list(_imports(m, p, modules)) for m, p in modules.items()}


def test_every_module_has_a_floor(graph):
    modules, _ = graph
    assert [m for m in modules if m != "keras_convx" and _floor(m) is None] == []


def test_nothing_imports_the_package_root(graph):
    _, edges = graph
    bad = [f"{m}:{line}" for m, rows in edges.items() if m != "keras_convx"
           for target, line, root in rows if root]
    assert bad == [], bad


def test_imports_point_down_the_stack(graph):
    _, edges = graph
    bad = [f"{m}:{line} -> {target}" for m, rows in edges.items() if m != "keras_convx"
           for target, line, _ in rows if target != "keras_convx"
           and _floor(target) is not None and _floor(target) < _floor(m)]
    assert bad == [], bad


def test_no_import_circles(graph):
    modules, edges = graph
    # Tarjan's strongly connected components over module -> module edges (a package
    # import edge counts as an import of its __init__)
    adjacency = {m: {t for t, _, _ in rows if t in modules and t != m}
                 for m, rows in edges.items()}
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in adjacency[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in adjacency:
        if v not in index:
            visit(v)
    assert circles == [], circles

