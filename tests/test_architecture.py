"""The shape of the code: wings that follow the data, no import cycle, small modules, a typed plan,
and engine/ naming no search space, protocol, method or genotype.

docs/architecture.md draws the wings and says what each module owns; these tests keep its promises.
"""

from __future__ import annotations

import ast
import re
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from sgl import registry

REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / "engine"
REGISTRY = REPO / "registry"

#: The wings of engine/ in the order data flows through them; "" is the shared vocabulary at its root.
WINGS = ["", "specs", "plan", "run", "rundir", "results", "study", "api", "cli"]
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60


def _module(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(root: Path, name: str) -> bool:
    base = root / name.replace(".", "/")
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _imports(root: Path, prefix: str, path: Path) -> set[str]:
    """Modules of ``root`` (named relative to it) that ``path`` imports anywhere in the file: lazy
    imports inside functions and imports for type checking too."""
    here = _module(root, path).split(".") if _module(root, path) else []
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = [*base, *(node.module.split(".") if node.module else [])]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(prefix):
            target = node.module.removeprefix(prefix).lstrip(".").split(".")
        elif isinstance(node, ast.Import):
            names = [a.name.removeprefix(prefix).lstrip(".") for a in node.names if a.name.startswith(prefix)]
            found |= {n for n in names if n and _exists(root, n)}
            continue
        else:
            continue
        target = [t for t in target if t]
        submodules = {".".join([*target, a.name]) for a in node.names if _exists(root, ".".join([*target, a.name]))}
        found |= submodules
        if len(submodules) < len(node.names) and _exists(root, ".".join(target)):
            found.add(".".join(target))  # names defined in the module (or package) itself
    own = _module(root, path)
    # A module's own packages are loaded before it in any case: importing them is no dependency.
    ancestors = {".".join(package[:n]) for n in range(len(package) + 1)}
    return found - ancestors - {own, ""}


def _graph(root: Path, prefix: str) -> dict[str, set[str]]:
    return {_module(root, p): _imports(root, prefix, p) for p in root.rglob("*.py")}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, [*trail, nxt])):
                return found
        state[node] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


@pytest.mark.parametrize(("root", "prefix"), [(ENGINE, "sgl.engine"), (REGISTRY, "sgl.registry")], ids=["engine", "registry"])
def test_no_import_cycle(root, prefix):
    cycle = _cycle(_graph(root, prefix))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _wing(module: str) -> str:
    head = module.split(".")[0]
    return head if head in WINGS else ""


def test_every_engine_module_is_in_a_wing_or_the_shared_root():
    for path in ENGINE.rglob("*.py"):
        parts = path.relative_to(ENGINE).parts
        assert len(parts) == 1 or parts[0] in WINGS, f"{path.relative_to(REPO)} is in no wing of {WINGS}"


def _wing_imports(path: Path) -> set[str]:
    """The wings a module imports: engine modules, and the Python API (``import sgl``)."""
    wings = {_wing(m) for m in _imports(ENGINE, "sgl.engine", path)}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name == "sgl" for a in node.names):
            wings.add("api")
        if isinstance(node, ast.ImportFrom) and node.module == "sgl" and any(a.name != "registry" for a in node.names):
            wings.add("api")
    return wings


def test_a_wing_imports_only_the_wings_before_it():
    wrong = []
    for path in sorted(ENGINE.rglob("*.py")):
        wing = _wing(_module(ENGINE, path))
        later = sorted(w for w in _wing_imports(path) if WINGS.index(w) > WINGS.index(wing))
        if later:
            wrong.append(f"{path.relative_to(REPO)} ({wing or 'root'}) imports the later wing(s) {later}")
    assert wrong == []


def test_errors_sit_below_every_other_engine_module():
    assert _imports(ENGINE, "sgl.engine", ENGINE / "errors.py") == set()


def test_modules_and_functions_stay_small():
    big = []
    for root in (ENGINE, REGISTRY):
        for path in sorted(root.rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if text.count("\n") > MAX_MODULE_LINES:
                big.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        big.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {length} lines")
    assert big == []


def test_engine_names_no_search_space_protocol_method_or_genotype():
    spaces = set(registry.names("search_space")) | set(registry.names("protocol"))
    methods = set(registry.names("hypergradient"))
    found = []
    for path in sorted(ENGINE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
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
            if isinstance(node, ast.ImportFrom) and any(a.name == "Genotype" for a in node.names):
                found.append(f"{where}: imports Genotype (the engine speaks of registry.Architecture)")
            if isinstance(node, ast.ImportFrom) and "genotype" in (node.module or "").split("."):
                found.append(f"{where}: imports the genotype module")
    assert found == []


def _annotations(cls) -> dict[str, object]:
    return typing.get_type_hints(cls)


def test_the_plan_is_typed_to_the_last_field():
    """No ``Any`` in the plan's types, and no spec model inside it."""
    from sgl.engine.plan import settings, types

    untyped, seen = [], set()

    def check(hint, where):
        if hint is typing.Any:
            untyped.append(where)
        for arg in typing.get_args(hint):
            check(arg, where)
        if is_dataclass(hint) and hint not in seen:
            seen.add(hint)
            for name, sub in _annotations(hint).items():
                check(sub, f"{hint.__name__}.{name}")
        module = getattr(hint, "__module__", "") or ""
        if module.startswith("sgl.engine.specs"):
            untyped.append(f"{where}: a spec model ({hint.__name__})")

    for module in (types, settings):
        for obj in vars(module).values():
            if is_dataclass(obj) and obj.__module__ == module.__name__:
                check(obj, obj.__name__)
    assert untyped == [] and seen


def test_docs_architecture_lists_every_module():
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`((?:engine|registry)/[\w/]+\.py)`", doc))
    missing = sorted(str(p.relative_to(REPO)) for root in (ENGINE,) for p in root.rglob("*.py")
                     if p.name != "__init__.py" or p.parent.name == "api")
    missing = [m for m in missing if m not in listed]
    gone = sorted(m for m in listed if not (REPO / m).exists())
    assert missing == [] and gone == [], f"not in docs/architecture.md: {missing}; listed but gone: {gone}"


def test_plan_fields_are_documented_types():
    """Every field of the plan's dataclasses has a type the JSON view can write (a smoke check of
    plan_dict on a real plan)."""
    import json

    import sgl
    from sgl.engine.plan.view import plan_dict

    plan = sgl.plan(REPO / "specs" / "quickstart.yaml")
    data = json.loads(json.dumps(plan_dict(plan)))
    assert {f.name for f in fields(plan)} <= set(data)
    assert data["learners"]["alice"]["final_net"] == "V" and data["stages"][1]["measured_epochs"]
