"""`sgl report STUDY_DIR`: the study's table as Markdown, LaTeX and CSV, a figure with error bars per
metric, and a page (report.html with its twin report.md) with the table, the figure and every trial.

Written into the study directory (or ``out_dir``)::

    table.md, table.tex, table.csv      one row per variant: mean ± std (n) per metric, published numbers
    figures/study.{png,svg}             per metric: each variant's mean ± std, its seeds as dots, published values
    report.html, report.md              the table, the figure, the per-trial table
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from ..results.pages import Figure, Table
from ..rundir.files import atomic_write_text
from .table import FIXED, StudyTable, read_table

FORMATS = ("md", "latex", "csv")


def _columns(table: StudyTable) -> tuple[list[str], list[list[str]]]:
    """The main table: row keys, then per metric mean ± std (n) and, where the recipe states one, the
    published number and its source; then the trials of the row."""
    headers = list(table.row_keys) or ["variant"]
    with_published = [m for m in table.metrics if any(m in r.published for r in table.rows)]
    for metric in table.metrics:
        headers.append(table.headers[metric])
        if metric in with_published:
            headers += [f"{table.headers[metric]}, published", "source"]
    headers.append("trials")
    rows = []
    for row in table.rows:
        cells = list(row.variant.values()) or ["all"]
        for metric in table.metrics:
            cells.append(row.cells[metric].text(".2f" if metric in FIXED else ".3g"))
            if metric in with_published:
                published = row.published.get(metric, [])
                cells += ["; ".join(p.text for p in published) or "–", "; ".join(p.source for p in published) or "–"]
        cells.append(row.counts)
        rows.append(cells)
    return headers, rows


def main_table(table: StudyTable) -> Table:
    headers, rows = _columns(table)
    return Table(f"Study {table.manifest.name}: mean ± std (n) over {_replicates(table)}", headers, rows,
                 note="n: trials with the number (failed trials count in 'trials', not in n); std: sample std (n − 1).")


def _replicates(table: StudyTable) -> str:
    keys = [k for k in table.manifest.vary if k not in table.row_keys]
    return ", ".join(keys) if keys else "trials"


def trials_table(table: StudyTable) -> Table:
    headers = ["trial", *table.manifest.vary, "state", *(table.headers[m] for m in table.metrics), "CPU s", "reason"]
    rows = []
    for result in table.results:
        record = result.record
        rows.append([record.id, *(record.values[k] for k in table.manifest.vary), record.state,
                     *("–" if result.values[m] is None else f"{result.values[m]:.4g}" for m in table.metrics),
                     "–" if record.cpu_seconds is None else f"{record.cpu_seconds:.0f}", record.reason or ""])
    return Table("Trials (per-seed values)", headers, rows)


def latex(table: StudyTable) -> str:
    headers, rows = _columns(table)

    def esc(text: str) -> str:
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#"), ("_", r"\_"),
                     ("{", r"\{"), ("}", r"\}")):
            text = text.replace(a, b)
        return text.replace("±", r"$\pm$").replace("–", "--").replace("−", "$-$")

    lines = [r"\begin{tabular}{" + "l" * len(headers) + "}", r"\toprule",
             " & ".join(esc(h) for h in headers) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(str(c)) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def csv_text(table: StudyTable) -> str:
    """One line per variant: per metric its mean, std, n and the per-seed values (``seed=0:2.31;...``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = list(table.row_keys)
    for metric in table.metrics:
        header += [f"{metric} mean", f"{metric} std", f"{metric} n", f"{metric} per seed",
                   f"{metric} published", f"{metric} source"]
    writer.writerow([*header, "trials"])
    for row in table.rows:
        line: list[Any] = list(row.variant.values())
        for metric in table.metrics:
            cell = row.cells[metric]
            published = row.published.get(metric, [])
            line += ["" if cell.mean is None else repr(cell.mean), "" if cell.std is None else repr(cell.std), cell.n,
                     ";".join(f"{rep}:{value!r}" for rep, value in cell.values),
                     ";".join(p.text for p in published), ";".join(p.source for p in published)]
        writer.writerow([*line, row.counts])
    return buffer.getvalue()


def render(table: StudyTable, fmt: str) -> str:
    if fmt == "md":
        return main_table(table).markdown()
    if fmt == "latex":
        return latex(table)
    if fmt == "csv":
        return csv_text(table)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}")


def figure(table: StudyTable, out_dir: Path) -> list[Path]:
    """Per metric one panel: each variant's mean with its std as an error bar, every seed a dot, and
    the published number (where the recipe has one) as a red mark."""
    from ..results.figures import _figure, _save

    metrics = [m for m in table.metrics if any(r.cells[m].n for r in table.rows)]
    if not metrics:
        return []
    fig = _figure((max(4.0, 4.0 * len(metrics)), 4.5))
    labels = [", ".join(r.variant.values()) or "all" for r in table.rows]
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for x, row in enumerate(table.rows):
            cell = row.cells[metric]
            if cell.n:
                ax.errorbar([x], [cell.mean], yerr=[cell.std or 0.0], fmt="o", color="C0", capsize=5, markersize=6)
                ax.scatter([x] * cell.n, [v for _, v in cell.values], s=12, color="C1", alpha=0.7, zorder=3)
            for published in row.published.get(metric, []):
                value = _published_value(published.text)
                if value is not None:
                    ax.scatter([x], [value], marker="_", s=400, color="C3", zorder=4)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(table.headers[metric], fontsize=10)
        ax.set_xlabel(", ".join(table.row_keys), fontsize=8)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.grid(axis="y", alpha=0.3)
        if i == 0:
            ax.legend(handles=_legend(any(r.published for r in table.rows)), fontsize=7, loc="best")
    return _save(fig, out_dir / "figures" / "study")


def _legend(published: bool) -> list:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="C0", marker="o", linestyle="", label="mean ± std"),
               Line2D([], [], color="C1", marker="o", markersize=4, linestyle="", label="each seed")]
    if published:
        handles.append(Line2D([], [], color="C3", marker="_", markersize=12, linestyle="", label="published"))
    return handles


def _published_value(text: str) -> float | None:
    head = text.replace("±", " ").replace("–", " ").split()
    try:
        return float(head[0]) if "±" in text else (float(head[0]) + float(head[1])) / 2
    except (IndexError, ValueError):
        return None


def write_study_report(path: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """The table in every format, the figure and the page; returns their paths and the table."""
    table = read_table(path)
    out = Path(out_dir) if out_dir is not None else table.path
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for fmt, suffix in (("md", "md"), ("latex", "tex"), ("csv", "csv")):
        files[fmt] = out / f"table.{suffix}"
        atomic_write_text(files[fmt], render(table, fmt))
    figures = figure(table, out)
    _pages(table, out, figures)
    return {"table": table, "markdown_table": files["md"], "latex_table": files["latex"], "csv_table": files["csv"],
            "figures": figures, "html": out / "report.html", "markdown": out / "report.md"}


def _pages(table: StudyTable, out: Path, figures: list[Path]) -> None:
    from ..results.templates import environment

    rel = [Path(os.path.relpath(p, out)).as_posix() for p in figures if p.suffix == ".png"]
    context = {
        "title": f"sgl study {table.manifest.name}",
        "where": (f"{table.path}: {len(table.results)} trials of {table.manifest.spec} "
                  f"({table.manifest.executor} executor, {table.manifest.threads} thread(s) per trial)"),
        "main": main_table(table), "trials": trials_table(table),
        "figures": [Figure(r, "error bars per metric") for r in rel],
    }
    env = environment()
    atomic_write_text(out / "report.md", env.get_template("study.md.j2").render(context))
    atomic_write_text(out / "report.html", env.get_template("study.html.j2").render(context))
