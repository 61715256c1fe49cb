"""What the spec model holds at a key path of raw (not yet valid) data: the keys it accepts there
(the candidates of "did you mean" for an unknown key) and the component kinds a section names
("unknown optimizer"). Unions are followed as validation follows them (shorthands applied, stages
picked by their type, components by their name)."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator

from .models import ComponentKinds, spec_model
from .sections import stage_tag


def allowed_keys(path: tuple[Any, ...], data: Any) -> list[str]:
    """Keys the model accepts at ``path`` of the (raw) spec ``data``: the candidates for 'did you mean'."""
    model = _model_at(spec_model(), path, data)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def paths_of_key(key: Any, data: Any, limit: int = 3) -> list[tuple[Any, ...]]:
    """Where else in the spec the model accepts ``key`` (for "did you mean data.batch_size?"),
    following the (raw) ``data`` through unions, learners and stages; at most ``limit`` paths."""
    found: list[tuple[Any, ...]] = []

    def walk(annotation: Any, node: Any, path: tuple[Any, ...]) -> None:
        model, node = _choose(annotation, node)
        if len(found) >= limit or len(path) > 4:
            return
        if isinstance(model, type) and issubclass(model, BaseModel):
            for name, field in model.model_fields.items():
                if name == key:
                    found.append(path + (name,))
                typ = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
                # an absent section is followed as its default (``{}`` selects a default component)
                walk(typ, node.get(name, {}) if isinstance(node, dict) else {}, path + (name,))
            return
        origin, args = typing.get_origin(model), typing.get_args(model)
        if origin is dict and isinstance(node, dict):
            for name, value in node.items():
                walk(args[1], value, path + (name,))
        elif origin is list and isinstance(node, list):
            for index, value in enumerate(node):
                walk(args[0], value, path + (index,))

    walk(spec_model(), data, ())
    return found[:limit]


def kinds_at(path: tuple[Any, ...], data: Any) -> tuple[str, ...]:
    """The registry kinds of the component the spec names at ``path`` (empty: not a component)."""
    if not path:
        return ()
    annotation = _model_at(spec_model(), path, data, unwrap_last=False)
    return _kinds(annotation)


def _kinds(annotation: Any) -> tuple[str, ...]:
    """The ComponentKinds marker inside ``annotation`` (through Annotated and Optional)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        inner, *metadata = typing.get_args(annotation)
        marked = [m.kinds for m in metadata if isinstance(m, ComponentKinds)]
        return marked[0] if marked else _kinds(inner)
    if origin is Union or str(origin) == "types.UnionType":
        found = [_kinds(m) for m in typing.get_args(annotation) if m is not type(None)]
        return found[0] if len(found) == 1 else ()
    return ()


def _model_at(annotation: Any, path: tuple[Any, ...], data: Any, unwrap_last: bool = True) -> Any:
    """The model at ``path`` (or, without ``unwrap_last``, the annotation of the field there)."""
    if not path and not unwrap_last:
        return annotation
    annotation, data = _choose(annotation, data)
    if not path:
        return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    head, rest = path[0], path[1:]
    sub = data.get(head) if isinstance(data, dict) else data[head] if isinstance(data, list) and isinstance(head, int) and head < len(data) else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(head) if isinstance(head, str) else None
        if field is None:
            return None
        # pydantic keeps a field's Annotated metadata (our shorthand validators) apart from its type.
        typ = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        return _model_at(typ, rest, sub, unwrap_last)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict:
        return _model_at(args[1], rest, sub, unwrap_last)
    if origin is list:
        return _model_at(args[0], rest, sub, unwrap_last)
    return None


def _choose(annotation: Any, data: Any) -> tuple[Any, Any]:
    """Unwrap Annotated / Optional / discriminated unions down to the member ``data`` selects.

    Before-validators on the way are applied to ``data``, so shorthands select as validation does.
    """
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation, *metadata = typing.get_args(annotation)
            for item in metadata:
                if isinstance(item, BeforeValidator):
                    data = item.func(data)
            continue
        if origin is Union or str(origin) == "types.UnionType":
            members = [typing.get_args(m)[0] if typing.get_origin(m) is Annotated else m for m in typing.get_args(annotation)]
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            picked = _pick_member(models, data)
            if picked is None:
                others = [m for m in members if m is not type(None)]
                return (others[0] if len(others) == 1 else None), data
            return picked, data
        return annotation, data


def _pick_member(models: list[type[BaseModel]], data: Any) -> type[BaseModel] | None:
    if len(models) == 1:
        return models[0]
    if not isinstance(data, dict):
        return None
    if all("type" in m.model_fields for m in models):
        # Stages: pick as the discriminator does (a train stage may be *named* "derive" or "evaluate").
        tag = stage_tag(data)
        for model in models:
            if stage_tag(model.model_construct()) == tag:
                return model
    for key in ("kind", "name", "method"):
        for model in models:
            field = model.model_fields.get(key)
            if field is not None and key in data and field.default == data[key]:
                return model
    return None
