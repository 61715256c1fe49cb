"""`sgl components`: the catalogue with each component's fields, from its config model — types as a
spec writer reads them (``float or null``, ``one of: cifar, imagenet, auto``) and defaults as YAML."""

from __future__ import annotations

import io
import types
import typing
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sgl import registry

_NAMES = {bool: "bool", int: "int", float: "float", str: "text", type(None): "null", dict: "mapping", Any: "any"}


def type_name(annotation: Any) -> str:
    """A field's type as YAML sees it: ``float or null``, ``one of: a, b``, ``list of int``, ``path``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return args[0] if len(args) == 1 else "one of: " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(type_name(a) for a in args))
    if origin in (list, tuple, set, frozenset):
        inner = [a for a in args if a is not Ellipsis]
        return "list" + (f" of {type_name(inner[0])}" if len(set(inner)) == 1 else "")
    if origin is dict:
        return "mapping" + (f" of {type_name(args[1])}" if len(args) == 2 else "")
    if isinstance(annotation, type):
        if issubclass(annotation, PurePath):
            return "path"
        if issubclass(annotation, BaseModel):
            return _component_noun(annotation)
        return _NAMES.get(annotation, annotation.__name__)
    return _NAMES.get(annotation, str(annotation).replace("typing.", ""))


def _component_noun(model: type[BaseModel]) -> str:
    """``optimizer`` for OptimizerConfig: the registry's kind whose components it is the base of."""
    for kind, info in registry.KINDS.items():
        if any(issubclass(entry.config, model) for entry in registry.entries(kind)):
            return f"{info.noun} (mapping)"
    return "mapping"


def yaml_text(value: Any) -> str:
    """A default as a spec would write it: ``data/cifar``, ``null``, ``{name: sgd, lr: 0.025}``."""
    from ruamel.yaml import YAML

    from pydantic_core import to_jsonable_python

    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json", serialize_as_any=True)
        keys = [k for k in ("name", "kind", "method", "protocol") if k in data][:1]  # what it is, first
        value = {**{k: data[k] for k in keys}, **data}
    value = to_jsonable_python(value, serialize_as_any=True)  # paths, tuples, nested configs
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = True
    yaml.width = 4096
    yaml.sort_base_mapping_type_on_output = False
    buffer = io.StringIO()
    yaml.dump(value, buffer)
    text = buffer.getvalue().strip()
    return text.removesuffix("...").strip()  # a lone scalar ends its document


def print_components(console: Console, kind: str | None = None) -> None:
    for entry in registry.entries(kind):
        info = registry.KINDS[entry.kind]
        console.print(f"[bold cyan]{entry.name}[/bold cyan]  [dim]{info.noun} — in a spec: {info.key}: {entry.name}[/dim]")
        if entry.doc:
            console.print(f"  {escape(entry.doc)}")
        table = Table(show_header=True, box=None, padding=(0, 2, 0, 4))
        for column in ("field", "type", "default", "description"):
            table.add_column(column)
        for name, field in entry.config.model_fields.items():
            if name == info.key:
                continue
            default = "required" if field.is_required() else yaml_text(field.get_default(call_default_factory=True))
            table.add_row(name, escape(type_name(field.annotation)), escape(default), escape(field.description or ""))
        console.print(table)
        console.print()
