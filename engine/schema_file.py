"""The spec's JSON Schema as shipped in specs/ (kept in sync with `sgl schema` by a test)."""

from __future__ import annotations

import json

from .spec import json_schema

SCHEMA_FILE = "sgl.schema.json"


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
