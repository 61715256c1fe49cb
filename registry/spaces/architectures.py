"""Reading architectures: from their JSON (the search space it names reads it), from a file, or by
a published name (``DARTS_V2``, ...). Nothing here imports torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..architecture import Architecture
from . import space_config
from .published import GENOTYPES


def load_architecture(data: Any) -> Architecture:
    """An architecture from its JSON; the search space it names reads it (DARTS' rule when the
    space is not registered here, e.g. a plugin's that is not loaded)."""
    if not isinstance(data, dict):
        raise ValueError(f"an architecture is a JSON object, got {type(data).__name__}")
    return space_config(str(data.get("space", "darts"))).load_architecture(data)


def read_architecture(path: str | Path) -> Architecture:
    """The architecture in a JSON file (``genotypes/<learner>.json`` of a run, an export)."""
    return load_architecture(json.loads(Path(path).read_text(encoding="utf-8")))


def resolve_architecture(name_or_path: str | Path, base_dir: str | Path | None = None) -> Architecture:
    """A published architecture by name (``DARTS_V2``, ...) first, else an architecture JSON file.

    A relative path is looked up under ``base_dir`` (e.g. the spec's folder) when given.
    """
    key = str(name_or_path)
    if key in GENOTYPES:
        return GENOTYPES[key]
    path = Path(key).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.is_file():
        try:
            return read_architecture(path)
        except (ValueError, UnicodeDecodeError) as err:  # json.JSONDecodeError is a ValueError
            raise ValueError(f"{path}: not a valid genotype file: {err}") from err
    raise ValueError(
        f"genotype {key!r} is neither a named genotype ({', '.join(GENOTYPES)}) nor an existing file"
        + (f" (looked for {path})" if path.as_posix() != key else "")
    )


def published_names() -> list[str]:
    """Names a spec may give for a published architecture."""
    return list(GENOTYPES)
