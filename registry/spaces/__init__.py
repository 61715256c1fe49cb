"""Searchable learners: DARTS-family search spaces (configs here; torch code in sibling modules).

A built search space is an ``nn.Module`` holding only architecture parameters (α, β); it makes
networks that take the architecture as an input, so the W and V networks of a learner share one
architecture and checkpoints hold it once. See ``base.SearchSpace`` for the interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from ..core import MAX_CHANNELS, MAX_LAYERS, ComponentConfig, LearnerConfig, register
from .genotype import CELL_TYPES, DEFAULT_PRIMITIVES

if TYPE_CHECKING:
    from ..task import Task
    from .base import SearchSpace
    from .genotype import Genotype

#: DARTS' candidate operations, in the order of the reference code (``genotypes.PRIMITIVES``).
DARTS_PRIMITIVES: tuple[str, ...] = DEFAULT_PRIMITIVES


class SearchSpaceConfig(LearnerConfig):
    """Common fields of DARTS-family search spaces."""

    channels: PositiveInt = Field(
        16, le=MAX_CHANNELS, description="Initial channels C of the supernet (stem outputs stem_multiplier·C; at most 4096)."
    )
    nodes: PositiveInt = Field(
        4, le=16, description="Intermediate nodes per cell; the cell outputs their concatenation (at most 16)."
    )
    stem_multiplier: PositiveInt = Field(3, le=16, description="The stem has stem_multiplier·C channels (at most 16).")
    stem: Literal["cifar", "imagenet"] = Field(
        "cifar",
        description="cifar: one 3x3 convolution at full resolution; imagenet: PC-DARTS' ImageNet search stem, "
        "three stride-2 convolutions (224 → 28 pixels).",
    )
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

    def activation_bytes(self, task: Task, batch: int) -> int:
        """About how much memory one training pass of a batch keeps for its backward (float32):
        an estimate, no model built. Per cell, each edge keeps ~``KEPT_PER_EDGE`` floats per channel
        and pixel over the 8 DARTS candidate ops (calibrated: 11 GB measured for 8 cells, C=16,
        32x32, batch 64), scaled by the ops it has; the deepest phase counts for growing spaces."""
        size = task.image_size if self.stem == "cifar" else max(1, task.image_size // 8)
        edges = self.nodes * (self.nodes + 3) // 2
        largest = 0.0
        for layers, ops in self._shapes():
            floats = 2 * self.stem_multiplier * self.channels * size * size
            per_edge = KEPT_PER_EDGE * ops / 8 * self._mixed_fraction()
            C, H = self.channels, size
            for i in range(layers):
                if i in (layers // 3, 2 * layers // 3):
                    C, H = 2 * C, (H + 1) // 2
                floats += edges * per_edge * C * H * H + (self.nodes + 2) * C * H * H
            largest = max(largest, floats)
        return int(largest * batch * 4)

    def plan_issues(self) -> list[tuple[tuple, str]]:
        """A supernet needs a normal and a reduction cell: with fewer than 3 layers the reductions
        (at layers//3 and 2·layers//3) take every cell, and the normal cell's α gets no gradient."""
        issues = []
        for where, layers in self._layer_counts():
            if layers - len({layers // 3, 2 * layers // 3}) < 1:
                reductions = sorted({layers // 3, 2 * layers // 3})
                cells = f"cells {reductions[0]} and {reductions[1]}" if len(reductions) > 1 else f"cell {reductions[0]}"
                counted = "1 layer leaves" if layers == 1 else f"{layers} layers leave"
                issues.append((where, f"{counted} no normal cell: reductions sit at layers//3 and 2·layers//3 "
                                      f"({cells}), so the normal cell's architecture "
                                      "would get no gradient and its genotype would be noise; use 3 layers or more"))
        return issues

    def _layer_counts(self) -> list[tuple[tuple, int]]:
        """(key path, cells) of each supernet the space builds."""
        return [(("layers",), getattr(self, "layers", 8))]

    def _shapes(self) -> list[tuple[int, int]]:
        """(cells, candidate ops per edge) of each phase's supernet."""
        return [(getattr(self, "layers", 8), len(self.primitives))]

    def _mixed_fraction(self) -> float:
        """The share of a cell's channels that go through the mixed ops."""
        return 1.0

    # What reports need to know about the space's genotypes, without building anything.
    @classmethod
    def cell_types(cls) -> tuple[str, ...]:
        return CELL_TYPES

    @classmethod
    def edge_labels(cls, edges: int) -> list[str]:
        """Names of a cell's edges in α's row order: node i reads the two cell inputs and nodes < i."""
        names, node = [], 0
        while len(names) < edges:
            for state in range(node + 2):
                source = ("$c_{k-2}$", "$c_{k-1}$")[state] if state < 2 else f"node {state - 2}"
                names.append(f"{source} → node {node}")
            node += 1
        return names[:edges]

    @classmethod
    def load_architecture(cls, data: dict) -> Genotype:
        """The architecture of this space from its JSON (``to_json``): a DARTS genotype."""
        from .genotype import Genotype

        return Genotype.from_json(data)


#: Floats kept for the backward per edge, channel and pixel over DARTS' 8 candidate ops (calibrated).
KEPT_PER_EDGE = 44.0



def space_config(name: str) -> type[SearchSpaceConfig]:
    """The config class of the search space a genotype names (its ``space`` field); the family's
    common base when that space is not registered here (a plugin not loaded)."""
    from ..core import RegistryError, get

    try:
        config = get("search_space", name).config
    except RegistryError:
        return SearchSpaceConfig
    return config if issubclass(config, SearchSpaceConfig) else SearchSpaceConfig


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

    def _mixed_fraction(self) -> float:
        return 1.0 / self.partial_channels + 0.05  # the bypassed channels keep little

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
    on_grow: Literal["reinit", "carry"] = Field(
        "reinit",
        description="α of the ops kept when a phase begins: reinit draws them afresh (init_scale·N(0,1)), as P-DARTS "
        "builds a new network per phase; carry keeps their values from the phase before.",
    )

    @model_validator(mode="after")
    def _shrinking(self) -> PDartsConfig:
        counts = [p.ops for p in self.phases]
        if counts[0] != len(self.primitives):
            raise ValueError(f"phases[0].ops ({counts[0]}) must equal the number of primitives ({len(self.primitives)})")
        if any(b > a for a, b in zip(counts, counts[1:])):
            raise ValueError(f"ops per phase must not grow: {counts}")
        return self

    def growing_phases(self) -> int:
        return len(self.phases)

    def _shapes(self) -> list[tuple[int, int]]:
        return [(phase.layers, phase.ops) for phase in self.phases]

    def _layer_counts(self) -> list[tuple[tuple, int]]:
        return [(("phases", i, "layers"), phase.layers) for i, phase in enumerate(self.phases)]

    def build(self, task: Task) -> SearchSpace:
        from .p_darts import PDartsSpace

        return PDartsSpace(self, task)
