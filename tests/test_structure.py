"""The shape of the package: small modules, no import cycles (in-function imports included),
the core never imports the UI."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set) -> set:
    """Workbench modules ``name`` imports anywhere in its body (top level or inside functions)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                root = base[: len(base) - node.level + 1]
                prefix = ".".join(root + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            # the longest known module the import names (``from .x import y`` may name module x.y)
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("workbench"):
                out.add(t)
    return out


def _graph() -> dict:
    mods = _modules()
    known = set(mods)
    graph = {m: _imports(m, p, known) for m, p in mods.items()}
    # a module's parent packages run first when it is imported: not an edge we care about
    for m, deps in graph.items():
        graph[m] = {d for d in deps if not m.startswith(d + ".")}
    return graph


def _cycles(graph: dict) -> list:
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_no_module_is_over_400_lines():
    long = {m: n for m, p in _modules().items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_cycles_even_inside_functions():
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_core_does_not_import_the_ui():
    graph = _graph()
    bad = {m: sorted(d for d in deps if d.startswith("workbench.ui"))
           for m, deps in graph.items() if not m.startswith("workbench.ui")}
    # the session's report export is the one documented door to the UI (it draws plots)
    bad = {m: d for m, d in bad.items() if d and m != "workbench.session.exports"}
    assert not bad, f"core modules importing workbench.ui: {bad}"


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# The house, bottom to top (docs/ARCHITECTURE.md draws it). A module may import its own layer and
# the layers below it, never a layer above (in-function imports count).
LAYERS = [
    ("workbench.errors", "workbench._io", "workbench._optional", "workbench.validate", "workbench.sample"),
    ("workbench.outputs",),
    ("workbench.graph",),
    ("workbench.data",),
    ("workbench.backends",),
    ("workbench.calib",),
    ("workbench.precision",),
    ("workbench.export",),
    ("workbench.imported",),
    ("workbench.evaluate",),
    ("workbench.improve",),
    ("workbench.search",),
    ("workbench.session",),
    ("workbench.ui",),
    ("workbench.cli",),
]


def layer_of(module: str) -> int:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and docs/ARCHITECTURE.md")


def upward_imports(graph: dict) -> list:
    return sorted(f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
                  for m, deps in graph.items() if m != "workbench"
                  for d in deps if d != "workbench" and layer_of(d) > layer_of(m))


def test_no_import_runs_upward():
    assert upward_imports(_graph()) == []


def test_the_layer_check_finds_an_upward_import():
    graph = {"workbench.graph.model": {"workbench.search.autorange"}, "workbench.search.autorange": set()}
    assert upward_imports(graph) == [
        "workbench.graph.model (layer 2) imports workbench.search.autorange (layer 11)"]


def test_few_loose_modules():
    loose = sorted(p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= 5, loose


def test_no_test_file_is_over_400_lines():
    tests = PACKAGE.parent / "tests"
    long = {str(p.relative_to(tests)): n for p in tests.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"test files over {MAX_LINES} lines: {long}"
