"""The figures of a report, as PNG and SVG (each ``figsize`` × ``DPI`` pixels exactly):

- ``<run>_loss``: training loss per learner, a panel per network (per logged iteration, else per epoch);
- ``<run>_accuracy``: validation (solid) and training (dashed) accuracy per learner, a panel per
  network, from the epoch the network first trained;
- ``<run>_eval``: evaluation stages' training loss and train / test accuracy per epoch;
- ``<run>_alpha_<learner>_<cell>``: each edge's architecture weights over the epochs, one panel per
  edge, one line per operation (cells and edge names come from the learner's search space), flat
  edges labelled as such;
- ``<run>_<learner>_<cell>``: cell diagrams of each final (and evaluated) genotype, drawn by its space;
- ``groups_test_error``: mean ± std test error per group, when several runs are reported.

Legends sit outside the panels, so they never cover a curve.
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
    """Label a curve axis the way every curve figure here is labelled (legends go outside the axes)."""
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, fontsize=10)
    _integer_x(ax)
    ax.grid(True, alpha=0.3)


def _outside_legend(fig, handles: list, labels: list[str]) -> None:
    """One legend for the figure, right of the panels: it never covers a curve."""
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False)


def _trained(rows: list[dict[str, Any]], net: str) -> list[dict[str, Any]]:
    """A learner's epoch lines from the first in which ``net`` trained: before it, the network's
    accuracy is an untrained network's (V waits for the search stage)."""
    for i, r in enumerate(rows):
        if r.get(R.train_loss(net)) is not None or r.get(R.train_acc(net)) is not None:
            return rows[i:]
    return []


#: What each network's training loss is, for the panel titles.
LOSS_TITLES = {"W": "W: cross-entropy on D_train (stage 1)", "V": "V: w_lab·CE + λ·pseudo-label loss (stage 2)"}


def loss_figure(run: RunData, out: Path) -> list[Path]:
    """Training loss, one panel per network (V's includes λ·pseudo, on another scale than W's)."""
    # per-iteration losses where the run logged them, else the epoch means
    records, xkey, ykey, offset, xlabel = ((run.iters, R.STEP, R.loss, 0, "iteration") if run.iters
                                           else (run.epochs, R.EPOCH_INDEX, R.train_loss, 1, "epoch"))
    learners = _learner_names(records)
    series = {net: [(k, _series([r for r in records if r.get("learner") == k], xkey, ykey(net), offset=offset))
                    for k in learners] for net in R.NETWORKS}
    nets = [net for net in R.NETWORKS if any(xs for _, (xs, _) in series[net])]
    if not nets:
        return []
    fig = _figure(CURVE_FIGSIZE)
    axes = fig.subplots(1, len(nets), squeeze=False)[0]
    colors = _colors()
    handles: dict[str, Any] = {}
    for ax, net in zip(axes, nets):
        for i, (learner, (xs, ys)) in enumerate(series[net]):
            if xs:
                (line,) = ax.plot(xs, ys, color=colors[i % len(colors)], linewidth=1.2, **_line_style(len(xs)))
                handles.setdefault(learner, line)
        _finish_curves(ax, "training loss", LOSS_TITLES[net], xlabel=xlabel)
    _outside_legend(fig, list(handles.values()), list(handles))
    fig.suptitle(f"{run.label}: training loss", fontsize=11)
    return _save(fig, out / f"{run.label}_loss")


def accuracy_figure(run: RunData, out: Path) -> list[Path]:
    """Accuracy per epoch, one panel per network: colour = learner, solid = D_val, dashed = training."""
    from matplotlib.lines import Line2D

    learners = _learner_names(run.epochs)
    nets = [net for net in R.NETWORKS
            if any(r.get(R.val_acc(net)) is not None or r.get(R.train_acc(net)) is not None for r in run.epochs)]
    if not nets:
        return []
    fig = _figure(CURVE_FIGSIZE)
    axes = fig.subplots(1, len(nets), sharey=True, squeeze=False)[0]
    colors = _colors()
    for ax, net in zip(axes, nets):
        for i, learner in enumerate(learners):
            rows = _trained([r for r in run.epochs if r.get("learner") == learner], net)
            for key, style in ((R.val_acc(net), "-"), (R.train_acc(net), "--")):
                xs, ys = _series(rows, R.EPOCH_INDEX, key, offset=1)
                if xs:
                    ax.plot(xs, [_pct(y) for y in ys], style, color=colors[i % len(colors)], linewidth=1.2,
                            **_line_style(len(xs)))
        _finish_curves(ax, "accuracy (%)" if net == nets[0] else "", f"{net}: {R.val_acc(net)} and {R.train_acc(net)}")
    handles = [Line2D([], [], color=colors[i % len(colors)]) for i in range(len(learners))]
    handles += [Line2D([], [], color="black", linestyle="-"), Line2D([], [], color="black", linestyle="--")]
    _outside_legend(fig, handles, [*learners, "D_val", "training"])
    fig.suptitle(f"{run.label}: accuracy (from the epoch each network first trained)", fontsize=11)
    return _save(fig, out / f"{run.label}_accuracy")


def eval_figure(run: RunData, out: Path) -> list[Path]:
    from matplotlib.lines import Line2D

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
        loss_ax.plot(xs, ys, color=color, linewidth=1.2, **_line_style(len(xs)))
        for key, style in ((R.EVAL_TEST_ACC, "-"), (R.EVAL_TRAIN_ACC, "--")):
            xs, ys = _series(rows, R.EPOCH_INDEX, key, offset=1)
            acc_ax.plot(xs, [_pct(y) for y in ys], style, color=color, linewidth=1.2, **_line_style(len(xs)))
    _finish_curves(loss_ax, "training loss", f"evaluation: {R.EVAL_TRAIN_LOSS}")
    _finish_curves(acc_ax, "accuracy (%)", f"evaluation: {R.EVAL_TEST_ACC}, {R.EVAL_TRAIN_ACC}")
    handles = [Line2D([], [], color=colors[i % len(colors)]) for i in range(len(stages))]
    handles += [Line2D([], [], color="black", linestyle="-"), Line2D([], [], color="black", linestyle="--")]
    _outside_legend(fig, handles, [*stages, "test", "training"])
    fig.suptitle(run.label, fontsize=11)
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


#: An edge whose weights all stay within this of each other has not moved: its panel says so
#: (a 0.1247-0.1253 axis would otherwise make noise look like a preference).
FLAT_SPREAD = 0.01


def _spread(series: dict[str, tuple[list[float], list[float]]]) -> float:
    values = [y for _, ys in series.values() for y in ys]
    return max(values) - min(values) if values else 0.0


def _alpha_panel(ax, series: dict[str, tuple[list[float], list[float]]], ops: list[str], color_of: dict[str, Any],
                 title: str, handles: dict[str, Any]) -> None:
    for op in ops:
        if op in series:
            xs, ys = series[op]
            (line,) = ax.plot(xs, ys, color=color_of[op], linewidth=1.2, **_line_style(len(xs)))
            handles.setdefault(op, line)
    spread = _spread(series)
    ax.set_title(title, fontsize=8)
    if spread < FLAT_SPREAD:
        ax.text(0.5, 0.92, f"flat (spread {spread:.1g})", transform=ax.transAxes, ha="center", va="top", fontsize=7,
                color="dimgray", bbox=dict(facecolor="white", edgecolor="none", alpha=0.8))
    _integer_x(ax)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)


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
            handles: dict[str, Any] = {}
            for e, ax in enumerate(axes.flat):
                if e >= n:
                    ax.set_visible(False)
                    continue
                _alpha_panel(ax, per_edge[e], ops, color_of, names[e], handles)
            for ax in axes[-1]:
                ax.set_xlabel("epoch", fontsize=8)
            for ax in axes[:, 0]:
                ax.set_ylabel("weight", fontsize=8)
            fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=min(len(handles), 8), fontsize=8)
            widest = max(_spread(series) for series in per_edge)
            note = ""
            if widest < FLAT_SPREAD:  # every edge still uniform: show the scale, and say so
                uniform = 1.0 / max(1, len(ops))
                axes[0, 0].set_ylim(max(0.0, uniform - 0.1), uniform + 0.1)
                note = f" — no weight moved more than {widest:.1g}: still uniform, the differences are noise"
            fig.suptitle(f"{run.label}: architecture weights of {learner}, {cell} cell{note}")
            paths += _save(fig, out / f"{run.label}_alpha_{_safe(learner)}_{cell}")
    return paths


def _space_of(run: RunData, learner: str, history: list[dict[str, Any]]):
    """The search space a learner's genotypes came from (it knows its cells and edge names)."""
    architecture = run.architectures.get(learner)
    name = architecture.space if architecture is not None else ((history[-1].get("genotype") or {}).get("space") or "")
    return space_config(str(name))


def reuse(out: Path, pattern: str, sources: list[Path]) -> list[Path]:
    """The figures under ``out`` matching ``pattern`` when each is newer than every source (a run's
    records): figures are drawn once, by the run or the report, not again while nothing changed."""
    found = sorted(out.glob(pattern)) if out.is_dir() else []
    newest = max((p.stat().st_mtime_ns for p in sources if p.is_file()), default=0)
    return found if found and all(p.stat().st_mtime_ns >= newest for p in found) else []


def cell_figures(run: RunData, out: Path) -> dict[str, list[Path]]:
    """Diagrams of every final architecture and every evaluated one not among them. Into the run's
    own ``figures/``, a final architecture's are the derive stage's (``cell_<learner>_*``), reused."""
    own = out.resolve() == run.files.dir.figures.resolve()
    written: dict[str, list[Path]] = {}
    shown = {}
    for learner, architecture in run.architectures.items():
        stem = f"cell_{_safe(learner)}" if own else f"{run.label}_{_safe(learner)}"
        written[learner] = (reuse(out, f"{stem}_*", [run.files.dir.architecture(learner)])
                            or architecture.draw(out, stem))
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
