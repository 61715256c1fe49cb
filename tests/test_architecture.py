"""The shape of the code: data flows one way, and engine/ names no search space, protocol or method.

docs/architecture.md draws the parts; these tests keep two of its promises checkable.
"""

from __future__ import annotations

import ast
from pathlib import Path

from sgl import registry

ENGINE = Path(__file__).resolve().parents[1] / "engine"


def _module(path: Path) -> str:
    parts = path.relative_to(ENGINE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _engine_imports(path: Path) -> set[str]:
    """Engine modules ``path`` imports anywhere in the file (lazy imports inside functions too)."""
    here = _module(path).split(".") if _module(path) else []
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names = [target] if node.module else [".".join([*base, a.name]) for a in node.names]
            for name in names:
                for candidate in (name, *(f"{name}.{a.name}" for a in node.names)):
                    if (ENGINE / (candidate.replace(".", "/") + ".py")).exists() or (ENGINE / candidate.replace(".", "/") / "__init__.py").exists():
                        found.add(candidate)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sgl.engine"):
            found.add(node.module.removeprefix("sgl.engine").lstrip("."))
    return found - {_module(path), ""}


def test_engine_has_no_import_cycle():
    graph = {_module(p): _engine_imports(p) for p in ENGINE.rglob("*.py")}
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert graph["errors"] == set(), "errors.py sits below every other engine module"


def _strings_and_calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        yield node


def test_engine_names_no_search_space_protocol_or_method():
    spaces = set(registry.names("search_space")) | set(registry.names("protocol"))
    methods = set(registry.names("hypergradient"))
    found = []
    for path in sorted(ENGINE.rglob("*.py")):
        for node in _strings_and_calls(path):
            where = f"{path.relative_to(ENGINE)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and node.value in spaces:
                found.append(f"{where}: names the search space / protocol {node.value!r}")
            if isinstance(node, ast.Compare):
                names = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)]
                if any(n in methods for n in names if isinstance(n, str)):
                    found.append(f"{where}: tests a hypergradient method by name")
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and len(node.args) > 1
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value == "phases"):
                found.append(f"{where}: reads a search space's phases by name")
    assert found == []
