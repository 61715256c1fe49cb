"""The figures of a report, as PNG and SVG (each ``figsize`` × ``DPI`` pixels exactly):

- ``<run>_loss``: training loss per learner and network (per logged iteration, else per epoch);
- ``<run>_accuracy``: validation (solid) and training (dashed) accuracy per learner and network;
- ``<run>_eval``: evaluation stages' training loss and train / test accuracy per epoch;
- ``<run>_alpha_<learner>_<cell>``: each edge's architecture weights over the epochs, one panel per
  edge, one line per operation (cells and edge names come from the learner's search space);
- ``<run>_<learner>_<cell>``: cell diagrams of each final (and evaluated) genotype, drawn by its space;
- ``groups_test_error``: mean ± std test error per group, when several runs are reported.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sgl.registry import load_architecture
from sgl.registry.spaces import space_config

from .. import records as R
from .reading import RunData, _num, _pct, _safe

#: Figure sizes in inches; saved at ``DPI`` without cropping, so PNGs are exactly size × DPI pixels.
DPI = 100
CURVE_FIGSIZE = (8.0, 4.5)   # 800 x 450 px
ALPHA_FIGSIZE = (12.0, 8.0)  # 1200 x 800 px


def _figure(figsize: tuple[float, float]):
    from matplotlib.figure import Figure  # lazily: `sgl` starts without matplotlib

    return Figure(figsize=figsize, dpi=DPI, layout="constrained")


def _save(fig, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in ("png", "svg"):
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, format=fmt, dpi=DPI)  # no bbox cropping: the size is the figure's
        paths.append(path)
    return paths


def _series(records: list[dict[str, Any]], xkey: str, ykey: str, offset: int = 0) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        x, y = _num(r.get(xkey)), _num(r.get(ykey))
        if x is not None and y is not None:
            xs.append(x + offset)
            ys.append(y)
    return xs, ys


def _learner_names(records: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        if r.get("learner") is not None:
            seen.setdefault(str(r["learner"]), None)
    return list(seen)


def _integer_x(*axes) -> None:
    """Whole-number ticks on an epoch axis (call after plotting); a single epoch sits mid-axis."""
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        lo, hi = ax.dataLim.intervalx
        if math.isfinite(lo) and math.isfinite(hi) and hi - lo < 2:
            ax.set_xlim(lo - 0.5, hi + 0.5)
            ax.set_xticks(range(math.ceil(lo), math.floor(hi) + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _line_style(count: int) -> dict[str, Any]:
    return {"marker": "o", "markersize": 3} if count <= 30 else {}


def _finish_curves(ax, ylabel: str, title: str, xlabel: str = "epoch") -> None:
    """Label a curve axis the way every curve figure here is labelled."""
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    _integer_x(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def loss_figure(run: RunData, out: Path) -> list[Path]:
    fig = _figure(CURVE_FIGSIZE)
    ax = fig.add_subplot()
    drawn = 0
    # per-iteration losses where the run logged them, else the epoch means
    records, xkey, ykey, offset, xlabel = ((run.iters, R.STEP, R.loss, 0, "iteration") if run.iters
                                           else (run.epochs, R.EPOCH_INDEX, R.train_loss, 1, "epoch"))
    for learner in _learner_names(records):
        rows = [r for r in records if r.get("learner") == learner]
        for net in R.NETWORKS:
            xs, ys = _series(rows, xkey, ykey(net), offset=offset)
            if xs:
                ax.plot(xs, ys, label=f"{learner} {net}", linewidth=1.2, **_line_style(len(xs)))
                drawn += 1
    if not drawn:
        return []
    _finish_curves(ax, "training loss", f"{run.label}: loss per learner and network", xlabel=xlabel)
    return _save(fig, out / f"{run.label}_loss")


def accuracy_figure(run: RunData, out: Path) -> list[Path]:
    fig = _figure(CURVE_FIGSIZE)
    ax = fig.add_subplot()
    drawn = 0
    colors = _colors()
    for i, learner in enumerate(_learner_names(run.epochs)):
        rows = [r for r in run.epochs if r.get("learner") == learner]
        for j, net in enumerate(R.NETWORKS):
            color = colors[(2 * i + j) % len(colors)]
            for split, key, style in (("val", R.val_acc(net), "-"), ("train", R.train_acc(net), "--")):
                xs, ys = _series(rows, R.EPOCH_INDEX, key, offset=1)
                if xs:
                    ax.plot(xs, [_pct(y) for y in ys], style, color=color, label=f"{learner} {net} ({split})",
                            linewidth=1.2, **_line_style(len(xs)))
                    drawn += 1
    if not drawn:
        return []
    _finish_curves(ax, "accuracy (%)", f"{run.label}: accuracy (solid: validation, dashed: training)")
    return _save(fig, out / f"{run.label}_accuracy")


def eval_figure(run: RunData, out: Path) -> list[Path]:
    if not run.evals:
        return []
    fig = _figure(CURVE_FIGSIZE)
    loss_ax, acc_ax = fig.subplots(1, 2)
    colors = _colors()
    stages = list(dict.fromkeys(str(r.get(R.EVAL_STAGE)) for r in run.evals))
    for i, stage in enumerate(stages):
        rows = [r for r in run.evals if str(r.get(R.EVAL_STAGE)) == stage]
        color = colors[i % len(colors)]
        xs, ys = _series(rows, R.EPOCH_INDEX, R.EVAL_TRAIN_LOSS, offset=1)
        loss_ax.plot(xs, ys, color=color, label=stage, linewidth=1.2, **_line_style(len(xs)))
        for key, style in ((R.EVAL_TEST_ACC, "-"), (R.EVAL_TRAIN_ACC, "--")):
            xs, ys = _series(rows, R.EPOCH_INDEX, key, offset=1)
            acc_ax.plot(xs, [_pct(y) for y in ys], style, color=color, label=f"{stage} ({key.split('/')[0]})",
                        linewidth=1.2, **_line_style(len(xs)))
    _finish_curves(loss_ax, "training loss", "evaluation: loss")
    _finish_curves(acc_ax, "accuracy (%)", "evaluation: test (solid), train (dashed)")
    fig.suptitle(run.label)
    return _save(fig, out / f"{run.label}_eval")


def _colors() -> list[str]:
    from matplotlib import colormaps

    return [colormaps["tab10"](i) for i in range(10)]


def _alpha_series(history: list[dict[str, Any]], cell: str) -> tuple[list[dict[str, tuple[list[float], list[float]]]], list[str]]:
    """Per edge, op → (epochs, weights); and every op seen, in the space's primitive order."""
    per_edge: list[dict[str, tuple[list[float], list[float]]]] = []
    ops_seen: dict[str, None] = {}
    for record in history:
        rows = (record.get("alpha") or {}).get(cell)
        epoch = _num(record.get("epoch"))
        if not rows or epoch is None:
            continue
        prims = record.get("primitives") or []
        for e, row in enumerate(rows):
            names = prims[e] if prims and isinstance(prims[0], (list, tuple)) else prims
            while len(per_edge) <= e:
                per_edge.append({})
            for op, weight in zip(names, row):
                weight = _num(weight)
                if weight is None:
                    continue
                ops_seen.setdefault(op, None)
                xs, ys = per_edge[e].setdefault(op, ([], []))
                xs.append(epoch + 1)
                ys.append(weight)
    declared = [p for record in history for p in (record.get("primitives") or []) if isinstance(p, str)]
    order = list(dict.fromkeys([p for p in declared if p in ops_seen] + list(ops_seen)))
    return per_edge, order


def alpha_figures(run: RunData, out: Path) -> list[Path]:
    paths: list[Path] = []
    for learner, history in run.histories.items():
        space = _space_of(run, learner, history)
        for cell in space.cell_types():
            per_edge, ops = _alpha_series(history, cell)
            if not per_edge:
                continue
            n = len(per_edge)
            cols = min(5, n)
            rows = math.ceil(n / cols)
            fig = _figure(ALPHA_FIGSIZE)
            axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
            colors = _colors()
            color_of = {op: colors[i % len(colors)] for i, op in enumerate(ops)}
            names = space.edge_labels(n)
            handles = {}
            for e, ax in enumerate(axes.flat):
                if e >= n:
                    ax.set_visible(False)
                    continue
                for op in ops:
                    if op in per_edge[e]:
                        xs, ys = per_edge[e][op]
                        (line,) = ax.plot(xs, ys, color=color_of[op], linewidth=1.2, **_line_style(len(xs)))
                        handles.setdefault(op, line)
                ax.set_title(names[e], fontsize=8)
                _integer_x(ax)
                ax.tick_params(labelsize=7)
                ax.grid(True, alpha=0.3)
            for ax in axes[-1]:
                ax.set_xlabel("epoch", fontsize=8)
            for ax in axes[:, 0]:
                ax.set_ylabel("weight", fontsize=8)
            fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=min(len(handles), 8), fontsize=8)
            fig.suptitle(f"{run.label}: architecture weights of {learner}, {cell} cell")
            paths += _save(fig, out / f"{run.label}_alpha_{_safe(learner)}_{cell}")
    return paths


def _space_of(run: RunData, learner: str, history: list[dict[str, Any]]):
    """The search space a learner's genotypes came from (it knows its cells and edge names)."""
    architecture = run.architectures.get(learner)
    name = architecture.space if architecture is not None else ((history[-1].get("genotype") or {}).get("space") or "")
    return space_config(str(name))


def cell_figures(run: RunData, out: Path) -> dict[str, list[Path]]:
    """Diagrams of every final architecture and every evaluated one not among them."""
    written: dict[str, list[Path]] = {}
    shown = {}
    for learner, architecture in run.architectures.items():
        written[learner] = architecture.draw(out, f"{run.label}_{_safe(learner)}")
        shown[json.dumps(architecture.to_json(), sort_keys=True)] = learner
    for ev in run.evaluations:
        try:
            architecture = load_architecture(ev.genotype_json)
        except ValueError:
            continue
        key = json.dumps(architecture.to_json(), sort_keys=True)
        if key in shown:
            continue
        name = f"eval-{ev.stage}"
        written[name] = architecture.draw(out, f"{run.label}_{_safe(name)}")
        shown[key] = name
    return written


def group_figure(groups: list[dict[str, Any]], out: Path) -> list[Path]:
    bars = [g for g in groups if g["mean_final"] is not None]
    if not bars:
        return []
    fig = _figure(CURVE_FIGSIZE)
    ax = fig.add_subplot()
    labels = [f"{g['group']}\n{g['source']}" if g["source_key"] != "search" else f"{g['group']}\n(search)" for g in bars]
    colors = _colors()
    ax.bar(range(len(bars)), [g["mean_final"] for g in bars], yerr=[g["std_final"] for g in bars], capsize=4,
           color=[colors[i % len(colors)] for i in range(len(bars))])
    for i, g in enumerate(bars):
        ax.annotate(f"n={g['n']}", (i, g["mean_final"] + (g["std_final"] or 0.0)), ha="center", va="bottom", fontsize=8,
                    xytext=(0, 3), textcoords="offset points")
    ax.set_xticks(range(len(bars)), labels, fontsize=8)
    ax.set_ylabel("test error (%), final: mean ± std")
    ax.set_title("test error per group")
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, out / "groups_test_error")
