"""The package's import graph has a direction: no module imports, at module level (including
``if TYPE_CHECKING:`` blocks), a module that imports it back.

Read from the source with ``ast``, so the test sees imports that never run (type-checking ones)
and does not depend on which modules some earlier test happened to import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import langchain_dbx_serving

PACKAGE = "langchain_dbx_serving"
ROOT = Path(langchain_dbx_serving.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _module_level_imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that ``name`` imports outside function bodies."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                targets.update(owner(alias.name) or "" for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - child.level + 1]
                    source = ".".join([*base, *([child.module] if child.module else [])])
                else:
                    source = child.module or ""
                for alias in child.names:
                    targets.add(owner(f"{source}.{alias.name}") or "")
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    # A submodule importing its own parent package is how Python loads it, not a cycle.
    return {
        t for t in targets if t.startswith(PACKAGE) and t != name and not name.startswith(t + ".")
    }


def _cycles() -> set[frozenset[str]]:
    modules = _modules()
    graph = {name: _module_level_imports(path, name, modules) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def connect(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in graph:
        if node not in index:
            connect(node)
    return found


def test_the_graph_is_read_from_every_module() -> None:
    modules = _modules()
    assert f"{PACKAGE}.tracing._model" in modules and f"{PACKAGE}.testing.scan" in modules
    imports = _module_level_imports(
        modules[f"{PACKAGE}.tracing._model"], f"{PACKAGE}.tracing._model", modules
    )
    assert f"{PACKAGE}.tracing._render" in imports


def test_no_import_cycle() -> None:
    assert _cycles() == set()


def test_agents_and_background_import_one_way() -> None:
    """The two cycles #15 removed: the shared types live in ``_agent_reply`` and
    ``background.RunHost``, so neither side imports the other back."""
    modules = _modules()
    tool, background = f"{PACKAGE}.agent_tool", f"{PACKAGE}.background"
    assert f"{PACKAGE}.agents" not in _module_level_imports(modules[tool], tool, modules)
    assert not any(
        target.startswith(f"{PACKAGE}.chat_models")
        for target in _module_level_imports(modules[background], background, modules)
    )
    # not even inside a function: a handle made by AgentEndpoint gets the agent's RunReader
    tree = ast.parse(modules[background].read_text(encoding="utf-8"))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {f"{PACKAGE}.agents", f"{PACKAGE}.chat_models.responses"} & imported


def test_tracing_model_and_render_import_one_way() -> None:
    assert not any(f"{PACKAGE}.tracing._render" in cycle for cycle in _cycles())


def test_cassette_config_and_scanner_import_one_way() -> None:
    modules = _modules()
    config = f"{PACKAGE}.testing.cassettes._vcr_config"
    assert f"{PACKAGE}.testing.scan" not in _module_level_imports(modules[config], config, modules)
