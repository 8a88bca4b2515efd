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



def test_the_public_name_tables_match_what_loads():
    """The importer's lazy namespace lists its public names without importing them (so
    that importing one of its modules first, `keras_convx.importer.convert`, is no
    circle); the list must stay what `public` exports."""
    import keras_convx.importer as importer
    from keras_convx.importer import public

    assert sorted(importer._PUBLIC) == sorted(public.__all__)


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "torch",
                    reason="fresh processes, backend-independent: the torch pass only")
@pytest.mark.parametrize("module", ["keras_convx.importer.convert", "keras_convx.importer.api",
                                    "keras_convx.exporter.export"])
def test_any_module_imports_first_in_a_fresh_process(module):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


MAX_MODULE_LINES = 400  # issue 32: no module over 400 lines
MAX_FUNCTION_LINES = 80  # ... and no function over 80, its docstring not counted


def test_no_module_or_function_past_its_size():
    too_long = []
    for module, path in _modules().items():
        with open(path) as f:
            source = f.read()
        lines = source.count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{module}: {lines} lines")
        for node in ast.walk(ast.parse(source, path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                        and isinstance(first.value.value, str):
                    length -= first.end_lineno - first.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{module}.{node.name}: {length} lines")
    assert not too_long, too_long
