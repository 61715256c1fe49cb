"""The DARTS genotype, the architecture of DARTS-family search spaces, and the DARTS derivation rule.

This module imports no torch, so the engine can read and report genotypes without paying for it;
``derive_genotype`` accepts tensors all the same (anything with ``tolist``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

#: DARTS' candidate operations in the reference order (``genotypes.PRIMITIVES``); the search
#: spaces' configs take their default from here.
DEFAULT_PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

Gene = tuple[tuple[str, int], ...]

#: The cell types of DARTS-family spaces, in the order their architecture weights are kept.
CELL_TYPES: tuple[str, ...] = ("normal", "reduce")


def _gene(pairs: Iterable[Sequence[Any]]) -> Gene:
    out = []
    for pair in pairs:
        op, index = pair
        out.append((str(op), int(index)))
    return tuple(out)


def _check_cell(name: str, gene: Gene, concat: tuple[int, ...], primitives: tuple[str, ...]) -> None:
    if len(gene) % 2:
        raise ValueError(f"{name}: every node has two inputs, got {len(gene)} (op, input) pairs")
    nodes = len(gene) // 2
    for position, (op, index) in enumerate(gene):
        node = position // 2
        if op not in primitives:
            raise ValueError(f"{name}[{position}]: operation {op!r} is not among the primitives {list(primitives)}")
        # Node `node` may read the two cell inputs and the nodes before it: states 0 .. node+1.
        if not 0 <= index < node + 2:
            raise ValueError(f"{name}[{position}]: node {node} cannot read state {index} (valid: 0..{node + 1})")
    bad = [c for c in concat if not 0 <= c < nodes + 2]
    if bad:
        raise ValueError(f"{name}_concat: states {bad} do not exist (valid: 0..{nodes + 1})")
    if not concat:
        raise ValueError(f"{name}_concat must not be empty")


@dataclass(frozen=True)
class Genotype:
    """A cell pair: for each intermediate node, two ``(op, input_state)`` pairs, in node order.

    States 0 and 1 are the cell inputs c_{k-2}, c_{k-1}; state i+2 is node i. ``*_concat`` lists
    the states whose concatenation is the cell output. Validated on construction.
    """

    normal: Gene
    normal_concat: tuple[int, ...]
    reduce: Gene
    reduce_concat: tuple[int, ...]
    primitives: tuple[str, ...] = field(default=DEFAULT_PRIMITIVES)
    space: str = "darts"

    def __post_init__(self) -> None:
        # Accept lists / ranges (as the reference code writes them) but store hashable tuples.
        object.__setattr__(self, "normal", _gene(self.normal))
        object.__setattr__(self, "reduce", _gene(self.reduce))
        object.__setattr__(self, "normal_concat", tuple(int(c) for c in self.normal_concat))
        object.__setattr__(self, "reduce_concat", tuple(int(c) for c in self.reduce_concat))
        object.__setattr__(self, "primitives", tuple(str(p) for p in self.primitives))
        object.__setattr__(self, "space", str(self.space))
        _check_cell("normal", self.normal, self.normal_concat, self.primitives)
        _check_cell("reduce", self.reduce, self.reduce_concat, self.primitives)

    def cell(self, kind: str) -> tuple[Gene, tuple[int, ...]]:
        """``(gene, concat)`` of the ``'normal'`` or ``'reduce'`` cell."""
        if kind == "normal":
            return self.normal, self.normal_concat
        if kind == "reduce":
            return self.reduce, self.reduce_concat
        raise ValueError(f"cell must be 'normal' or 'reduce', got {kind!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "normal": [[op, i] for op, i in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, i] for op, i in self.reduce],
            "reduce_concat": list(self.reduce_concat),
            "primitives": list(self.primitives),
            "space": self.space,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Genotype:
        """Inverse of ``to_json``; ``primitives`` and ``space`` may be missing (DARTS defaults)."""
        required = ("normal", "normal_concat", "reduce", "reduce_concat")
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"genotype JSON lacks {missing}")
        unknown = sorted(set(data) - set(required) - {"primitives", "space"})
        if unknown:
            raise ValueError(f"genotype JSON has unknown keys {unknown}")
        return cls(
            normal=data["normal"],
            normal_concat=data["normal_concat"],
            reduce=data["reduce"],
            reduce_concat=data["reduce_concat"],
            primitives=data.get("primitives", DEFAULT_PRIMITIVES),
            space=data.get("space", "darts"),
        )

    def describe(self) -> str:
        """One line: each cell's nodes as ``op(input)`` pairs."""
        def cell(gene: Gene) -> str:
            pairs = [f"{op}({i})" for op, i in gene]
            return " ".join("+".join(pairs[n : n + 2]) for n in range(0, len(pairs), 2))

        return f"normal {cell(self.normal)} | reduce {cell(self.reduce)}"

    def operations(self) -> tuple[str, ...]:
        """The candidate operations its cells chose among (the columns of the search's weights)."""
        return self.primitives

    def draw(self, out_dir: str | Path, stem: str) -> list[Path]:
        """Cell diagrams ``<stem>_<cell>.{dot,png,svg}`` under ``out_dir``; returns the files written."""
        from .diagram import write_cell_diagrams

        return write_cell_diagrams(self, out_dir, stem)

    def network_info(self, task: Any, *, channels: int, layers: int, auxiliary: bool, drop_path: float,
                     variant: str) -> dict[str, Any]:
        """Plain data that rebuilds its discrete network (``registry.evaluation.build_network``): the
        DARTS network of ``layers`` cells stacked from this genotype's cells (loads with weights_only)."""
        return {
            "type": "genotype_network",
            "genotype": self.to_json(),
            "channels": int(channels),
            "layers": int(layers),
            "auxiliary": bool(auxiliary),
            "drop_path": float(drop_path),
            "variant": str(variant),
            "task": {"num_classes": task.num_classes, "in_channels": task.in_channels, "image_size": task.image_size},
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Genotype:
        return cls.from_json(json.loads(Path(path).read_text()))


# --- derivation -----------------------------------------------------------------------------


def _rows(weights: Any) -> list[list[float]]:
    """Nested lists of floats from a tensor, an array or nested sequences."""
    if hasattr(weights, "detach"):
        weights = weights.detach().cpu()
    if hasattr(weights, "tolist"):
        weights = weights.tolist()
    return [[float(v) for v in row] for row in weights]


def _flat(weights: Any) -> list[float]:
    if hasattr(weights, "detach"):
        weights = weights.detach().cpu()
    if hasattr(weights, "reshape"):
        weights = weights.reshape(-1)
    if hasattr(weights, "tolist"):
        weights = weights.tolist()
    return [float(v[0]) if isinstance(v, (list, tuple)) else float(v) for v in weights]


def num_edges(nodes: int) -> int:
    """Edges of a DARTS cell: node i has i + 2 inputs."""
    return nodes * (nodes + 3) // 2


def _derive_cell(
    weights: Any,
    primitives: Sequence[str] | Sequence[Sequence[str]],
    nodes: int,
    edge_weights: Any | None,
    name: str,
) -> Gene:
    rows = _rows(weights)
    expected = num_edges(nodes)
    if len(rows) != expected:
        raise ValueError(f"{name}: {nodes} nodes have {expected} edges, got weights for {len(rows)}")
    per_edge = per_edge_primitives(primitives, expected)
    for e, (row, ops) in enumerate(zip(rows, per_edge)):
        if len(row) != len(ops):
            raise ValueError(f"{name}: edge {e} has {len(ops)} operations but {len(row)} weights")
    betas = _flat(edge_weights) if edge_weights is not None else [1.0] * expected
    if len(betas) != expected:
        raise ValueError(f"{name}: expected {expected} edge weights, got {len(betas)}")

    gene: list[tuple[str, int]] = []
    start = 0
    for node in range(nodes):
        candidates = []  # (strength, input state, op)
        for state in range(node + 2):
            e = start + state
            scored = [(w * betas[e], op) for w, op in zip(rows[e], per_edge[e]) if op != "none"]
            if not scored:
                raise ValueError(f"{name}: edge {e} has no operation other than 'none'")
            # max() keeps the first of equal weights, as DARTS' loop with a strict '>' does.
            best_w, best_op = max(scored, key=lambda t: t[0])
            candidates.append((best_w, state, best_op))
        # Stable sort: equal strengths keep the lower input first, as DARTS' sorted() does.
        strongest = sorted(candidates, key=lambda t: -t[0])[:2]
        gene.extend((op, state) for _, state, op in strongest)
        start += node + 2
    return tuple(gene)


def per_edge_primitives(primitives: Sequence[str] | Sequence[Sequence[str]], edges: int) -> list[tuple[str, ...]]:
    """One tuple of op names per edge, from one list for all edges or a list per edge."""
    if primitives and isinstance(primitives[0], str):
        return [tuple(primitives)] * edges  # type: ignore[arg-type]
    lists = [tuple(p) for p in primitives]
    if len(lists) != edges:
        raise ValueError(f"per-edge primitives: expected {edges} lists, got {len(lists)}")
    return lists


def _union(lists: Iterable[Sequence[str]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for ops in lists:
        for op in ops:
            seen.setdefault(op, None)
    # Keep the reference order where the names are DARTS', so genotypes compare equal.
    ordered = [p for p in DEFAULT_PRIMITIVES if p in seen]
    return tuple(ordered + [p for p in seen if p not in DEFAULT_PRIMITIVES])


def derive_genotype(
    weights_normal: Any,
    weights_reduce: Any,
    primitives: Sequence[str] | Sequence[Sequence[str]],
    nodes: int,
    space: str,
    edge_weights_normal: Any | None = None,
    edge_weights_reduce: Any | None = None,
) -> Genotype:
    """The DARTS rule: per node, the two inputs whose strongest non-``none`` op weighs most, with that op.

    ``weights_*`` have shape ``[num_edges(nodes), num_ops]`` (already softmaxed), edges in DARTS
    order (node 0's inputs 0, 1; node 1's inputs 0, 1, 2; ...). ``primitives`` names the columns;
    it may instead be one list per edge (P-DARTS prunes different ops on different edges).
    ``edge_weights_*`` (shape ``[num_edges]``, already normalised per node) multiply the op weights
    before ranking, as PC-DARTS does with softmax(β). In each node's pair the stronger edge comes first.
    """
    normal = _derive_cell(weights_normal, primitives, nodes, edge_weights_normal, "normal")
    reduce = _derive_cell(weights_reduce, primitives, nodes, edge_weights_reduce, "reduce")
    return assemble_genotype(normal, reduce, primitives, nodes, space)


def assemble_genotype(
    normal: Gene, reduce: Gene, primitives: Sequence[str] | Sequence[Sequence[str]], nodes: int, space: str
) -> Genotype:
    """The genotype of two derived cells: every node's output concatenated, ``primitives`` (or
    their union over edges) in the reference order, so genotypes of any rule compare equal."""
    names = _union(per_edge_primitives(primitives, num_edges(nodes)))
    concat = tuple(range(2, 2 + nodes))
    return Genotype(normal, concat, reduce, concat, primitives=names, space=space)
