"""Reading specs: safe YAML with every value's position, `extends:`, dotted overrides, validation.

Every problem becomes a ``Problem`` (file:line:col, key path, message) and all of them are raised
together as one ``SpecError``, so a user fixes a spec in one pass.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from . import spec as spec_models
from .errors import KeyPath, Pos, Problem, SpecError, did_you_mean, dotted

__all__ = ["Document", "KeyPath", "Pos", "Problem", "SpecError", "apply_override", "dotted", "load_document",
           "load_spec", "read_yaml", "validate"]

#: The only tags a spec may carry: YAML's core schema. Python tags are refused, not constructed.
_SAFE_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
}

#: Limits on what a spec may be. Shipped specs are a few kB, some 200 values, 6 levels deep; these
#: refuse alias bombs ("billion laughs"), runaway files and nesting that would exhaust the stack.
MAX_SPEC_BYTES = 1_000_000
MAX_NODES = 100_000  # values of the document with every alias expanded
MAX_DEPTH = 50

#: What YAML may not contain (its printable set, YAML 1.2 §5.1), as ruamel refuses it.
_NOT_PRINTABLE = re.compile(r"[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: Line breaks as ruamel counts them, so our positions match its marks.
_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


@dataclass
class Document:
    """A spec as plain data, with where each key and value came from."""

    data: dict[str, Any]
    path: Path
    keys: dict[KeyPath, Pos] = field(default_factory=dict)    # position of each mapping key
    values: dict[KeyPath, Pos] = field(default_factory=dict)  # position of each value
    sources: list[Path] = field(default_factory=list)         # the spec and the files it extends
    problems: list[Problem] = field(default_factory=list)     # found while reading; reported with validation's

    def pos(self, path: KeyPath, *, key: bool = False) -> Pos | None:
        """The position of the deepest prefix of ``path`` that the document has."""
        table = self.keys if key else self.values
        for n in range(len(path), -1, -1):
            prefix = tuple(path[:n])
            hit = table.get(prefix) or self.values.get(prefix)
            if hit is not None:
                return hit
        return Pos(str(self.path), 1, 1)


# --------------------------------------------------------------------------- YAML with positions


def _mark(file: str, node: Node) -> Pos:
    return Pos(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``, counted as ruamel counts its marks."""
    line, start = 1, 0
    for match in _BREAK.finditer(text, 0, index):
        line, start = line + 1, match.end()
    return line, index - start - text.count("\ufeff", start, index) + 1


def _describe_character(ch: str) -> str:
    code = ord(ch)
    if code < 0x20 or 0x7F <= code < 0xA0:
        what = f"control character U+{code:04X}"
        if code in _CONTROL_NAMES:
            what += f" ({_CONTROL_NAMES[code]})"
    elif 0xD800 <= code <= 0xDFFF:
        what = f"lone surrogate U+{code:04X} (bytes that were not UTF-8)"
    else:
        what = f"non-character U+{code:04X}"
    escape = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return f"{what} is not allowed in YAML (inside double quotes, write it as {escape})"


_CONTROL_NAMES = {0x00: "NUL", 0x07: "BEL", 0x08: "backspace", 0x0B: "vertical tab", 0x0C: "form feed",
                  0x1B: "ESC", 0x7F: "DEL"}


class _Reader:
    def __init__(self, file: str):
        self.file = file
        self.yaml = YAML(typ="safe", pure=True)
        self.keys: dict[KeyPath, Pos] = {}
        self.values: dict[KeyPath, Pos] = {}
        self.problems: list[Problem] = []
        self._open: list[list[Any]] = []  # collections the parser has opened and not closed, outermost first

    def read(self, text: str) -> Any:
        if len(text) > MAX_SPEC_BYTES:
            raise SpecError([Problem(Pos(self.file, 1, 1), "", _too_large())])
        self._check_characters(text)
        try:
            self._check_size(text)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. a reused anchor: legal YAML, the later one counts
                node = self.yaml.compose(text)
        except MarkedYAMLError as exc:
            raise SpecError([self._syntax_error(exc, text)]) from None
        except YAMLError as exc:  # unmarked: nothing more precise to point at
            raise SpecError([Problem(Pos(self.file, 1, 1), "", f"YAML error: {exc}")]) from None
        if node is None:
            return {}
        return self._node(node, ())

    def _check_characters(self, text: str) -> None:
        problems = []
        for match in _NOT_PRINTABLE.finditer(text):
            line, col = _line_col(text, match.start())
            if len(problems) == 10:
                problems.append(Problem(Pos(self.file, line, col), "", "more such characters follow (not shown)"))
                break
            problems.append(Problem(Pos(self.file, line, col), "", _describe_character(match.group())))
        if problems:
            raise SpecError(problems)

    def _check_size(self, text: str) -> None:
        """Walk the parser's events, counting the values the document would have with every alias
        expanded, and its depth; refuse it before composing anything too big."""
        expanded: dict[str, tuple[int, int]] = {}  # anchor -> (values, height) of its node
        open_ = self._open  # per open collection: [anchor, values, height, start event]
        total = 0
        events = self.yaml.parse(text)
        try:
            for event in events:
                if isinstance(event, CollectionStartEvent):
                    size, height = 1, 1
                elif isinstance(event, ScalarEvent):
                    size, height = 1, 1
                elif isinstance(event, AliasEvent):
                    size, height = expanded.get(event.anchor, (1, 1))  # undefined: compose reports it
                elif isinstance(event, CollectionEndEvent):
                    anchor, children, child_height, _ = open_.pop()
                    size, height = children + 1, child_height + 1
                    if anchor is not None:
                        expanded[anchor] = (size, height)
                    if open_:
                        open_[-1][1] += size
                        open_[-1][2] = max(open_[-1][2], height)
                    continue
                else:
                    continue
                total += 1 if isinstance(event, CollectionStartEvent) else size
                if total > MAX_NODES:
                    raise SpecError([Problem(self._pos(event), "", (
                        f"the document has more than {MAX_NODES:,} values, counting every use of an alias "
                        "in full (an alias bomb?); a spec needs far fewer"))])
                if len(open_) + height > MAX_DEPTH:
                    raise SpecError([Problem(self._pos(event), "", f"nested more than {MAX_DEPTH} levels deep")])
                if isinstance(event, CollectionStartEvent):
                    open_.append([event.anchor, 0, 0, event])
                    continue
                if isinstance(event, NodeEvent) and not isinstance(event, AliasEvent) and event.anchor is not None:
                    expanded[event.anchor] = (1, 1)
                if open_:
                    open_[-1][1] += size
                    open_[-1][2] = max(open_[-1][2], height)
        finally:
            events.close()

    def _pos(self, event: Any) -> Pos:
        mark = event.start_mark
        return Pos(self.file, mark.line + 1, mark.column + 1)

    def _syntax_error(self, exc: MarkedYAMLError, text: str) -> Problem:
        mark = exc.problem_mark or exc.context_mark
        if mark is None:
            return Problem(Pos(self.file, 1, 1), "", f"YAML syntax error: {exc.problem or exc.context}")
        at_end = mark.index >= len(text.rstrip())
        if at_end:
            # The parser gave up at the end of the file (past its last line): point at the end of the text.
            pos = Pos(self.file, *_line_col(text, len(text.rstrip())))
        else:
            pos = Pos(self.file, mark.line + 1, mark.column + 1)
        message = (exc.problem or exc.context or "").replace("'<stream end>'", "the end of the file")
        start = exc.context_mark
        flows = [frame[3] for frame in self._open if frame[3].flow_style]
        if at_end and flows:
            # An unclosed bracket: the parser notices at the end, the mistake is where it opens.
            bracket = "[" if isinstance(flows[-1], SequenceStartEvent) else "{"
            opened = flows[-1].start_mark
            message += f" (the '{bracket}' at line {opened.line + 1}, column {opened.column + 1} is never closed)"
        elif exc.problem and exc.context and start is not None and (start.line, start.column) != (mark.line, mark.column):
            message += f" ({exc.context} that starts at line {start.line + 1}, column {start.column + 1})"
        return Problem(pos, "", f"YAML syntax error: {message}")

    def _node(self, node: Node, path: KeyPath) -> Any:
        self.values[path] = _mark(self.file, node)
        if node.tag not in _SAFE_TAGS:
            self.problems.append(
                Problem(_mark(self.file, node), dotted(path), f"tag {node.tag!r} is not allowed in a spec (plain YAML only)")
            )
            return None
        if isinstance(node, MappingNode):
            out: dict[Any, Any] = {}
            merged: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                    for source in sources:
                        value = self._node(source, path)
                        if isinstance(value, dict):
                            merged = {**value, **merged}
                    continue
                refused = len(self.problems)
                key = self._scalar(key_node, path)
                if len(self.problems) > refused:  # a refused key: its entry is left out
                    continue
                if key in out:
                    first = self.keys[path + (key,)]
                    self.problems.append(
                        Problem(_mark(self.file, key_node), dotted(path + (key,)), f"duplicate key (first at line {first.line})")
                    )
                    continue
                self.keys[path + (key,)] = _mark(self.file, key_node)
                out[key] = self._node(value_node, path + (key,))
            return {**merged, **out}
        if isinstance(node, SequenceNode):
            return [self._node(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: Node, path: KeyPath = ()) -> Any:
        if node.tag not in _SAFE_TAGS:  # a key can carry a tag too
            self.problems.append(
                Problem(_mark(self.file, node), dotted(path), f"tag {node.tag!r} is not allowed in a spec (plain YAML only)")
            )
            return None
        if not isinstance(node, ScalarNode):
            self.problems.append(Problem(_mark(self.file, node), dotted(path), "mapping keys must be plain scalars"))
            return None
        try:
            return self.yaml.constructor.construct_object(node, deep=True)
        except Exception as exc:  # noqa: BLE001  a constructor refusing the user's text, e.g. `!!int abc`
            self.problems.append(Problem(_mark(self.file, node), dotted(path), f"bad {node.tag.rsplit(':', 1)[-1]} value: {exc}"))
            return None


def read_yaml(text: str, file: str) -> Document:
    reader = _Reader(file)
    data = reader.read(text)
    if not isinstance(data, dict):
        raise SpecError([*reader.problems, Problem(Pos(file, 1, 1), "", "a spec must be a mapping of keys to values")])
    # Duplicate keys and refused tags are kept to be reported together with everything else.
    return Document(data, Path(file), reader.keys, reader.values, [Path(file)], list(reader.problems))


# --------------------------------------------------------------------------- extends and overrides


def load_document(path: str | Path, overrides: Iterable[str] = ()) -> Document:
    path = Path(path)
    doc = _load_with_bases(path, ())
    for number, text in enumerate(overrides, 1):
        apply_override(doc, text, number)
    return doc


def _load_with_bases(path: Path, chain: tuple[Path, ...]) -> Document:
    resolved = path.resolve()
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
        if not base_path.is_file():
            what = "a directory, not a spec file" if base_path.is_dir() else "no such file"
            raise SpecError([Problem(where, "extends", f"{what}: {str(base_path)!r}")])
        if base_path.resolve() in (*chain, resolved):
            cycle = " -> ".join(str(p) for p in (*chain, resolved, base_path.resolve()))
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
        reason = "it is a directory" if path.is_dir() else exc.strerror or str(exc)
        raise SpecError([Problem(None, "", f"cannot read spec {str(path)!r}: {reason}")]) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError([Problem(Pos(str(path), 1, 1), "", _too_large())])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        col = len(data[start : exc.start].decode("utf-8", errors="replace")) + 1
        raise SpecError([Problem(Pos(str(path), line, col), "", (
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded ({exc.reason}); save the file as UTF-8"
        ))]) from None


def _too_large() -> str:
    return f"larger than {MAX_SPEC_BYTES:,} bytes: not a spec (a spec is a few kB)"


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
        raise SpecError(_with_read_problems(doc, _problems(doc, exc))) from None
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


def _problems(doc: Document, exc: ValidationError) -> list[Problem]:
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
        return {spec_models._stage_tag(node)}
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
        allowed = spec_models.allowed_keys(parent, doc.data)
        return Problem(doc.pos(path, key=True), dotted(path), f"unknown key{did_you_mean(key, allowed)}")
    if kind == "missing":
        full = path + rest
        if rest and isinstance(rest[-1], int):  # a fixed-length list (tuple) that is too short
            return Problem(doc.pos(path), dotted(path), f"too few items: item {rest[-1]} is missing")
        return Problem(doc.pos(path, key=True), dotted(full), "missing required key")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _tag_problem(doc, path, error)
    full = path + rest
    text = message[0].lower() + message[1:] if message else message
    if kind not in ("value_error", "assertion_error") and blamed is None and "input" in error and not isinstance(error["input"], (dict, list)):
        text = f"{text} (got {error['input']!r})"
    if rest == ("[key]",):  # a mapping key itself is invalid (e.g. a learner's name)
        return Problem(doc.pos(path, key=True), dotted(path), f"invalid name: {text}")
    return Problem(doc.pos(path), dotted(full), text)


def _tag_problem(doc: Document, path: KeyPath, error: dict[str, Any]) -> Problem:
    ctx = error.get("ctx") or {}
    what = _section_kind(path)
    key = str(ctx.get("discriminator", "")).strip("'")
    if not key.isidentifier():  # a callable discriminator, e.g. '_stage_tag()': name the key users write
        key = {"stage type": "type", "learner kind": "kind", "hypergradient method": "method"}.get(what, "name")
    expected = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()]
    if not expected:
        expected = _known_for(path)
    section = dotted(path)
    # What the union saw: the value after shorthands (`learner: darts` means `{kind: darts}`).
    node: Any = error.get("input")
    if not isinstance(node, dict):
        node = doc.data
        for p in path:
            node = node[p]
    if what == "stage type":
        # Stage members are tagged train / derive / evaluate:<protocol>: speak of the key users wrote.
        from sgl import registry

        if isinstance(node, dict) and str(spec_models._stage_tag(node)).startswith("evaluate:"):
            what, key, expected = "evaluation protocol", "protocol", registry.names("protocol")
        else:
            expected = ["train", "derive", "evaluate"]
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


def _known_for(path: KeyPath) -> list[str]:
    from sgl import registry

    kinds = {"learner kind": ("search_space", "model"), "dataset": ("dataset",), "optimizer": ("optimizer",),
             "scheduler": ("scheduler",), "pseudo-labeler": ("pseudo_labeler",),
             "hypergradient method": ("hypergradient",), "stage type": ()}
    if _section_kind(path) == "stage type":
        return ["train", "derive", "evaluate"]
    return [n for kind in kinds.get(_section_kind(path), ()) for n in registry.names(kind)]


def _section_kind(path: KeyPath) -> str:
    if path[:1] == ("learners",):
        return "learner kind"
    names = {"dataset": "dataset", "weights": "optimizer", "arch": "optimizer", "optimizer": "optimizer",
             "schedule": "scheduler", "pseudo_labels": "pseudo-labeler", "hypergradient": "hypergradient method"}
    for part in reversed(path):
        if part in names:
            return names[part]
    return "stage type" if path[:1] == ("stages",) else "value"
