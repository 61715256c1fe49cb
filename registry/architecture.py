"""Architectures: what a search finds, as everything outside the search spaces sees it.

A search space derives an architecture from its weights; the engine records it, reports it and
trains it from scratch without knowing its shape. Any class with the methods of ``Architecture``
is one; the DARTS genotype (``spaces.genotype.Genotype``) is the first. An architecture's JSON
names its search space (``space``), whose config reads it back (``load_architecture``).

This module imports no torch: reports read architectures without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Architecture(Protocol):
    """A discrete architecture: serialised, described, drawn, and built into its network."""

    @property
    def space(self) -> str:
        """The search space it belongs to (its config reads the JSON back)."""
        ...

    def to_json(self) -> dict[str, Any]:
        """Plain data; ``load_architecture`` inverts it."""
        ...

    def describe(self) -> str:
        """One line for tables and logs."""
        ...

    def operations(self) -> tuple[str, ...]:
        """The candidate operations it chose among (the columns of the search's weights)."""
        ...

    def draw(self, out_dir: str | Path, stem: str) -> list[Path]:
        """Diagrams of it under ``out_dir``, file names starting with ``stem``; returns the files."""
        ...

    def network_info(self, task: Any, **options: Any) -> dict[str, Any]:
        """Plain data that rebuilds its discrete network (``evaluation.build_network``), sized by
        the evaluation protocol's ``options``."""
        ...


def load_architecture(data: Any) -> Architecture:
    """An architecture from its JSON; the search space it names reads it (DARTS' rule when the
    space is not registered here, e.g. a plugin's that is not loaded)."""
    from .spaces import space_config

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
    from .spaces.published import GENOTYPES

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
    from .spaces.published import GENOTYPES

    return list(GENOTYPES)
