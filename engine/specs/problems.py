"""Pydantic's validation errors as ``Problem``s: each at the position of the key or value it is
about, in the words of the spec (its keys, its component names), with a "did you mean"."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .key_paths import allowed_keys, kinds_at, paths_of_key
from .sections import stage_tag
from ..errors import KeyPath, Problem, did_you_mean, dotted
from .reader import Document


def problems_of(doc: Document, exc: ValidationError) -> list[Problem]:
    problems = []
    seen = set()
    for error in exc.errors():
        problem = _problem(doc, error)
        if str(problem) not in seen:
            seen.add(str(problem))
            problems.append(problem)
    return sorted(problems, key=lambda p: (p.pos.file, p.pos.line, p.pos.col) if p.pos else ("", 0, 0))


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[KeyPath, KeyPath]:
    """Split a pydantic loc into the part that exists in the data and the rest (union tags dropped)."""
    path: list[Any] = []
    node = data
    rest = list(loc)
    while rest:
        part = rest[0]
        if isinstance(node, dict) and len(rest) > 1 and rest[1] in node and part in _tags(node, tuple(path)):
            rest.pop(0)  # a union tag that is also a key of its section (kind: genotype has `genotype`)
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif isinstance(node, dict) and len(rest) > 1 and rest[1] in node:
            rest.pop(0)  # a union member's tag, e.g. ('learners', 'a', 'darts', 'channels')
            continue
        elif isinstance(node, dict) and isinstance(part, str) and part in _tags(node, tuple(path)):
            rest.pop(0)  # a trailing tag, e.g. ('learners', 'a', 'pc_darts') from a model validator
            continue
        else:
            break
        path.append(part)
        rest.pop(0)
    return tuple(path), tuple(p for p in rest if not isinstance(p, str) or not p.startswith("function-"))


def _tags(node: dict[Any, Any], path: KeyPath) -> set[Any]:
    """The union tags that select ``node``'s model: its discriminator values (stages: the implied type)."""
    if len(path) == 2 and path[0] == "stages":
        return {stage_tag(node)}
    return {node.get(k) for k in ("kind", "name", "method")} - {None}


def _problem(doc: Document, error: dict[str, Any]) -> Problem:
    kind = error["type"]
    loc = tuple(error["loc"])
    blamed = (error.get("ctx") or {}).get("at")
    if isinstance(blamed, str):  # a cross-field check names the field it blames, e.g. schedule.min_lr
        loc += tuple(blamed.split("."))
    path, rest = _data_path(doc.data, loc)
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif message.startswith("Assertion failed, "):
        message = message[len("Assertion failed, ") :]
    if kind == "extra_forbidden":
        parent, key = path[:-1], path[-1]
        allowed = allowed_keys(parent, doc.data)
        hint = _elsewhere(key, parent, doc) or did_you_mean(key, allowed)
        return Problem(doc.pos(path, key=True), dotted(path), f"unknown key{hint}")
    if kind == "missing":
        full = path + rest
        if rest and isinstance(rest[-1], int):  # a fixed-length list (tuple) that is too short
            return Problem(doc.pos(path), dotted(path), f"too few items: item {rest[-1]} is missing")
        return Problem(doc.pos(path, key=True), dotted(full), "missing required key")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _tag_problem(doc, path, error)
    full = path + rest
    text = message[0].lower() + message[1:] if message else message
    if kind == "string_too_long":  # a name: it becomes file names
        text = f"{text} (got {len(str(error.get('input', '')))}): names become file and folder names"
    elif kind not in ("value_error", "assertion_error") and blamed is None and "input" in error and not isinstance(error["input"], (dict, list)):
        text = f"{text} (got {error['input']!r})"
    if rest == ("[key]",):  # a mapping key itself is invalid (e.g. a learner's name)
        return Problem(doc.pos(path, key=True), dotted(path), f"invalid name: {text}")
    return Problem(doc.pos(path), dotted(full), text)


def _elsewhere(key: Any, parent: KeyPath, doc: Document) -> str:
    """`` (did you mean data.batch_size?)`` when the key belongs elsewhere in the spec."""
    paths = [dotted(p) for p in paths_of_key(key, doc.data) if p[:-1] != parent]
    if not paths:
        return ""
    return f" here (did you mean {' or '.join(paths)}?)"


def _tag_problem(doc: Document, path: KeyPath, error: dict[str, Any]) -> Problem:
    from sgl import registry

    kinds = kinds_at(path, doc.data)
    if kinds:  # a section that names a component: the registry's table says how
        what, key = registry.KINDS[kinds[0]].noun, registry.KINDS[kinds[0]].key
        expected = [n for kind in kinds for n in registry.names(kind)]
    elif path[:1] == ("stages",):
        what, key, expected = "stage type", "type", ["train", "derive", "evaluate"]
    else:
        what, key, expected = "value", "name", []
    section = dotted(path)
    # What the union saw: the value after shorthands (`learner: darts` means `{kind: darts}`).
    node: Any = error.get("input")
    if not isinstance(node, dict):
        node = doc.data
        for p in path:
            node = node[p]
    if what == "stage type" and isinstance(node, dict) and str(stage_tag(node)).startswith("evaluate:"):
        # Stage members are tagged train / derive / evaluate:<protocol>: speak of the key users wrote.
        protocol = registry.KINDS["protocol"]
        what, key, expected = protocol.noun, protocol.key, registry.names("protocol")
    if isinstance(node, dict) and key in node:
        tag = node[key]
        known = ", ".join(sorted(expected))
        return Problem(
            doc.pos(path + (key,)),
            dotted(path + (key,)),
            f"unknown {what} {tag!r}{did_you_mean(tag, expected)}; known: {known}",
        )
    if not isinstance(node, dict):
        return Problem(doc.pos(path), section, f"expected a mapping with '{key}' (one of: {', '.join(sorted(expected))})")
    return Problem(doc.pos(path), section, f"missing '{key}' (one of: {', '.join(sorted(expected))})")
