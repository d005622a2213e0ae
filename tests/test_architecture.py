"""The layering rules, checked on the source: data and imports move one way (cli -> flows
-> tasks -> sdfb), the library never imports prefect, no import cycle anywhere, and no
module or function grows past its size limit."""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sdfb", "tasks", "flows", "cli")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 350, 60


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, name: str) -> set[str]:
    """Every module imported anywhere in the file, at the top or inside a
    function (a lazy import is still one)."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}  # `from pkg import submodule`
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = defaultdict(set)
    for name, path in modules.items():
        for imported in _imports(path, name):
            if imported in modules and imported != name:
                graph[name].add(imported)
    return graph


def _layer(module: str) -> str:
    return module.split(".")[0]


def test_imports_go_one_way_from_the_cli_through_flows_and_tasks_to_the_library():
    allowed = {
        "cli": {"cli", "flows", "tasks", "sdfb"},
        "flows": {"flows", "tasks", "sdfb"},
        "tasks": {"tasks", "sdfb"},
        "sdfb": {"sdfb"},
    }
    wrong = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) not in allowed[_layer(module)]
    ]
    assert wrong == []


def test_the_library_never_imports_prefect():
    modules = _modules()
    offenders = [
        name
        for name, path in modules.items()
        if _layer(name) == "sdfb" and any(i.split(".")[0] == "prefect" for i in _imports(path, name))
    ]
    assert offenders == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path of modules), or None. A package importing its own submodules is not a cycle
    unless a submodule imports the package back."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_there_is_no_import_cycle():
    assert _cycle(_graph()) is None


def test_the_cycle_finder_finds_a_cycle_it_is_given():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package", ["sdfb", "tasks", "flows", "cli"])
def test_modules_and_functions_stay_small(package):
    too_long = []
    for path in sorted((ROOT / package).rglob("*.py")):
        source = path.read_text()
        rel = path.relative_to(ROOT)
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
    assert too_long == []
