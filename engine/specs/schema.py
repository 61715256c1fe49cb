"""The spec's JSON Schema as shipped in specs/ (kept in sync with `sgl schema` by a test)."""

from __future__ import annotations

import json
from typing import Any

from .models import spec_model

SCHEMA_FILE = "sgl.schema.json"


def json_schema() -> dict[str, Any]:
    schema = _editor_friendly(spec_model().model_json_schema())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "sgl spec"
    return schema


def _editor_friendly(node: Any) -> Any:
    """Make the schema accept what the loader accepts.

    pydantic writes unions as ``oneOf``, but members may overlap for a JSON Schema validator (a
    stage ``{name: derive}`` fits DeriveStage and EvaluateStage; ``{lr: 0.1}`` fits SGD and Adam), and
    it cannot see the shorthands (``dataset: digits``, ``alice: darts``): so unions become ``anyOf``
    and a component union also admits the registered names as a plain string.
    """
    if isinstance(node, list):
        return [_editor_friendly(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _editor_friendly(value) for key, value in node.items()}
    if "oneOf" in out:
        members = out.pop("oneOf")
        mapping = (out.pop("discriminator", None) or {}).get("mapping")  # OpenAPI's, not JSON Schema's
        if mapping:
            members = [*members, {"type": "string", "enum": sorted(mapping)}]
        out["anyOf"] = members
    return out


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
