"""Architectures: what a search finds, as everything outside the search spaces sees it.

A search space derives an architecture from its weights; the engine records it, reports it and
trains it from scratch without knowing its shape. Any class with the methods of ``Architecture``
is one; the DARTS genotype (``spaces.genotype.Genotype``) is the first. An architecture's JSON
names its search space (``space``), whose config reads it back (``spaces.architectures``).

This module imports no torch: reports read architectures without it.
"""

from __future__ import annotations

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
