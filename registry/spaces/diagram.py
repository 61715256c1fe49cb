"""Cell diagrams of a genotype: DOT text always, PNG/SVG with Graphviz or, without it, matplotlib.

The picture follows DARTS' ``visualize.py``: left to right, inputs c_{k-2} and c_{k-1}, the
intermediate nodes 0..n-1, the output c_{k}, each edge labelled with its operation. Both renderers
set the subscripts as subscripts (Graphviz's HTML labels, matplotlib's mathtext); matplotlib puts
each operation's label beside its edge, where it covers the fewest boxes, labels and other edges.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Cells(Protocol):
    """What a diagram draws: cells of nodes, each reading two (op, input state) pairs (a genotype)."""

    def cell(self, kind: str) -> tuple[tuple[tuple[str, int], ...], tuple[int, ...]]: ...


INPUT_NAMES = ("c_{k-2}", "c_{k-1}")
OUTPUT_NAME = "c_{k}"
_FILL = {"input": "darkseagreen2", "node": "lightblue", "output": "palegoldenrod"}
# The same colours as matplotlib understands them (X11 names differ from CSS ones).
_MPL_FILL = {"input": "#b4eeb4", "node": "#add8e6", "output": "#eee8aa"}


def _state_name(index: int) -> str:
    return INPUT_NAMES[index] if index < 2 else str(index - 2)


def cell_graph(genotype: Cells, cell: str) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """``(nodes, edges)`` of a cell: nodes as (name, role), edges as (source, target, label)."""
    gene, concat = genotype.cell(cell)
    steps = len(gene) // 2
    nodes = [(name, "input") for name in INPUT_NAMES]
    nodes += [(str(i), "node") for i in range(steps)]
    nodes.append((OUTPUT_NAME, "output"))
    edges = [(_state_name(index), str(position // 2), op) for position, (op, index) in enumerate(gene)]
    edges += [(_state_name(index), OUTPUT_NAME, "") for index in concat]
    return nodes, edges


def _subscripted(name: str) -> tuple[str, str] | None:
    """``("c", "k-2")`` for ``c_{k-2}``; None for a name without a subscript."""
    base, sep, rest = name.partition("_{")
    return (base, rest[:-1]) if sep and rest.endswith("}") else None


def _dot_label(name: str) -> str:
    parts = _subscripted(name)
    return f"<{parts[0]}<sub>{parts[1]}</sub>>" if parts else _quote(name)


def _math_label(name: str) -> str:
    parts = _subscripted(name)
    return f"${parts[0]}_{{{parts[1]}}}$" if parts else name


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cell_dot(genotype: Cells, cell: str) -> str:
    """The DOT source of the ``'normal'`` or ``'reduce'`` cell."""
    nodes, edges = cell_graph(genotype, cell)
    lines = [
        f"digraph {_quote(cell)} {{",
        "  rankdir=LR;",
        '  node [style=filled, shape=rect, align=center, fontsize=20, height=0.5, width=0.5, penwidth=2, fontname="times"];',
        '  edge [fontsize=20, fontname="times"];',
    ]
    lines += [f"  {_quote(name)} [label={_dot_label(name)}, fillcolor={_FILL[role]}];" for name, role in nodes]
    for source, target, label in edges:
        attrs = f"label={_quote(label)}, " if label else ""
        lines.append(f"  {_quote(source)} -> {_quote(target)} [{attrs}fillcolor=gray];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- the matplotlib renderer ----------------------------------------------------------------

_DX, _DY = 3.6, 1.3  # layer and row spacing, in data units (labels sit between layers)
_BOX_W, _BOX_H = 1.1, 0.55


def _layers(nodes: list[tuple[str, str]], edges: list[tuple[str, str, str]]) -> dict[str, int]:
    """Longest-path layering: every edge points to a later layer (left to right)."""
    layer = {name: 0 for name, role in nodes if role == "input"}
    sources: dict[str, list[str]] = {}
    for source, target, _ in edges:
        sources.setdefault(target, []).append(source)
    for name, role in nodes:  # nodes are listed in topological order
        if role != "input":
            layer[name] = 1 + max((layer[s] for s in sources.get(name, [])), default=0)
    last = max(layer.values())
    for name, role in nodes:
        if role == "output":
            layer[name] = last  # the output alone in the last column
    return layer


def _positions(
    nodes: list[tuple[str, str]], edges: list[tuple[str, str, str]], layer: dict[str, int]
) -> dict[str, tuple[float, float]]:
    """Columns by layer; within a column, rows ordered by the mean row of each node's sources
    (the barycentre heuristic), which removes most crossings in cells this small."""
    sources: dict[str, list[str]] = {}
    for source, target, _ in edges:
        sources.setdefault(target, []).append(source)
    columns: dict[int, list[str]] = {}
    for name, _ in nodes:
        columns.setdefault(layer[name], []).append(name)
    pos: dict[str, tuple[float, float]] = {}
    for col in sorted(columns):
        names = columns[col]
        if col > 0:
            def centre(name: str) -> float:
                ys = [pos[s][1] for s in sources.get(name, []) if s in pos]
                return -sum(ys) / len(ys) if ys else 0.0

            names = sorted(names, key=centre)  # stable: ties keep node order
        top = (len(names) - 1) * _DY / 2
        for row, name in enumerate(names):
            pos[name] = (col * _DX, top - row * _DY)
    return pos


Point = tuple[float, float]
Rect = tuple[float, float, float, float]  # x0, y0, x1, y1


def _curve(p1: Point, p2: Point, rad: float, t: float) -> Point:
    """A point of matplotlib's ``arc3`` curve: a quadratic Bezier bent by ``rad`` · (dy, -dx)."""
    (x1, y1), (x2, y2) = p1, p2
    cx = (x1 + x2) / 2 + rad * (y2 - y1)
    cy = (y1 + y2) / 2 - rad * (x2 - x1)
    a, b, c = (1 - t) ** 2, 2 * t * (1 - t), t**2
    return a * x1 + b * cx + c * x2, a * y1 + b * cy + c * y2


def _angle(p1: Point, p2: Point, rad: float, t: float) -> float:
    """Direction of the curve at ``t``, in degrees: labels follow their edge, so crossing edges
    keep their labels apart to the eye."""
    (x1, y1), (x2, y2) = p1, p2
    cx = (x1 + x2) / 2 + rad * (y2 - y1)
    cy = (y1 + y2) / 2 - rad * (x2 - x1)
    dx = (1 - t) * (cx - x1) + t * (x2 - cx)
    dy = (1 - t) * (cy - y1) + t * (y2 - cy)
    return math.degrees(math.atan2(dy, dx))


def _inside(point: Point, rect: Rect) -> bool:
    return rect[0] <= point[0] <= rect[2] and rect[1] <= point[1] <= rect[3]


def _overlap(a: Rect, b: Rect) -> float:
    """Area of the intersection of two rectangles (0 when disjoint)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _box(centre: Point, width: float, height: float) -> Rect:
    return centre[0] - width / 2, centre[1] - height / 2, centre[0] + width / 2, centre[1] + height / 2


def _route(p1: Point, p2: Point, obstacles: list[Rect], taken: set[float]) -> float:
    """The least bent arc from p1 to p2 that misses every box in ``obstacles``."""
    candidates = [0.0] + [sign * r for r in (0.15, 0.3, 0.45, 0.6) for sign in (1, -1)]
    samples = [i / 24 for i in range(1, 24)]
    for rad in candidates:
        if rad in taken:
            continue
        if not any(_inside(_curve(p1, p2, rad, t), r) for t in samples for r in obstacles):
            return rad
    return next(r for r in candidates if r not in taken)


_LABEL_TS = (0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74)
Spot = tuple[Point, float, Rect]  # the label's centre, its angle in degrees, its bounds


def _label_spot(p1: Point, p2: Point, rad: float, size: tuple[float, float], blocked: list[Rect],
                edge_points: list[Point]) -> Spot:
    """Where the label goes: beside its edge (either side), along it where it covers the least of
    the boxes and earlier labels, and the fewest points of other edges (the middle, above, when
    nothing is in the way). Labels turn with their edge but never upside down."""
    def spot(t: float, side: int) -> Spot:
        angle = _angle(p1, p2, rad, t)
        if angle > 90 or angle < -90:
            angle -= 180 * (1 if angle > 0 else -1)
        a = math.radians(angle)
        w = abs(size[0] * math.cos(a)) + abs(size[1] * math.sin(a))
        h = abs(size[0] * math.sin(a)) + abs(size[1] * math.cos(a))
        x, y = _curve(p1, p2, rad, t)
        gap = size[1] / 2 + 0.06  # the label's half height and a margin off the line
        centre = (x - side * gap * math.sin(a), y + side * gap * math.cos(a))
        return centre, angle, _box(centre, w, h)

    def cost(candidate: Spot) -> float:
        rect = candidate[2]
        return sum(_overlap(rect, b) for b in blocked) + 0.05 * sum(_inside(p, rect) for p in edge_points)

    spots = [spot(t, side) for t in _LABEL_TS for side in (1, -1)]
    return min(spots, key=cost)  # first of equals


def _draw_edges(ax, pos: dict[str, Point], boxes: dict, rects: dict[str, Rect], edges: list[tuple[str, str, str]]) -> None:
    """Each edge as the least bent arc that misses the boxes, its label beside it where it covers least."""
    from matplotlib.patches import FancyArrowPatch

    routes = []
    used: dict[tuple[str, str], set[float]] = {}
    for source, target, label in edges:
        obstacles = [r for n, r in rects.items() if n not in (source, target)]
        taken = used.setdefault((source, target), set())
        rad = _route(pos[source], pos[target], obstacles, taken)
        taken.add(rad)
        routes.append((source, target, label, rad))
    samples = [i / 16 for i in range(2, 15)]
    lines = [[_curve(pos[s], pos[t], rad, u) for u in samples] for s, t, _, rad in routes]
    labels_blocked = list(rects.values())
    for index, (source, target, label, rad) in enumerate(routes):
        p1, p2 = pos[source], pos[target]
        ax.add_patch(
            FancyArrowPatch(
                p1, p2, patchA=boxes[source], patchB=boxes[target],
                connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=14,
                color="dimgray" if label else "darkgray", linewidth=1.2, zorder=2,
            )
        )
        if label:
            size = (0.065 * len(label) + 0.12, 0.28)  # 9 pt text at 110 px per unit, with a margin
            others = [p for j, points in enumerate(lines) if j != index for p in points]
            (x, y), angle, rect = _label_spot(p1, p2, rad, size, labels_blocked, others)
            labels_blocked.append(rect)
            ax.text(
                x, y, label, ha="center", va="center", fontsize=9, zorder=5, rotation=angle, rotation_mode="anchor",
                bbox=dict(boxstyle="round,pad=0.1", facecolor="white", edgecolor="none", alpha=0.85),
            )


def _render_matplotlib(genotype: Cells, cell: str, title: str | None = None) -> Figure:
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    nodes, edges = cell_graph(genotype, cell)
    layer = _layers(nodes, edges)
    pos = _positions(nodes, edges, layer)
    xs = [x for x, _ in pos.values()]
    ys = [y for _, y in pos.values()]
    x0, x1 = min(xs) - _BOX_W, max(xs) + _BOX_W
    y0, y1 = min(ys) - _BOX_H - 0.7, max(ys) + _BOX_H + 0.9
    scale = 1.1  # inches per data unit
    fig = Figure(figsize=((x1 - x0) * scale, (y1 - y0) * scale), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")  # keeps arc3's bend (computed on screen) equal to _curve's (in data units)
    ax.axis("off")
    if title:
        ax.text(x0 + 0.2, y1 - 0.35, title, fontsize=12, va="center", ha="left")

    boxes = {}
    rects = {}
    for name, role in nodes:
        x, y = pos[name]
        boxes[name] = FancyBboxPatch(
            (x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H,
            boxstyle="round,pad=0.02", facecolor=_MPL_FILL[role], edgecolor="black", linewidth=1.5, zorder=3,
        )
        ax.add_patch(boxes[name])
        rects[name] = _box((x, y), _BOX_W + 0.15, _BOX_H + 0.15)
        ax.text(x, y, _math_label(name), ha="center", va="center", fontsize=12, zorder=4)

    _draw_edges(ax, pos, boxes, rects, edges)
    return fig


def _render_dot(dot_path: Path, out: Path, fmt: str) -> bool:
    exe = shutil.which("dot")
    if exe is None:
        return False
    result = subprocess.run([exe, f"-T{fmt}", str(dot_path), "-o", str(out)], capture_output=True, check=False)
    return result.returncode == 0 and out.is_file()


def write_cell_diagrams(genotype: Cells, out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``<stem>_{normal,reduce}.{dot,png,svg}`` under ``out_dir``; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for cell in ("normal", "reduce"):
        base = out / f"{stem}_{cell}"
        dot_path = base.with_suffix(".dot")
        dot_path.write_text(cell_dot(genotype, cell))
        written.append(dot_path)
        figure = None
        for fmt in ("png", "svg"):
            target = base.with_suffix(f".{fmt}")
            # Graphviz draws nicer graphs; fall back when it is missing or fails.
            if not _render_dot(dot_path, target, fmt):
                if figure is None:
                    figure = _render_matplotlib(genotype, cell, title=f"{stem}: {cell} cell")
                figure.savefig(target, format=fmt)
            written.append(target)
    return written
