"""The report's tables: a ``Table`` (title, headers, rows, note) renders as HTML (the page template's
macro) and as Markdown; the builders make the results, groups, learners, evaluations and
expectations tables from ``reading``'s numbers.

Metric names are the run's own keys (``records``: ``val/W/acc``, ``test/V/acc``), as in
metrics.jsonl and the table printed at the end of ``sgl run``; a learner's *result network* is the
one its architecture was learned through (V with stage 2, else W), and the results table's headline
for a search is the best learner's result network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import records as R
from .reading import RunData, _fmt, _fmt_params, _num, _pct, trained_networks


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""

    def html(self) -> str:
        from .templates import environment

        return str(environment().get_template("macros.html.j2").module.table(self))

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
        "A run without an evaluation stage shows 100 − test/<net>/acc of its best learner's result network "
        "(V after a search with stage 2, else W). Params exclude the auxiliary head. "
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
        trained = trained_networks(run, name)
        val = {net: l.val_acc.get(net) if net in trained else None for net in R.NETWORKS}
        rows.append([name, l.kind, "yes" if l.searchable else "no", run.final_net(name),
                     *(_fmt(_pct(val[net])) for net in R.NETWORKS), *(_fmt(_pct(l.test_acc.get(net))) for net in R.NETWORKS),
                     _fmt_params(_num(l.params_M)), str(l.genotype or "–")])
    headers = ["Learner", "Kind", "Searchable", "Result network", *(f"{R.val_acc(n)} (%)" for n in R.NETWORKS),
               *(f"test/{n}/acc (%)" for n in R.NETWORKS), "Params (M)", "Genotype"]
    return Table(f"Learners of {run.label}", headers, rows,
                 note="val: accuracy on D_val after the last epoch (– for a network that never trained); test: on the "
                 "test set at the end. The result network is the one each learner's architecture was learned through.")


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
