"""The import graph of ``specclip_core``: no cycles, and the library never reaches up into the runner or the stages.

Every ``import`` counts, at module level or inside a function (a lazy import is still a dependency);
only imports under ``if TYPE_CHECKING:`` are left out, because they never run. The layers:
library modules (``nn``, ``train``, ``data``, ``heads``, ``align``, ``retrieval``, ``report``) may not
import the runner (``specclip_core.runner``) or the stages (``specclip_core.stages``); plugins may
import only the declared plugin API (``specclip_core.api``, and ``specclip_core.testing`` in tests).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORE = REPO / "specclip_core"
LIBRARY = ("nn", "train", "data", "heads", "align", "retrieval", "report")
UPPER = ("specclip_core.runner", "specclip_core.stages")
PLUGIN_API = "specclip_core.api"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imported_names(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of everything a file imports; ``from a import b`` gives ``a.b`` (b may be a
    submodule or a name in ``a``: resolve against the modules that exist)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def resolve(name: str, modules: set[str]) -> str | None:
    """The longest existing module that ``name`` starts with."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def core_graph() -> dict[str, set[str]]:
    files = {module_name(p, REPO): p for p in CORE.rglob("*.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets = {resolve(imported, modules) for _, imported in imported_names(path)}
        graph[name] = {t for t in targets if t and t != name}
    from specclip_core.api import SOURCES  # the plugin API imports these on first use, by name

    graph["specclip_core.api"] |= set(SOURCES)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return cycles


def test_no_import_cycle_inside_the_core():
    cycles = find_cycles(core_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_library_modules_import_neither_the_runner_nor_the_stages():
    offences = []
    for name, targets in core_graph().items():
        if name.split(".")[1:2] and name.split(".")[1] in LIBRARY:
            offences += [f"{name} imports {t}" for t in sorted(targets) if t.startswith(UPPER)]
    assert not offences, "\n".join(offences)


def test_the_cycle_finder_finds_cycles():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


PLUGIN_FILES = sorted(p for p in (REPO / "plugins").glob("*/src/**/*.py")) + sorted((REPO / "registry").glob("src/**/*.py"))
PLUGIN_TEST_FILES = sorted(p for p in (REPO / "plugins").glob("*/tests/**/*.py")) + sorted((REPO / "registry").glob("tests/**/*.py"))


def _core_imports(paths: list[Path], allowed: tuple[str, ...]) -> list[str]:
    """Imports of ``specclip_core`` in ``paths`` that fall outside the ``allowed`` modules."""

    def inside(name: str, module: str) -> bool:
        return name == module or name.startswith(module + ".")

    offences = []
    for path in paths:
        for line, name in imported_names(path):
            if inside(name, "specclip_core") and not any(inside(name, module) for module in allowed):
                offences.append(f"{path.relative_to(REPO)}:{line}: {name}")
    return offences


def test_shipped_plugins_import_only_the_plugin_api():
    assert PLUGIN_FILES, "no plugin sources found"
    offences = _core_imports(PLUGIN_FILES, (PLUGIN_API,))
    assert not offences, "plugins reach past specclip_core.api:\n" + "\n".join(offences)


def test_shipped_plugin_tests_import_only_the_plugin_api_and_the_testing_kit():
    offences = _core_imports(PLUGIN_TEST_FILES, (PLUGIN_API, "specclip_core.testing"))
    assert not offences, "plugin tests reach past specclip_core.api and specclip_core.testing:\n" + "\n".join(offences)


def test_the_plugin_api_exports_what_it_declares():
    import importlib

    module = importlib.import_module(PLUGIN_API)
    missing = [item for item in module.__all__ if not hasattr(module, item)]
    assert not missing and len(module.__all__) > 20, missing
