"""Reading a spec's YAML: safe (plain tags only), bounded (size, aliases, depth), with the position
of every key and value, and every problem reported at its place."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

from ..errors import KeyPath, Pos, Problem, SpecError, dotted
from .yaml_words import in_words

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
            raise SpecError([Problem(Pos(self.file, 1, 1), "", too_large())])
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
        worded = None if at_end else in_words(exc.problem or "", exc.context or "", exc.problem_mark, exc.context_mark, text)
        if worded is not None:
            where, message = worded
            return Problem(Pos(self.file, where.line + 1, where.column + 1), "", f"YAML syntax error: {message}")
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
                    merged = {**self._merged(value_node, path), **merged}
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

    def _merged(self, value_node: Node, path: KeyPath) -> dict[Any, Any]:
        """What a merge key (``<<:``) brings in: a mapping, or a list of mappings (earlier ones win).
        Its value is checked like every other: a tag on it, or on the list, is refused."""
        if value_node.tag not in _SAFE_TAGS:
            self._node(value_node, path)  # reports the tag
            return {}
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        merged: dict[Any, Any] = {}
        for source in sources:
            value = self._node(source, path)
            if isinstance(value, dict):
                merged = {**value, **merged}
            elif value is not None or source.tag in _SAFE_TAGS:
                self.problems.append(Problem(_mark(self.file, source), dotted(path),
                                             "'<<' (a merge key) takes a mapping or a list of mappings"))
        return merged

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


def too_large() -> str:
    return f"larger than {MAX_SPEC_BYTES:,} bytes: not a spec (a spec is a few kB)"
