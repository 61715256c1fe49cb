"""Which edges of a cell run together in the fused supernet, and where their weights come from.

Edges are grouped in *waves* by the state they read: wave 0 holds every edge leaving the two cell
inputs, wave w ≥ 1 every edge leaving node w − 1. All inputs of a wave exist before any of its
edges runs, and a wave's edges share their stride (in a reduction cell exactly the edges from the
cell inputs stride 2), so each candidate op of a wave is one call over all of the wave's edges and
learners. Node w is complete after wave w. Compared with batching the edges into one node, this
halves the calls in reduction cells (the stride-2 and stride-1 edges into a node never batch).

A *unit* is one (source, destination node, learner) triple of a wave, i.e. one edge of one
learner. Units are ordered source-major, then destination, then learner, so that a wave's
per-unit tensor viewed as ``[B, S, D, K, ...]`` sums over sources into ``[B, D, K, ...]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from torch import nn

from .supernet import Cell, MixedOp
from .partial import PartialMixedOp

NONE = "none"


@dataclass(frozen=True)
class GroupPlan:
    """One candidate op over the units of a wave that have it."""

    name: str
    positions: tuple[int, ...]  # the units, as positions in the wave's unit list
    select: tuple[int, ...]  # per unit, its source row (source·K + learner) in the wave input
    weight_index: tuple[int, ...]  # per unit, index of its op weight in the flattened [K, E, O] arch
    columns: tuple[int, ...]  # per unit, the op's index in that edge's plain MixedOp
    full: bool  # every unit of the wave has this op


@dataclass(frozen=True)
class WavePlan:
    sources: tuple[int, ...]  # state indices (0, 1: cell inputs; 2 + i: node i)
    dests: tuple[int, ...]  # node indices
    stride: int
    units: tuple[tuple[int, int, int], ...]  # (source position, dest position, learner)
    edges: tuple[int, ...]  # per unit, its edge index in the plain cell
    groups: tuple[GroupPlan, ...]
    bypass_index: tuple[int, ...]  # per unit, index of its edge weight in the flattened [K, E] β


@dataclass(frozen=True)
class CellPlan:
    """The waves of one cell type, the same for every cell of that type (the arch is per type)."""

    learners: int
    nodes: int
    edges: int
    ops: int  # columns of each learner's op-weight matrix
    partial: Optional[int]  # PC-DARTS' K (channel fraction), None for whole-channel edges
    waves: tuple[WavePlan, ...] = field(default=())


def edge_mixed_op(edge: nn.Module) -> tuple[MixedOp, Optional[int]]:
    """The ``MixedOp`` of a plain edge and its partial-channel factor (None for a whole edge)."""
    if isinstance(edge, PartialMixedOp):
        return edge.mixed, edge.k
    if isinstance(edge, MixedOp):
        return edge, None
    raise TypeError(f"cannot fuse an edge of type {type(edge).__name__}; expected MixedOp or PartialMixedOp")


def edge_index(state: int, node: int) -> int:
    """Index of the edge from ``state`` into ``node`` in ``Cell.edges`` (node i has i + 2 inputs)."""
    return node * (node + 3) // 2 + state


def build_plan(cells: Sequence[Cell]) -> CellPlan:
    """The plan of a cell position, from that cell of every learner (index = learner)."""
    first = cells[0]
    K, nodes = len(cells), first.nodes
    for c in cells:
        if (c.nodes, c.reduction, len(c.edges)) != (first.nodes, first.reduction, len(first.edges)):
            raise ValueError("the networks to fuse differ in their cells (nodes or reductions)")
    mixed = [[edge_mixed_op(e) for e in c.edges] for c in cells]
    partials = {p for row in mixed for _, p in row}
    if len(partials) != 1:
        raise ValueError(f"the networks to fuse mix different partial-channel settings: {sorted(map(str, partials))}")
    widths = {len(m.primitives) for row in mixed for m, _ in row}
    if len(widths) != 1:
        raise ValueError(f"every edge of every network must offer as many ops to fuse them; got {sorted(widths)}")
    ops = widths.pop()
    n_edges = len(first.edges)
    waves = []
    for w in range(nodes):
        sources = (0, 1) if w == 0 else (w + 1,)
        dests = tuple(range(w, nodes))
        stride = 2 if first.reduction and w == 0 else 1
        units = tuple((s, d, k) for s in range(len(sources)) for d in range(len(dests)) for k in range(K))
        edges = tuple(edge_index(sources[s], dests[d]) for s, d, _ in units)
        names: list[str] = []
        for (_, _, k), e in zip(units, edges):
            for name in mixed[k][e][0].primitives:
                if name != NONE and name not in names:
                    names.append(name)
        groups = []
        for name in names:
            positions, select, weight_index, columns = [], [], [], []
            for u, ((s, _, k), e) in enumerate(zip(units, edges)):
                prims = mixed[k][e][0].primitives
                if name in prims:
                    col = prims.index(name)
                    positions.append(u)
                    select.append(s * K + k)
                    weight_index.append((k * n_edges + e) * ops + col)
                    columns.append(col)
            groups.append(
                GroupPlan(name, tuple(positions), tuple(select), tuple(weight_index), tuple(columns), len(positions) == len(units))
            )
        bypass = tuple(k * n_edges + e for (_, _, k), e in zip(units, edges))
        waves.append(WavePlan(sources, dests, stride, units, edges, tuple(groups), bypass))
    return CellPlan(K, nodes, n_edges, ops, partials.pop(), tuple(waves))
