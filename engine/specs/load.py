"""Reading specs: a file and the files it ``extends:``, dotted overrides, then validation.

Every problem becomes a ``Problem`` (file:line:col, key path, message) and all of them are raised
together as one ``SpecError``, so a user fixes a spec in one pass. The YAML itself is read by
``yaml_reader``; validation errors are mapped to positions by ``validation_errors``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from . import models as spec_models
from ..errors import KeyPath, Pos, Problem, SpecError, dotted
from .problems import problems_of
from .reader import MAX_SPEC_BYTES, Document, _Reader, read_yaml, too_large

__all__ = ["Document", "KeyPath", "Pos", "Problem", "SpecError", "apply_override", "dotted", "load_document",
           "load_spec", "read_yaml", "validate"]


# --------------------------------------------------------------------------- extends and overrides


def load_document(path: str | Path, overrides: Iterable[str] = ()) -> Document:
    path = Path(path)
    doc = _load_with_bases(path, ())
    for number, text in enumerate(overrides, 1):
        apply_override(doc, text, number)
    return doc


def _load_with_bases(path: Path, chain: tuple[Path, ...]) -> Document:
    resolved = Path(os.path.realpath(path))  # never raises: a link loop is reported when it is read
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise SpecError([Problem(Pos(str(path), 1, 1), "extends", f"extends cycle: {cycle}")])
    doc = read_yaml(_read_text(path), str(path))
    bases = doc.data.pop("extends", None)
    if bases is None or bases == []:
        return doc
    base_list = [bases] if isinstance(bases, str) else bases
    if not isinstance(base_list, list) or not all(isinstance(b, str) for b in base_list):
        raise SpecError([Problem(doc.values.get(("extends",)), "extends", "must be a file name or a list of file names")])
    merged: Document | None = None
    for i, base in enumerate(base_list):
        base_path = path.parent / base
        where = doc.values.get(("extends", i) if isinstance(bases, list) else ("extends",))
        if not os.path.isfile(base_path):
            what = "a directory, not a spec file" if os.path.isdir(base_path) else "no such file"
            raise SpecError([Problem(where, "extends", f"{what}: {str(base_path)!r}")])
        real_base = Path(os.path.realpath(base_path))
        if real_base in (*chain, resolved):
            cycle = " -> ".join(str(p) for p in (*chain, resolved, real_base))
            raise SpecError([Problem(where, "extends", f"extends cycle: {cycle}")])
        base_doc = _load_with_bases(base_path, (*chain, resolved))
        merged = base_doc if merged is None else _merge(merged, base_doc)
    assert merged is not None
    result = _merge(merged, doc)
    result.path = path
    return result


def _read_text(path: Path) -> str:
    """The file as text: at most MAX_SPEC_BYTES of UTF-8 (a device such as /dev/zero included)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        reason = "it is a directory" if os.path.isdir(path) else exc.strerror or str(exc)  # never raises
        raise SpecError([Problem(None, "", f"cannot read spec {str(path)!r}: {reason}")]) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError([Problem(Pos(str(path), 1, 1), "", too_large())])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        col = len(data[start : exc.start].decode("utf-8", errors="replace")) + 1
        raise SpecError([Problem(Pos(str(path), line, col), "", (
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded ({exc.reason}); save the file as UTF-8"
        ))]) from None


def _merge(base: Document, over: Document) -> Document:
    """Deep merge: maps merge key by key, everything else (lists included) is replaced."""

    def merge(a: Any, b: Any, top: bool = False) -> Any:
        if isinstance(a, dict) and isinstance(b, dict) and (top or not _names_another_component(a, b)):
            return {**a, **{k: merge(a[k], v) if k in a else v for k, v in b.items()}}
        return b

    data = merge(base.data, over.data, top=True)
    keys: dict[KeyPath, Pos] = {}
    values: dict[KeyPath, Pos] = {}

    def walk(node: Any, path: KeyPath) -> None:
        # A position comes from the file whose value survived the merge.
        owner = over if path in over.values else base
        if path in owner.values:
            values[path] = owner.values[path]
        if path in owner.keys:
            keys[path] = owner.keys[path]
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in children:
            walk(v, path + (k,))

    walk(data, ())
    return Document(data, over.path, keys, values, [*over.sources, *base.sources], [*base.problems, *over.problems])


_COMPONENT_KEYS = ("kind", "name", "method", "type")


def _names_another_component(base: dict[str, Any], over: dict[str, Any]) -> bool:
    """A mapping that switches component (say kind: darts -> p_darts) replaces the base's whole:
    merging would leave the old component's options behind, which the new one may not have."""
    for key in _COMPONENT_KEYS:
        if key in base and key in over:
            return base[key] != over[key]
    return False


def apply_override(doc: Document, text: str, number: int = 1) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to the document in place."""
    origin = Pos(f"<override {number}: {text}>", 0, 0)
    key_text, sep, value_text = text.partition("=")
    if not sep or not key_text.strip():
        raise SpecError([Problem(origin, "", "an override must look like key.path=value")])
    path: KeyPath = tuple(int(p) if p.isdigit() else p for p in key_text.strip().split("."))
    if path[0] == "extends":
        raise SpecError([Problem(origin, "extends", "extends cannot be overridden")])
    value = None
    if value_text.strip():
        reader = _Reader(origin.file)
        value = reader.read(value_text)
        if reader.problems:
            raise SpecError(reader.problems)
    node: Any = doc.data
    created: list[KeyPath] = []
    for depth, part in enumerate(path[:-1]):
        here = path[: depth + 1]
        if isinstance(node, dict):
            if part not in node:
                created.append(here)
            node = node.setdefault(part, {})
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            raise SpecError([Problem(origin, dotted(here), _cannot_descend(path[:depth], node))])
    last = path[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    else:
        raise SpecError([Problem(origin, dotted(path), _cannot_descend(path[:-1], node))])
    for table in (doc.keys, doc.values):
        for stale in [p for p in table if p[: len(path)] == path]:
            del table[stale]
    for new in (*created, path):
        doc.keys[new] = origin
        doc.values[new] = origin


def _cannot_descend(parent: KeyPath, node: Any) -> str:
    where = dotted(parent) or "the top level"
    if isinstance(node, list):
        return f"no such item to override: {where} has {len(node)} item(s), indexed from 0"
    if isinstance(node, str):
        # e.g. `dataset: digits`, a component named by a plain string: there is no key below it.
        return f"{where} is {node!r}, not a mapping: override it whole, e.g. {where}='{{name: ..., ...}}'"
    return f"no such key to override: {where} is {node!r}, not a mapping"


# --------------------------------------------------------------------------- validation


def validate(doc: Document) -> BaseModel:
    """Validate a document against the Spec model; all problems at once, with positions."""
    from sgl import registry

    try:
        registry.load_plugins()
    except Exception as exc:  # an installed package's `sgl.plugins` entry point is broken
        raise SpecError([Problem(None, "", f"cannot load the installed sgl.plugins entry points: {exc!r}")]) from None
    problems = _missing_plugins(doc)
    if problems:
        raise SpecError(problems)
    model = spec_models.spec_model()
    try:
        spec = model.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError(_with_read_problems(doc, problems_of(doc, exc))) from None
    if doc.problems:
        raise SpecError(_with_read_problems(doc, []))
    return spec


def _missing_plugins(doc: Document) -> list[Problem]:
    """A spec's `plugins:` only names installed plugins it needs; it never imports anything.

    Importing is running: a spec (or a run directory's spec.resolved.yaml) that could name any
    module would run code from a data file. Other modules need ``sgl --plugin MODULE``.
    """
    from sgl.registry import core

    plugins = doc.data.get("plugins")
    if not isinstance(plugins, list):
        return []  # not a list: validation says so
    problems = []
    for i, name in enumerate(plugins):
        if isinstance(name, str) and not core.plugin_installed(name):
            installed = ", ".join(f"{n} ({v})" for n, v in core.installed_plugins()) or "none"
            problems.append(Problem(
                doc.pos(("plugins", i)), f"plugins.{i}",
                f"no installed sgl.plugins entry point {name!r} (installed: {installed}); a spec only names "
                "installed plugins, to import any other module use `sgl --plugin MODULE`",
            ))
    return problems


def _with_read_problems(doc: Document, problems: list[Problem]) -> list[Problem]:
    """Reading problems first in position order; validation's about the same keys are echoes of them."""
    flagged = {p.key for p in doc.problems}
    echoes = [p for p in problems if not any(p.key == k or p.key.startswith(k + ".") for k in flagged if k)]
    return sorted([*doc.problems, *echoes], key=lambda p: (p.pos.file, p.pos.line, p.pos.col) if p.pos else ("", 0, 0))


def load_spec(path: str | Path, overrides: Iterable[str] = ()) -> tuple[BaseModel, Document]:
    doc = load_document(path, overrides)
    return validate(doc), doc
