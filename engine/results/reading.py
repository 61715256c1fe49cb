"""Reading run directories for reports: their records, genotypes and the numbers of the results table.

Missing pieces (a run still going, a crashed run) leave out what they would have drawn. Test
errors come from evaluation stages (final and best, labelled); a run without one shows 100 − the
best learner's test accuracy of the search network, labelled as such. Runs are grouped by spec
name (or by ``groups``) and each group shows mean ± std over its runs (seeds).
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sgl.registry import Architecture

from .. import records as R
from ..errors import ReportError, RunDirError, SpecError
from ..expectations import check
from ..rundir.reader import RunFiles, open_run_dir
from ..summary import EvaluationResult, ExpectationResult, LearnerResult, Summary, SummaryUnreadable


@dataclass
class RunData:
    files: RunFiles
    label: str  # unique and file-safe among the reported runs
    name: str
    summary: Summary | None
    iters: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    architectures: dict[str, Architecture] = field(default_factory=dict)
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    expectations: list[ExpectationResult] = field(default_factory=list)  # the plan's expect: against the summary
    notes: list[str] = field(default_factory=list)  # what could not be read, said on the page
    final_nets: dict[str, str] = field(default_factory=dict)  # learner -> its result network, from the plan

    def final_net(self, learner: str) -> str:
        """The network the learner's architecture was learned through (V with stage 2, else W)."""
        if learner in self.final_nets:
            return self.final_nets[learner]
        result = self.learners.get(learner)
        return "V" if result is not None and ("V" in result.test_acc or "V" in result.val_acc) else "W"

    @property
    def path(self) -> Path:
        return self.files.path

    @property
    def seed(self) -> Any:
        if self.summary is not None:
            return self.summary.seed
        return _info(self.files).get("seed")

    @property
    def learners(self) -> dict[str, LearnerResult]:
        return self.summary.learners if self.summary is not None else {}

    @property
    def evaluations(self) -> list[EvaluationResult]:
        return self.summary.evaluations if self.summary is not None else []

    @property
    def status(self) -> str:
        return self.summary.status_text if self.summary is not None else "no summary (still running, or stopped)"

    @property
    def method(self) -> str:
        """Spec name, hypergradient and group size K (an evaluation-only run has neither)."""
        k = len(self.learners)
        if not k:
            return self.name
        hyper = self.summary.hypergradient if self.summary is not None else None
        return f"{self.name} ({hyper + ', ' if hyper else ''}K={k})"


def _info(files: RunFiles) -> dict[str, Any]:
    try:
        return files.info
    except RunDirError:
        return {}


def _summary(files: RunFiles, notes: list[str]) -> Summary | None:
    try:
        return files.summary
    except SummaryUnreadable as exc:
        notes.append(str(exc))
        return None


def _name(files: RunFiles, summary: Summary | None) -> str:
    return str((summary.name if summary is not None else None) or _info(files).get("name") or files.path.name)


def load_run(path: Path, label: str | None = None) -> RunData:
    try:
        files = open_run_dir(path)
    except RunDirError as exc:
        raise ReportError(str(exc)) from None
    notes: list[str] = []
    summary = _summary(files, notes)
    name = _name(files, summary)
    run = RunData(files=files, label=label or name, name=name, summary=summary, notes=notes)
    run.expectations = _expectations(run)
    run.final_nets = _final_nets(run)
    run.iters = files.metrics(R.ITER)
    run.epochs = files.metrics(R.EPOCH)
    run.evals = files.metrics(R.EVAL_EPOCH)
    run.architectures = dict(files.architectures)
    run.histories = files.histories()
    return run


def _expectations(run: RunData) -> list[ExpectationResult]:
    """The plan's ``expect:`` checked against the summary (a finished run's only)."""
    if run.summary is None or run.summary.status != "completed":
        return []
    try:
        expect = run.files.plan.expect
    except (SpecError, RunDirError) as exc:  # an edited or foreign spec: nothing to check, the report still renders
        run.notes.append(f"expectations not checked: {str(exc).splitlines()[0]}")
        return []
    return check(expect, run.summary.to_json())


def _final_nets(run: RunData) -> dict[str, str]:
    if not run.learners:
        return {}
    try:
        return {name: learner.final_net for name, learner in run.files.plan.learners.items()}
    except (SpecError, RunDirError, OSError):  # a hand-made or foreign run: the summary's networks decide
        return {}


def trained_networks(run: RunData, learner: str) -> set[str]:
    """The networks of a learner that trained in some epoch of the search (all of them when the
    run has no epoch lines to tell): before V trains, its accuracy is an untrained network's."""
    rows = [r for r in run.epochs if r.get(R.LEARNER) == learner]
    if not rows:
        return set(R.NETWORKS)
    return {net for net in R.NETWORKS for r in rows if r.get(R.train_loss(net)) is not None}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def _labels(paths: list[Path]) -> list[str]:
    """File-safe labels: the spec name and the run folder's name, made unique."""
    out, seen = [], set()
    for path in paths:
        files = RunFiles(path)
        name = _name(files, _summary(files, []))
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


def _search_cost(summary: Summary | None) -> tuple[float, str] | None:
    """``(value, unit)``: GPU-days on GPUs, CPU-hours on CPUs (device-hours: hours × processes)."""
    if summary is None:
        return None
    hours = _num(summary.search_cost.device_hours)
    if hours is None:
        return None
    if summary.search_cost.device == "cuda":
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
        "dataset": run.summary.dataset if run.summary is not None else "–", "seed": run.seed,
        "search_cost": cost[0] if cost else None, "search_cost_unit": cost[1] if cost else None,
    }
    rows = []
    for ev in run.evaluations:
        rows.append({
            **base,
            "source_key": f"evaluate:{ev.stage}",
            "source": f"evaluation stage '{ev.stage}': {ev.genotype}, {ev.epochs} epochs",
            "dataset": ev.dataset or base["dataset"],
            "test_error_final": _num(ev.test_error_final),
            "test_error_best": _num(ev.test_error_best),
            "params_M": _num(ev.params_M),
            "madds_M": _num(ev.madds_M),
        })
    if rows:
        return rows
    best = None  # (acc, learner, net, params): the best learner's result network
    for name, learner in run.learners.items():
        net = run.final_net(name)
        acc = _pct(learner.test_acc.get(net))
        if acc is not None and (best is None or acc > best[0]):
            best = (acc, name, net, _num(learner.params_M))
    return [{
        **base,
        "source_key": "search",
        "source": (f"search network, best learner ({best[1]}/{best[2]}: test/{best[2]}/acc)" if best
                   else "search (no test accuracy)"),
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
