"""The spec's JSON schema: valid JSON, complete, in sync with specs/sgl.schema.json, and true to the loader."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from conftest import BASE_SPEC, SPECS
from sgl import registry
from sgl.engine.specs.schema import SCHEMA_FILE, schema_text


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(schema_text())


def test_schema_is_json_with_a_draft_and_title(schema):
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "sgl spec"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert {"name", "stages"} <= set(schema["required"])
    assert schema_text().endswith("}\n")


def _consts(node: Any, key: str) -> set[str]:
    """Every ``const`` given to a property named ``key`` anywhere in the schema."""
    found: set[str] = set()
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            if name == key and isinstance(sub, dict) and "const" in sub:
                found.add(sub["const"])
        for value in node.values():
            found |= _consts(value, key)
    elif isinstance(node, list):
        for item in node:
            found |= _consts(item, key)
    return found


def test_schema_names_every_registered_component(schema):
    for kind, key in ((k, v.key) for k, v in registry.KINDS.items()):
        names = set(registry.names(kind))
        assert names, kind
        missing = names - _consts(schema, key)
        assert not missing, f"{kind}: {sorted(missing)} not in the schema"
    text = schema_text()
    for entry in registry.entries():
        # a protocol is an evaluate stage's model: the stage's own fields and the protocol's
        model = f"EvaluateStage_{entry.name}" if entry.kind == "protocol" else entry.config.__name__
        assert model in schema["$defs"], entry.name
        assert f'"{entry.name}"' in text


def test_checked_in_schema_is_up_to_date():
    shipped = (SPECS / SCHEMA_FILE).read_text(encoding="utf-8")
    assert shipped == schema_text(), (
        f"specs/{SCHEMA_FILE} is out of date with the spec models and the registry: "
        f"run `sgl schema -o specs/{SCHEMA_FILE}` and commit the result"
    )


def test_quickstart_points_editors_at_the_schema():
    first = (SPECS / "quickstart.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema={SCHEMA_FILE}"


# --------------------------------------------------------------------------- the schema accepts what the loader accepts

# A JSON Schema check for the keywords pydantic writes: enough to see what an editor would flag.


def _errors(node: dict[str, Any], value: Any, root: dict[str, Any], at: str = "$") -> list[str]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _errors(root["$defs"][name], value, root, at)
    if "anyOf" in node:
        branches = [_errors(sub, value, root, at) for sub in node["anyOf"]]
        return [] if any(not b for b in branches) else [f"{at}: no alternative fits ({min(branches, key=len)[0]})"]
    if "oneOf" in node:
        fits = sum(not _errors(sub, value, root, at) for sub in node["oneOf"])
        return [] if fits == 1 else [f"{at}: {fits} alternatives fit, oneOf needs exactly one"]
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    typ = node.get("type")
    if typ == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{at}: not an integer"]
    elif typ == "number":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return [f"{at}: not a number"]
    elif typ is not None and not isinstance(value, kinds[typ]):
        return [f"{at}: not {typ}"]
    if "const" in node and value != node["const"]:
        return [f"{at}: not {node['const']!r}"]
    if "enum" in node and value not in node["enum"]:
        return [f"{at}: {value!r} not in {node['enum']}"]
    errors = []
    for keyword, test in (("minimum", lambda v, b: v >= b), ("maximum", lambda v, b: v <= b),
                          ("exclusiveMinimum", lambda v, b: v > b), ("exclusiveMaximum", lambda v, b: v < b)):
        if keyword in node and not test(value, node[keyword]):
            errors.append(f"{at}: {keyword} {node[keyword]}")
    if "pattern" in node and not re.search(node["pattern"], value):
        errors.append(f"{at}: does not match {node['pattern']}")
    if isinstance(value, list):
        if len(value) < node.get("minItems", 0) or len(value) > node.get("maxItems", len(value)):
            errors.append(f"{at}: wrong number of items")
        prefix = node.get("prefixItems", [])
        for i, item in enumerate(value):
            sub = prefix[i] if i < len(prefix) else node.get("items")
            if sub:
                errors += _errors(sub, item, root, f"{at}[{i}]")
    if isinstance(value, dict):
        errors += [f"{at}: missing {key}" for key in node.get("required", []) if key not in value]
        for key, item in value.items():
            if key in node.get("properties", {}):
                errors += _errors(node["properties"][key], item, root, f"{at}.{key}")
                continue
            patterns = [sub for p, sub in node.get("patternProperties", {}).items() if re.search(p, key)]
            for sub in patterns:
                errors += _errors(sub, item, root, f"{at}.{key}")
            extra = node.get("additionalProperties", True)
            if not patterns and extra is False:
                errors.append(f"{at}: unknown key {key}")
            elif not patterns and isinstance(extra, dict):
                errors += _errors(extra, item, root, f"{at}.{key}")
    return errors


def _yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def test_shipped_specs_fit_the_schema(schema):
    for path in sorted(SPECS.glob("*.yaml")):
        data = _yaml(path.read_text(encoding="utf-8"))
        data.pop("extends", None)
        assert _errors(schema, data, schema) == [], path.name


@pytest.mark.parametrize(
    "extra",
    [
        "learners: {carl: darts, dora: {kind: torchvision}}",  # a learner named by its kind alone
        "optim: {weights: {lr: 0.1}, arch: {lr: 0.01}, schedule: constant}",  # default components, a name alone
        "pseudo_labels: hard\nhypergradient: darts_unrolled",
        "stages: [{epochs: 1, steps: [W]}, {name: derive}, {name: evaluate, genotype: DARTS_V2}, {type: evaluate, learner: alice}]",
    ],
)
def test_shorthands_the_loader_accepts_fit_the_schema(schema, extra):
    from sgl.engine.specs.load import read_yaml, validate

    data = {**BASE_SPEC, **_yaml(extra)}
    validate(read_yaml(json.dumps(data), "spec.yaml"))  # the loader accepts it
    assert _errors(schema, data, schema) == []


@pytest.mark.parametrize(
    "extra, complaint",
    [
        ("optim: {weights: {momentun: 0.9}}", "no alternative fits"),
        ("data: {dataset: cifar11}", "no alternative fits"),
        ("sed: 1", "unknown key sed"),
        ("seed: -1", "minimum 0"),
        ("stages: [{epochs: 0, steps: [W]}]", "no alternative fits"),
        ("learners: {alice: {kind: darts, channels: 0}}", "no alternative fits"),
        ("optim: {arch: {betas: [0.5]}}", "no alternative fits"),
    ],
)
def test_the_schema_check_is_not_vacuous(schema, extra, complaint):
    data = {**BASE_SPEC, **_yaml(extra)}
    errors = _errors(schema, data, schema)
    assert errors and complaint in errors[0], errors


def test_schema_path_is_a_path_in_the_repo():
    assert (SPECS / SCHEMA_FILE).is_file() and Path(SCHEMA_FILE).suffix == ".json"
