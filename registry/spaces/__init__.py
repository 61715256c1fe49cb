"""Searchable learners: DARTS-family search spaces (configs here; torch code in sibling modules).

A built search space is an ``nn.Module`` holding only architecture parameters (α, β); it makes
networks that take the architecture as an input, so the W and V networks of a learner share one
architecture and checkpoints hold it once. See ``base.SearchSpace`` for the interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from ..core import MAX_CHANNELS, MAX_LAYERS, ComponentConfig, register
from .genotype import DEFAULT_PRIMITIVES

if TYPE_CHECKING:
    from ..task import Task
    from .base import SearchSpace

#: DARTS' candidate operations, in the order of the reference code (``genotypes.PRIMITIVES``).
DARTS_PRIMITIVES: tuple[str, ...] = DEFAULT_PRIMITIVES


class SearchSpaceConfig(ComponentConfig):
    """Common fields of DARTS-family search spaces."""

    channels: PositiveInt = Field(
        16, le=MAX_CHANNELS, description="Initial channels C of the supernet (stem outputs stem_multiplier·C; at most 4096)."
    )
    nodes: PositiveInt = Field(
        4, le=16, description="Intermediate nodes per cell; the cell outputs their concatenation (at most 16)."
    )
    stem_multiplier: PositiveInt = Field(3, le=16, description="The stem has stem_multiplier·C channels (at most 16).")
    primitives: list[str] = Field(
        default_factory=lambda: list(DARTS_PRIMITIVES),
        description="Candidate operations on every edge, names from the OPS table.",
        min_length=1,
    )
    init_scale: float = Field(1e-3, gt=0, description="Architecture weights start as init_scale·N(0, 1).")

    @field_validator("primitives")
    @classmethod
    def _known_ops(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in DARTS_PRIMITIVES]
        if unknown:
            raise ValueError(f"unknown operation(s) {unknown}; known: {', '.join(DARTS_PRIMITIVES)}")
        if len(set(value)) != len(value):
            raise ValueError("operations must not repeat")
        return value

    #: Learners of this kind own an architecture and get A-steps.
    searchable: ClassVar[bool] = True

    def build(self, task: Task) -> SearchSpace:
        raise NotImplementedError


@register("search_space", "darts")
class DartsConfig(SearchSpaceConfig):
    """DARTS (Liu et al., 2019): cells of mixed operations weighted by softmax(α)."""

    kind: Literal["darts"] = "darts"
    layers: PositiveInt = Field(8, le=MAX_LAYERS, description="Cells; reductions at layers//3 and 2·layers//3 (at most 100).")

    def build(self, task: Task) -> SearchSpace:
        from .darts import DartsSpace

        return DartsSpace(self, task)


@register("search_space", "pc_darts")
class PCDartsConfig(SearchSpaceConfig):
    """PC-DARTS (Xu et al., 2020): partial channel connections and edge normalization β."""

    kind: Literal["pc_darts"] = "pc_darts"
    layers: PositiveInt = Field(8, le=MAX_LAYERS, description="Cells; reductions at layers//3 and 2·layers//3 (at most 100).")
    partial_channels: PositiveInt = Field(
        4, le=MAX_CHANNELS, description="K: 1/K of the channels go through the mixed op (at most 4096, and dividing channels)."
    )
    edge_normalization: bool = Field(True, description="Weight each node's incoming edges by softmax(β).")

    @model_validator(mode="after")
    def _divisible(self) -> PCDartsConfig:
        if self.channels % self.partial_channels:
            raise ValueError(f"channels ({self.channels}) must be divisible by partial_channels ({self.partial_channels})")
        return self

    def build(self, task: Task) -> SearchSpace:
        from .pc_darts import PCDartsSpace

        return PCDartsSpace(self, task)


class PDartsPhase(ComponentConfig):
    """One growing phase of P-DARTS."""

    layers: PositiveInt = Field(le=MAX_LAYERS, description="Cells of the supernet in this phase (at most 100).")
    ops: PositiveInt = Field(
        le=len(DARTS_PRIMITIVES), description=f"Candidate operations per edge in this phase (at most {len(DARTS_PRIMITIVES)})."
    )
    skip_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout after skip-connect in this phase.")


def _pdarts_phases() -> list[PDartsPhase]:
    return [
        PDartsPhase(layers=5, ops=8, skip_dropout=0.1),
        PDartsPhase(layers=11, ops=5, skip_dropout=0.4),
        PDartsPhase(layers=17, ops=3, skip_dropout=0.7),
    ]


@register("search_space", "p_darts")
class PDartsConfig(SearchSpaceConfig):
    """P-DARTS (Chen et al., 2019): the supernet deepens while the candidate operations are pruned.

    Phase i is used by the i-th stage of the spec that contains architecture steps.
    """

    kind: Literal["p_darts"] = "p_darts"
    phases: list[PDartsPhase] = Field(
        default_factory=_pdarts_phases, min_length=1, description="Growing phases, in order."
    )
    max_skip_connect: int = Field(2, ge=0, description="At most this many skip-connects in the final normal cell.")
    skip_dropout_decay: float = Field(
        0.2, ge=0, description="Once A-steps run, skip dropout decays as rate·exp(−decay·epochs since); before, linearly."
    )

    @model_validator(mode="after")
    def _shrinking(self) -> PDartsConfig:
        counts = [p.ops for p in self.phases]
        if counts[0] != len(self.primitives):
            raise ValueError(f"phases[0].ops ({counts[0]}) must equal the number of primitives ({len(self.primitives)})")
        if any(b > a for a, b in zip(counts, counts[1:])):
            raise ValueError(f"ops per phase must not grow: {counts}")
        return self

    def build(self, task: Task) -> SearchSpace:
        from .p_darts import PDartsSpace

        return PDartsSpace(self, task)
