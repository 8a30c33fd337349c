"""The package's architecture, read from its source with ``ast`` (nothing is imported).

* Layers: a module imports only from its own subpackage's layer or a lower one
  (:data:`LAYERS`, lowest first), including imports inside functions.
* No import cycles between modules.
* No private name (``_x``) imported from, or read through, another module.
* No function over :data:`MAX_FUNCTION_LINES` lines (decorator to last line) outside the numba
  kernels (functions decorated with ``njit``/``jit``).
* No scenario section is registered at import time and nothing imports modules by name
  (``importlib``) except the code generator loading a generated kernel.

Run as a script (``python tests/test_architecture.py``) it prints the findings.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "carkinetics"

#: Layers, lowest first: the ground floor (version, errors, progress, io), then each subpackage.
LAYERS = ("version", "errors", "progress", "io", "engine", "model", "simulation", "stats", "scenario", "plots",
          "cohort", "fit", "studies", "cli")
MAX_FUNCTION_LINES = 120
#: The only module that may import modules by name: it loads a model's generated kernel file.
IMPORTLIB_ALLOWED = {"carkinetics.model.codegen"}


@dataclass
class Findings:
    modules: dict = field(default_factory=dict)  # module name -> path
    edges: dict = field(default_factory=dict)  # module name -> set of imported module names
    upward: list = field(default_factory=list)
    private: list = field(default_factory=list)
    long_functions: list = field(default_factory=list)
    importlib: list = field(default_factory=list)
    cycles: list = field(default_factory=list)


def _modules(package: Path) -> dict:
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _layer(module: str):
    parts = module.split(".")
    if len(parts) == 1:
        return None  # the package itself (curated re-exports) and __main__
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str | None:
    if node.level == 0:
        return node.module
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module, tree, is_package, modules):
    """(imported module, imported private name or None, line) of every import of the package."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _absolute(module, node, is_package)
            if not base or not base.startswith("carkinetics"):
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in modules:
                    yield full, None, node.lineno
                else:
                    private = alias.name if alias.name.startswith("_") and not alias.name.startswith("__") else None
                    yield base, private, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("carkinetics"):
                    yield alias.name, None, node.lineno


def _module_aliases(module, tree, is_package, modules) -> dict:
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _absolute(module, node, is_package)
            for alias in node.names:
                if base and f"{base}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules and alias.asname:
                    aliases[alias.asname] = alias.name
    return aliases


def _is_kernel(node) -> bool:
    return any("jit" in ast.unparse(d) for d in node.decorator_list)


def _check_module(module, path, modules, found: Findings) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    edges = found.edges.setdefault(module, set())
    for target, private, line in _imports(module, tree, is_package, modules):
        while target not in modules and "." in target:
            target = target.rsplit(".", 1)[0]
        if private and target != module:
            found.private.append(f"{module} imports {target}.{private} (line {line})")
        if target in modules and target != module:
            edges.add(target)
            mine, theirs = _layer(module), _layer(target)
            if mine is not None and (theirs is None or theirs > mine):
                found.upward.append(f"{module} imports {target} (line {line})")
    aliases = _module_aliases(module, tree, is_package, modules)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.private.append(f"{module} reads {aliases[node.value.id]}.{node.attr} (line {node.lineno})")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _is_kernel(node):
            lines = node.end_lineno - min([node.lineno] + [d.lineno for d in node.decorator_list]) + 1
            if lines > MAX_FUNCTION_LINES:
                found.long_functions.append(f"{module}.{node.name}: {lines} lines")
        if isinstance(node, (ast.Import, ast.ImportFrom)) and module not in IMPORTLIB_ALLOWED:
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(n and n.split(".")[0] == "importlib" for n in names):
                found.importlib.append(f"{module} imports importlib (line {node.lineno})")


def _cycles(edges: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(" <-> ".join(sorted(component)))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def analyse(package: Path = PACKAGE) -> Findings:
    """Every finding of the checks above for the package at ``package``."""
    found = Findings(modules=_modules(package))
    for module, path in found.modules.items():
        _check_module(module, path, found.modules, found)
    limit = sys.getrecursionlimit()  # the depth-first search recurses once per module on a path
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        found.cycles = _cycles(found.edges)
    finally:
        sys.setrecursionlimit(limit)  # other tests rely on the interpreter's default limit
    return found


def report(found: Findings) -> str:
    """The findings as text, one section per check."""
    sections = [("import cycles", found.cycles), ("private names across modules", found.private),
                (f"imports from a higher layer ({' < '.join(LAYERS)})", found.upward),
                (f"functions over {MAX_FUNCTION_LINES} lines outside numba kernels", found.long_functions),
                ("importlib outside the code generator", found.importlib)]
    lines = [f"modules: {len(found.modules)}"]
    for title, items in sections:
        lines.append(f"{title}: {len(items)}")
        lines += [f"  {x}" for x in items]
    return "\n".join(lines)


FINDINGS = analyse()


def test_the_checks_see_the_whole_package():
    assert len(FINDINGS.modules) > 50
    assert "carkinetics.simulation.simulate" in FINDINGS.edges["carkinetics.cohort.chunk"]


def test_no_import_cycles():
    assert not FINDINGS.cycles


def test_no_private_names_across_modules():
    assert not FINDINGS.private


def test_each_module_imports_only_from_its_layer_or_lower():
    assert not FINDINGS.upward


def test_no_function_over_120_lines_outside_the_numba_kernels():
    assert not FINDINGS.long_functions


def test_nothing_imports_modules_by_name():
    assert not FINDINGS.importlib


def test_the_checks_would_catch_a_violation(tmp_path):
    # A toy package with one of each problem: the checks are not vacuous.
    pkg = tmp_path / "carkinetics"
    (pkg / "stats").mkdir(parents=True)
    (pkg / "cli").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "stats" / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("")
    (pkg / "stats" / "a.py").write_text("def f():\n    from carkinetics.cli.b import _g\n")
    body = "\n".join(f"    x{i} = {i}" for i in range(130))
    (pkg / "cli" / "b.py").write_text(f"import importlib\nfrom carkinetics.stats import a\n\ndef _g():\n{body}\n")
    found = analyse(pkg)
    assert found.cycles == ["carkinetics.cli.b <-> carkinetics.stats.a"]
    assert found.private == ["carkinetics.stats.a imports carkinetics.cli.b._g (line 2)"]
    assert found.upward == ["carkinetics.stats.a imports carkinetics.cli.b (line 2)"]
    assert found.long_functions == ["carkinetics.cli.b._g: 131 lines"]
    assert found.importlib == ["carkinetics.cli.b imports importlib (line 1)"]


if __name__ == "__main__":
    print(report(FINDINGS))
    sys.exit(1 if (FINDINGS.cycles or FINDINGS.private or FINDINGS.upward or FINDINGS.long_functions
                   or FINDINGS.importlib) else 0)
