"""The report's pages: ``report.html`` (self-contained: inline style, figures referenced relatively)
and its Markdown twin ``report.md``, both rendered from templates (``templates/``), and
``write_report`` which makes everything.

Figures are drawn once: a run that reports to trackers draws its curves into its own ``figures/``
at its end, the derive stage draws the cell diagrams there, and a report into the run directory
reuses every figure that is newer than the run's records (``figures.reuse``).
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import ReportError
from ..rundir.files import atomic_write_text
from .figures import accuracy_figure, alpha_figures, cell_figures, eval_figure, group_figure, loss_figure, reuse
from .reading import RunData, _labels, group_rows, load_run, result_rows
from .tables import Table, evaluations_table, expectations_table, groups_table, learners_table, results_table

__all__ = ["Table", "draw_figures", "run_figures", "write_report"]

#: The curve figures of a run: what draws each, and the files it names (under ``<label>``).
CURVES = (("loss", loss_figure, "{label}_loss.*"), ("accuracy", accuracy_figure, "{label}_accuracy.*"),
          ("eval", eval_figure, "{label}_eval.*"), ("alpha", alpha_figures, "{label}_alpha_*"))
CAPTIONS = {"loss": "training loss", "accuracy": "accuracy", "eval": "evaluation curves", "alpha": "architecture weights"}


def _records(run: RunData) -> list[Path]:
    """What a run's curves are drawn from: a figure newer than all of them is up to date."""
    d = run.files.dir
    return [d.metrics, *d.architecture_histories().values(), *d.architecture_files().values()]


def draw_figures(run: RunData, figures_dir: Path) -> dict[str, Any]:
    """Every figure of one run under ``figures_dir``: ``{"loss": [...], ..., "cells": {name: [...]}}``;
    figures already there and newer than the run's records are kept, not drawn again."""
    made: dict[str, Any] = {}
    sources = _records(run)
    for key, draw, pattern in CURVES:
        made[key] = reuse(figures_dir, pattern.format(label=run.label), sources) or draw(run, figures_dir)
    made["cells"] = cell_figures(run, figures_dir)
    return made


def run_figures(run_dir: Path) -> list[Path]:
    """The report's curve and α figures of one run, drawn into its own ``figures/`` (what ``sgl report
    RUN_DIR`` shows, and reuses); the recorder hands them to the trackers at the end of a run."""
    run_dir = Path(run_dir)
    run = load_run(run_dir, _labels([run_dir])[0])
    made = draw_figures(run, run_dir / "figures")
    return [p for key, value in made.items() if key != "cells" for p in value]


@dataclass
class Figure:
    src: str  # relative to the page
    alt: str


@dataclass
class RunSection:
    label: str
    line: str
    tables: list[Table]
    figures: list[Figure] = field(default_factory=list)
    spec: str | None = None  # spec.resolved.yaml


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _unique(paths: list[Path]) -> list[Path]:
    seen, unique = set(), []
    for p in paths:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def write_report(
    run_dirs: Iterable[Path],
    out_dir: Path,
    *,
    groups: dict[str, list[Path]] | None = None,
) -> dict[str, Any]:
    """Figures, ``report.html`` and ``report.md`` for ``run_dirs`` under ``out_dir``.

    ``groups``: label → run directories; runs in no group are grouped by spec name. Runs named
    only in ``groups`` are reported too. Returns ``{"html", "markdown", "figures", "rows", "groups", "failed_expectations"}``.
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
    unique = _unique(paths)
    runs = [load_run(p, label) for p, label in zip(unique, _labels(unique))]

    out_dir = Path(out_dir)
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    per_run = {run.label: draw_figures(run, figures_dir) for run in runs}
    figures = [p for made in per_run.values() for key, value in made.items()
               for p in (value if key != "cells" else [x for v in value.values() for x in v])]

    rows = [row for run in runs for row in result_rows(run)]
    for row in rows:
        row["path"] = str(Path(row["path"]).resolve())
    group_list = group_rows(rows, membership)
    group_figs = group_figure(group_list, figures_dir) if len(runs) > 1 else []
    figures += group_figs

    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    _write_pages(runs, rows, group_list, per_run, group_figs, out_dir, html_path, md_path)
    failed = [(run.path, r) for run in runs for r in run.expectations if not r.passed]
    return {"html": html_path, "markdown": md_path, "figures": figures, "rows": rows, "groups": group_list,
            "failed_expectations": failed}


def _section(run: RunData, made: dict[str, Any], out_dir: Path) -> RunSection:
    line = f"{run.path} — spec {run.name}, seed {run.seed}, status {run.status}"
    for note in run.notes:
        line += f"; {note}"
    tables = [t for t in (learners_table(run), evaluations_table(run), expectations_table(run)) if t is not None]
    section = RunSection(run.label, line, tables)
    for key, caption in CAPTIONS.items():
        for p in made[key]:
            if p.suffix == ".png":
                section.figures.append(Figure(_rel(p, out_dir), f"{run.label}: {caption} ({p.stem})"))
    for name, paths in made["cells"].items():
        for p in paths:
            if p.suffix == ".png":
                section.figures.append(Figure(_rel(p, out_dir), f"{run.label}: {name} {p.stem.rsplit('_', 1)[-1]} cell"))
    resolved = run.files.dir.resolved_spec
    if resolved.is_file():
        section.spec = resolved.read_text(encoding="utf-8").rstrip("\n")
    return section


def _write_pages(runs, rows, group_list, per_run, group_figs, out_dir: Path, html_path: Path, md_path: Path) -> None:
    from .templates import environment

    context = {
        "title": ", ".join(run.label for run in runs),
        "stamp": _dt.datetime.now().isoformat(timespec="seconds"),
        "results": results_table(rows),
        "groups": groups_table(group_list) if len(runs) > 1 else None,
        "group_figures": [Figure(_rel(p, out_dir), "test error per group") for p in group_figs if p.suffix == ".png"],
        "runs": [_section(run, per_run[run.label], out_dir) for run in runs],
    }
    env = environment()
    atomic_write_text(html_path, env.get_template("report.html.j2").render(context))
    atomic_write_text(md_path, env.get_template("report.md.j2").render(context))
