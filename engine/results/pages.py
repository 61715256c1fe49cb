"""The report's tables and pages: ``report.html`` (self-contained: inline style, figures referenced
relatively) and its Markdown twin ``report.md``, and ``write_report`` which makes everything.

The results table follows the papers' layout: method, dataset, test error (%), params (M), search
cost (GPU-days on GPUs, CPU-hours on CPUs).
"""

from __future__ import annotations

import datetime as _dt
import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import ReportError
from ..rundir.files import atomic_write_text
from .figures import accuracy_figure, alpha_figures, cell_figures, eval_figure, group_figure, loss_figure
from .reading import RunData, _fmt, _fmt_params, _labels, _num, _pct, group_rows, load_run, result_rows


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
        val, test = l.val_acc, l.test_acc
        rows.append([name, l.kind, "yes" if l.searchable else "no",
                     _fmt(_pct(val.get("W"))), _fmt(_pct(val.get("V"))), _fmt(_pct(test.get("W"))), _fmt(_pct(test.get("V"))),
                     _fmt_params(_num(l.params_M)), str(l.genotype or "–")])
    return Table(f"Learners of {run.label}", ["Learner", "Kind", "Searchable", "Val acc W (%)", "Val acc V (%)",
                                              "Test acc W (%)", "Test acc V (%)", "Params (M)", "Genotype"], rows)


def expectations_table(run: RunData) -> Table | None:
    if not run.expectations:
        return None
    rows = [[r.metric, "missing" if r.value is None else f"{r.value:.4g}", f"{r.low:.4g} – {r.high:.4g}",
             "ok" if r.passed else "FAILED", r.source] for r in run.expectations]
    return Table(f"Expectations of {run.label}", ["Metric", "Value", "Expected", "Result", "Source"], rows,
                 note="The spec's expect: section checked against summary.json.")


def evaluations_table(run: RunData) -> Table | None:
    evaluations = run.evaluations
    if not evaluations:
        return None
    rows = []
    for ev in evaluations:
        unit = "GPU-hours" if ev.device == "cuda" else "CPU-hours"
        hours = _num(ev.device_hours)
        rows.append([ev.stage, ev.genotype, ev.dataset, str(ev.epochs),
                     _fmt(_num(ev.test_error_final)), _fmt(_num(ev.test_error_best)),
                     _fmt_params(_num(ev.params_M)), _fmt(_num(ev.madds_M), 1),
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
    failed = [(run.path, r) for run in runs for r in run.expectations if not r.passed]
    return {"html": html_path, "markdown": md_path, "figures": figures, "rows": rows, "groups": group_list,
            "failed_expectations": failed}


def _write_pages(runs, rows, group_list, per_run, group_figs, out_dir: Path, html_path: Path, md_path: Path) -> None:
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
        line = f"{run.path} — spec {run.name}, seed {run.seed}, status {run.status}"
        for note in run.notes:
            line += f"; {note}"
        h.append(f"<p>{html.escape(line)}</p>")
        m.append(line + "\n")
        table(learners_table(run))
        table(evaluations_table(run))
        table(expectations_table(run))
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
