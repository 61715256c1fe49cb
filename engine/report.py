"""`sgl report`: figures, tables and one HTML page (with a Markdown twin) from run directories.

What it reads (DESIGN §4): ``run.json``, ``summary.json``, ``metrics.jsonl`` (``iter``, ``epoch``
and ``eval_epoch`` lines), ``genotypes/<learner>.json`` and ``genotypes/<learner>.history.jsonl``.
Missing pieces (a run still going, a crashed run) leave out what they would have drawn.

What it writes under ``out_dir``:

- ``figures/<run>_loss.{png,svg}``: training loss per learner and network (per logged iteration,
  else per epoch). ``CURVE_FIGSIZE`` at ``DPI``: 800 x 450 px.
- ``figures/<run>_accuracy.{png,svg}``: validation (solid) and training (dashed) accuracy per
  learner and network, per epoch. 800 x 450 px.
- ``figures/<run>_eval.{png,svg}``: evaluation stages' training loss and train / test accuracy
  per epoch. 800 x 450 px.
- ``figures/<run>_alpha_<learner>_<cell>.{png,svg}``: the architecture weights of each edge of the
  normal and the reduction cell over the epochs, one panel per edge, one line per operation.
  ``ALPHA_FIGSIZE`` at ``DPI``: 1200 x 800 px.
- ``figures/<run>_<learner>_<cell>.{png,svg,dot}``: cell diagrams of each final genotype (and of
  each evaluated genotype), sized by the cell (``registry.spaces.diagram``).
- ``figures/groups_test_error.{png,svg}``: mean ± std test error per group, when several runs
  are reported. 800 x 450 px.
- ``report.html`` (self-contained: inline style, figures referenced relatively) and ``report.md``.

The results table follows the papers' layout: method, dataset, test error (%), params (M),
search cost (GPU-days on GPUs, CPU-hours on CPUs). Test errors come from evaluation stages
(final and best, labelled); a run without one shows 100 − the best learner's test accuracy of
the search network, labelled as such. Runs are grouped by spec name (or by ``groups``) and each
group shows mean ± std over its runs (seeds).
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from sgl.registry.spaces.genotype import DEFAULT_PRIMITIVES, Genotype

#: Figure sizes in inches; saved at ``DPI`` without cropping, so PNGs are exactly size × DPI pixels.
DPI = 100
CURVE_FIGSIZE = (8.0, 4.5)   # 800 x 450 px
ALPHA_FIGSIZE = (12.0, 8.0)  # 1200 x 800 px
CELLS = ("normal", "reduce")


class ReportError(Exception):
    """A path that is not a run directory, or nothing to report."""


# --------------------------------------------------------------------------- reading runs


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a torn last line (a killed run) is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def _dedupe(records: list[dict[str, Any]], key) -> list[dict[str, Any]]:
    """Keep the last record per key (a resumed run may repeat lines), in first-seen order."""
    last: dict[Any, dict[str, Any]] = {}
    for record in records:
        last[key(record)] = record
    return list(last.values())


@dataclass
class RunData:
    path: Path
    label: str  # unique and file-safe among the reported runs
    name: str
    info: dict[str, Any]
    summary: dict[str, Any]
    iters: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    genotypes: dict[str, Genotype] = field(default_factory=dict)
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def seed(self) -> Any:
        return self.summary.get("seed", self.info.get("seed"))

    @property
    def learners(self) -> dict[str, dict[str, Any]]:
        return self.summary.get("learners") or {}

    @property
    def method(self) -> str:
        """Spec name, hypergradient and group size K (an evaluation-only run has neither)."""
        k = len(self.learners)
        if not k:
            return self.name
        hyper = self.summary.get("hypergradient")
        return f"{self.name} ({hyper + ', ' if hyper else ''}K={k})"


def load_run(path: Path, label: str | None = None) -> RunData:
    path = Path(path)
    if not path.is_dir() or not ((path / "run.json").exists() or (path / "summary.json").exists() or (path / "metrics.jsonl").exists()):
        raise ReportError(f"{str(path)!r} is not an sgl run directory (no run.json, summary.json or metrics.jsonl)")
    info = _read_json(path / "run.json")
    summary = _read_json(path / "summary.json")
    name = str(summary.get("name") or info.get("name") or path.name)
    records = _read_jsonl(path / "metrics.jsonl")
    run = RunData(path=path, label=label or name, name=name, info=info, summary=summary)
    run.iters = _dedupe([r for r in records if r.get("kind") == "iter"],
                        lambda r: (r.get("learner"), r.get("phase"), r.get("step")))
    run.epochs = _dedupe([r for r in records if r.get("kind") == "epoch"],
                         lambda r: (r.get("learner"), r.get("phase"), r.get("epoch")))
    run.evals = _dedupe([r for r in records if r.get("kind") == "eval_epoch"],
                        lambda r: (r.get("stage"), r.get("epoch")))
    genotype_dir = path / "genotypes"
    if genotype_dir.is_dir():
        for file in sorted(genotype_dir.glob("*.json")):
            try:
                run.genotypes[file.stem] = Genotype.load(file)
            except (ValueError, OSError):
                continue
        for file in sorted(genotype_dir.glob("*.history.jsonl")):
            history = _dedupe(_read_jsonl(file), lambda r: r.get("epoch"))
            if history:
                run.histories[file.name[: -len(".history.jsonl")]] = history
    return run


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def _labels(paths: list[Path]) -> list[str]:
    """File-safe labels: the spec name and the run folder's name, made unique."""
    out, seen = [], set()
    for path in paths:
        info = _read_json(path / "run.json")
        summary = _read_json(path / "summary.json")
        name = str(summary.get("name") or info.get("name") or path.name)
        base = _safe(f"{name}-{path.name}" if path.name != name else name)
        label, n = base, 1
        while label in seen:
            n += 1
            label = f"{base}-{n}"
        seen.add(label)
        out.append(label)
    return out


# --------------------------------------------------------------------------- numbers


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _pct(acc: Any) -> float | None:
    """Accuracy as a percentage (the engine logs fractions)."""
    acc = _num(acc)
    if acc is None:
        return None
    return acc * 100.0 if acc <= 1.0 else acc


def _search_cost(summary: dict[str, Any]) -> tuple[float, str] | None:
    """``(value, unit)``: GPU-days on GPUs, CPU-hours on CPUs (device-hours: hours × processes)."""
    cost = summary.get("search_cost") or {}
    hours = _num(cost.get("device_hours", cost.get("hours")))
    if hours is None:
        return None
    if cost.get("device") == "cuda":
        return hours / 24.0, "GPU-days"
    return hours, "CPU-hours"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _fmt_params(value: float | None) -> str:
    """Millions of parameters: 3.35, 0.0267 (three significant digits)."""
    return "–" if value is None else f"{value:.3g}"


def _mean_std(values: list[float | None], spec: str = ".2f") -> str:
    """``mean ± std`` (sample std) of the known values; one value alone; "–" for none."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:{spec}}"
    return f"{mean:{spec}} ± {statistics.stdev(values):{spec}}"


def result_rows(run: RunData) -> list[dict[str, Any]]:
    """Rows of the results table for one run: one per evaluation stage, else one for the search."""
    cost = _search_cost(run.summary) if run.learners else None  # evaluation-only: no search
    base = {
        "run": run.label, "path": str(run.path), "name": run.name, "method": run.method,
        "dataset": run.summary.get("dataset") or "–", "seed": run.seed,
        "search_cost": cost[0] if cost else None, "search_cost_unit": cost[1] if cost else None,
    }
    rows = []
    for ev in run.summary.get("evaluations") or []:
        rows.append({
            **base,
            "source_key": f"evaluate:{ev.get('stage')}",
            "source": f"evaluation stage '{ev.get('stage')}': {ev.get('genotype')}, {ev.get('epochs')} epochs",
            "dataset": ev.get("dataset") or base["dataset"],
            "test_error_final": _num(ev.get("test_error_final")),
            "test_error_best": _num(ev.get("test_error_best")),
            "params_M": _num(ev.get("params_M")),
            "madds_M": _num(ev.get("madds_M")),
        })
    if rows:
        return rows
    best = None  # (acc, learner, net, params)
    for name, learner in run.learners.items():
        for net, acc in (learner.get("test_acc") or {}).items():
            acc = _pct(acc)
            if acc is not None and (best is None or acc > best[0]):
                best = (acc, name, net, _num(learner.get("params_M")))
    return [{
        **base,
        "source_key": "search",
        "source": f"search network, best learner ({best[1]}/{best[2]})" if best else "search (no test accuracy)",
        "test_error_final": 100.0 - best[0] if best else None,
        "test_error_best": None,
        "params_M": best[3] if best else None,
        "madds_M": None,
    }]


def group_rows(rows: list[dict[str, Any]], membership: dict[str, str]) -> list[dict[str, Any]]:
    """Mean ± std per (group, source) over the runs of the group."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        group = membership.get(row["path"], row["name"])
        grouped.setdefault((group, row["source_key"]), []).append(row)
    out = []
    for (group, source_key), members in grouped.items():
        units = {m["search_cost_unit"] for m in members if m["search_cost_unit"]}
        unit = units.pop() if len(units) == 1 else ("mixed units" if units else None)
        finals = [m["test_error_final"] for m in members if m["test_error_final"] is not None]
        out.append({
            "group": group,
            "source_key": source_key,
            "source": members[0]["source"] if source_key == "search" else f"evaluation stage '{source_key.split(':', 1)[1]}'",
            "methods": sorted({m["method"] for m in members}),
            "dataset": ", ".join(sorted({str(m["dataset"]) for m in members})),
            "n": len(members),
            "seeds": [m["seed"] for m in members],
            "test_error_final": _mean_std([m["test_error_final"] for m in members]),
            "test_error_best": _mean_std([m["test_error_best"] for m in members]),
            "params_M": _mean_std([m["params_M"] for m in members], ".3g"),
            "search_cost": _mean_std([m["search_cost"] for m in members] if unit != "mixed units" else [], ".3g"),
            "search_cost_unit": unit,
            "mean_final": statistics.fmean(finals) if finals else None,
            "std_final": statistics.stdev(finals) if len(finals) > 1 else 0.0 if finals else None,
        })
    return out


# --------------------------------------------------------------------------- figures


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


def loss_figure(run: RunData, out: Path) -> list[Path]:
    fig = _figure(CURVE_FIGSIZE)
    ax = fig.add_subplot()
    drawn = 0
    if run.iters:
        for learner in _learner_names(run.iters):
            rows = [r for r in run.iters if r.get("learner") == learner]
            for net in ("W", "V"):
                xs, ys = _series(rows, "step", f"{net}/loss")
                if xs:
                    ax.plot(xs, ys, label=f"{learner} {net}", linewidth=1.2, **_line_style(len(xs)))
                    drawn += 1
        ax.set_xlabel("iteration")
    else:
        for learner in _learner_names(run.epochs):
            rows = [r for r in run.epochs if r.get("learner") == learner]
            for net in ("W", "V"):
                xs, ys = _series(rows, "epoch", f"train/{net}/loss", offset=1)
                if xs:
                    ax.plot(xs, ys, label=f"{learner} {net}", linewidth=1.2, **_line_style(len(xs)))
                    drawn += 1
        ax.set_xlabel("epoch")
    if not drawn:
        return []
    _integer_x(ax)
    ax.set_ylabel("training loss")
    ax.set_title(f"{run.label}: loss per learner and network")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out / f"{run.label}_loss")


def accuracy_figure(run: RunData, out: Path) -> list[Path]:
    fig = _figure(CURVE_FIGSIZE)
    ax = fig.add_subplot()
    drawn = 0
    colors = _colors()
    for i, learner in enumerate(_learner_names(run.epochs)):
        rows = [r for r in run.epochs if r.get("learner") == learner]
        for j, net in enumerate(("W", "V")):
            color = colors[(2 * i + j) % len(colors)]
            for split, style in (("val", "-"), ("train", "--")):
                xs, ys = _series(rows, "epoch", f"{split}/{net}/acc", offset=1)
                if xs:
                    ax.plot(xs, [_pct(y) for y in ys], style, color=color, label=f"{learner} {net} ({split})",
                            linewidth=1.2, **_line_style(len(xs)))
                    drawn += 1
    if not drawn:
        return []
    ax.set_xlabel("epoch")
    _integer_x(ax)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{run.label}: accuracy (solid: validation, dashed: training)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out / f"{run.label}_accuracy")


def eval_figure(run: RunData, out: Path) -> list[Path]:
    if not run.evals:
        return []
    fig = _figure(CURVE_FIGSIZE)
    loss_ax, acc_ax = fig.subplots(1, 2)
    colors = _colors()
    stages = list(dict.fromkeys(str(r.get("stage")) for r in run.evals))
    for i, stage in enumerate(stages):
        rows = [r for r in run.evals if str(r.get("stage")) == stage]
        color = colors[i % len(colors)]
        xs, ys = _series(rows, "epoch", "train/loss", offset=1)
        loss_ax.plot(xs, ys, color=color, label=stage, linewidth=1.2, **_line_style(len(xs)))
        for key, style in (("test/acc", "-"), ("train/acc", "--")):
            xs, ys = _series(rows, "epoch", key, offset=1)
            acc_ax.plot(xs, [_pct(y) for y in ys], style, color=color, label=f"{stage} ({key.split('/')[0]})",
                        linewidth=1.2, **_line_style(len(xs)))
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="evaluation: loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="evaluation: test (solid), train (dashed)")
    _integer_x(loss_ax, acc_ax)
    for ax in (loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(run.label)
    return _save(fig, out / f"{run.label}_eval")


def _colors() -> list[str]:
    from matplotlib import colormaps

    return [colormaps["tab10"](i) for i in range(10)]


def _edge_names(edges: int) -> list[str]:
    """DARTS edge order: node 0 reads states 0, 1; node 1 reads 0, 1, 2; ..."""
    names, node = [], 0
    while len(names) < edges:
        for state in range(node + 2):
            source = ("$c_{k-2}$", "$c_{k-1}$")[state] if state < 2 else f"node {state - 2}"
            names.append(f"{source} → node {node}")
        node += 1
    return names[:edges]


def _alpha_series(history: list[dict[str, Any]], cell: str) -> tuple[list[dict[str, tuple[list[float], list[float]]]], list[str]]:
    """Per edge, op → (epochs, weights); and every op seen, in DARTS order first."""
    per_edge: list[dict[str, tuple[list[float], list[float]]]] = []
    ops_seen: dict[str, None] = {}
    for record in history:
        rows = (record.get("alpha") or {}).get(cell)
        epoch = _num(record.get("epoch"))
        if not rows or epoch is None:
            continue
        prims = record.get("primitives") or list(DEFAULT_PRIMITIVES)
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
    order = [p for p in DEFAULT_PRIMITIVES if p in ops_seen] + [p for p in ops_seen if p not in DEFAULT_PRIMITIVES]
    return per_edge, order


def alpha_figures(run: RunData, out: Path) -> list[Path]:
    paths: list[Path] = []
    for learner, history in run.histories.items():
        for cell in CELLS:
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
            names = _edge_names(n)
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


def cell_figures(run: RunData, out: Path) -> dict[str, list[Path]]:
    """Cell diagrams of every final genotype and every evaluated genotype not among them."""
    from sgl.registry.spaces.diagram import write_cell_diagrams

    written: dict[str, list[Path]] = {}
    shown = {}
    for learner, genotype in run.genotypes.items():
        written[learner] = write_cell_diagrams(genotype, out, f"{run.label}_{_safe(learner)}")
        shown[json.dumps(genotype.to_json(), sort_keys=True)] = learner
    for ev in run.summary.get("evaluations") or []:
        data = ev.get("genotype_json")
        if not data:
            continue
        key = json.dumps(Genotype.from_json(data).to_json(), sort_keys=True)
        if key in shown:
            continue
        name = f"eval-{ev.get('stage')}"
        written[name] = write_cell_diagrams(Genotype.from_json(data), out, f"{run.label}_{_safe(name)}")
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


# --------------------------------------------------------------------------- tables and pages


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in self.rows)
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        return f"<h3>{html.escape(self.title)}</h3>\n<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n{note}"

    def markdown(self) -> str:
        def cell(text: Any) -> str:
            return str(text).replace("|", "\\|").replace("\n", " ")

        lines = [f"### {self.title}", "", "| " + " | ".join(map(cell, self.headers)) + " |",
                 "|" + "|".join("---" for _ in self.headers) + "|"]
        lines += ["| " + " | ".join(map(cell, row)) + " |" for row in self.rows]
        if self.note:
            lines += ["", f"_{self.note}_"]
        return "\n".join(lines) + "\n"


def _cost_text(value: float | None, unit: str | None) -> str:
    if value is None or unit is None:
        return "–"
    return f"{value:.3g} {unit}"


def results_table(rows: list[dict[str, Any]]) -> Table:
    return Table(
        "Runs",
        ["Method", "Dataset", "Test error (%), final", "Test error (%), best", "Params (M)", "Search cost", "Source", "Seed", "Run"],
        [[r["method"], r["dataset"], _fmt(r["test_error_final"]), _fmt(r["test_error_best"]), _fmt_params(r["params_M"]),
          _cost_text(r["search_cost"], r["search_cost_unit"]), r["source"], str(r["seed"]), r["run"]] for r in rows],
        note="Test error: final = after the last epoch, best = lowest over the epochs (evaluation stages only). "
        "Rows from a search network show 100 − its test accuracy. Params exclude the auxiliary head. "
        "Search cost: GPU-days on GPUs, CPU-hours on CPUs, device-hours over all processes.",
    )


def groups_table(groups: list[dict[str, Any]]) -> Table:
    return Table(
        "Groups (mean ± std over runs)",
        ["Group", "Method", "Dataset", "Source", "Runs", "Seeds", "Test error (%), final", "Test error (%), best", "Params (M)", "Search cost"],
        [[g["group"], ", ".join(g["methods"]), g["dataset"], g["source"], str(g["n"]), ", ".join(map(str, g["seeds"])),
          g["test_error_final"], g["test_error_best"], g["params_M"],
          f"{g['search_cost']} {g['search_cost_unit']}" if g["search_cost_unit"] and g["search_cost"] != "–" else "–"]
         for g in groups],
        note="Standard deviation over the runs of a group (sample std, n − 1); a single run shows its value.",
    )


def learners_table(run: RunData) -> Table | None:
    if not run.learners:
        return None
    rows = []
    for name, l in run.learners.items():
        val, test = l.get("val_acc") or {}, l.get("test_acc") or {}
        rows.append([name, str(l.get("kind", "–")), "yes" if l.get("searchable") else "no",
                     _fmt(_pct(val.get("W"))), _fmt(_pct(val.get("V"))), _fmt(_pct(test.get("W"))), _fmt(_pct(test.get("V"))),
                     _fmt_params(_num(l.get("params_M"))), str(l.get("genotype") or "–")])
    return Table(f"Learners of {run.label}", ["Learner", "Kind", "Searchable", "Val acc W (%)", "Val acc V (%)",
                                              "Test acc W (%)", "Test acc V (%)", "Params (M)", "Genotype"], rows)


def evaluations_table(run: RunData) -> Table | None:
    evaluations = run.summary.get("evaluations") or []
    if not evaluations:
        return None
    rows = []
    for ev in evaluations:
        unit = "GPU-hours" if ev.get("device") == "cuda" else "CPU-hours"
        hours = _num(ev.get("device_hours"))
        rows.append([str(ev.get("stage")), str(ev.get("genotype")), str(ev.get("dataset")), str(ev.get("epochs")),
                     _fmt(_num(ev.get("test_error_final"))), _fmt(_num(ev.get("test_error_best"))),
                     _fmt_params(_num(ev.get("params_M"))), _fmt(_num(ev.get("madds_M")), 1),
                     f"{hours:.3g} {unit}" if hours is not None else "–"])
    return Table(f"Evaluations of {run.label}", ["Stage", "Genotype", "Dataset", "Epochs", "Test error (%), final",
                                                 "Test error (%), best", "Params (M)", "Multiply-adds (M)", "Cost"], rows)


_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f2f2f2; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.3em 0; }
.note { color: #666; font-size: 0.85em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
""".strip()


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def write_report(
    run_dirs: Iterable[Path],
    out_dir: Path,
    *,
    groups: dict[str, list[Path]] | None = None,
) -> dict[str, Any]:
    """Figures, ``report.html`` and ``report.md`` for ``run_dirs`` under ``out_dir``.

    ``groups``: label → run directories; runs in no group are grouped by spec name. Runs named
    only in ``groups`` are reported too. Returns ``{"html", "markdown", "figures", "rows", "groups"}``.
    """
    paths = [Path(p) for p in run_dirs]
    membership: dict[str, str] = {}
    for label, members in (groups or {}).items():
        for member in members:
            member = Path(member)
            if member.resolve() not in {p.resolve() for p in paths}:
                paths.append(member)
            membership[str(member.resolve())] = label
    if not paths:
        raise ReportError("no run directories to report")
    seen, unique = set(), []
    for p in paths:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    runs = [load_run(p, label) for p, label in zip(unique, _labels(unique))]

    out_dir = Path(out_dir)
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Path] = []
    per_run: dict[str, dict[str, Any]] = {}
    for run in runs:
        made = {
            "loss": loss_figure(run, figures_dir),
            "accuracy": accuracy_figure(run, figures_dir),
            "eval": eval_figure(run, figures_dir),
            "alpha": alpha_figures(run, figures_dir),
            "cells": cell_figures(run, figures_dir),
        }
        per_run[run.label] = made
        for key, value in made.items():
            for p in (value if key != "cells" else [x for v in value.values() for x in v]):
                figures.append(p)

    rows = [row for run in runs for row in result_rows(run)]
    for row in rows:
        row["path"] = str(Path(row["path"]).resolve())
    group_list = group_rows(rows, membership)
    group_figs = group_figure(group_list, figures_dir) if len(runs) > 1 else []
    figures += group_figs

    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    _write_pages(runs, rows, group_list, per_run, group_figs, out_dir, html_path, md_path)
    return {"html": html_path, "markdown": md_path, "figures": figures, "rows": rows, "groups": group_list}


def _write_pages(runs, rows, group_list, per_run, group_figs, out_dir: Path, html_path: Path, md_path: Path) -> None:
    from .rundir import atomic_write_text

    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    h: list[str] = [f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sgl report</title>"
                    f"<style>{_STYLE}</style></head><body>",
                    "<h1>sgl report</h1>",
                    f"<p class=\"note\">{len(runs)} run(s), generated {html.escape(stamp)}.</p>"]
    m: list[str] = ["# sgl report", "", f"_{len(runs)} run(s), generated {stamp}._", ""]

    def table(t: Table | None) -> None:
        if t is not None:
            h.append(t.html())
            m.append(t.markdown())

    def image(path: Path, alt: str) -> None:
        rel = _rel(path, out_dir)
        h.append(f'<p><img src="{html.escape(rel)}" alt="{html.escape(alt)}"></p>')
        m.append(f"![{alt}]({rel})\n")

    def heading(text: str) -> None:
        h.append(f"<h2>{html.escape(text)}</h2>")
        m.append(f"## {text}\n")

    heading("Results")
    table(results_table(rows))
    if len(runs) > 1:
        table(groups_table(group_list))
        for p in group_figs:
            if p.suffix == ".png":
                image(p, "test error per group")

    for run in runs:
        heading(f"Run {run.label}")
        status = run.summary.get("status", "no summary (still running, or stopped)")
        line = f"{run.path} — spec {run.name}, seed {run.seed}, status {status}"
        h.append(f"<p>{html.escape(line)}</p>")
        m.append(line + "\n")
        table(learners_table(run))
        table(evaluations_table(run))
        made = per_run[run.label]
        for key, alt in (("loss", "loss curves"), ("accuracy", "accuracy curves"), ("eval", "evaluation curves"), ("alpha", "architecture weights")):
            for p in made[key]:
                if p.suffix == ".png":
                    image(p, f"{run.label}: {alt} ({p.stem})")
        for name, paths in made["cells"].items():
            for p in paths:
                if p.suffix == ".png":
                    image(p, f"{run.label}: {name} {p.stem.rsplit('_', 1)[-1]} cell")
    h.append("</body></html>\n")
    atomic_write_text(html_path, "\n".join(h))
    atomic_write_text(md_path, "\n".join(m))
