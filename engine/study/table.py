"""A study's numbers: each trial's metrics from its run directory, and one row per variant with the
mean ± std (n) of each metric over its replicates (the seeds), the per-seed values, and the
published numbers of the recipe's ``expect:`` that speak of the same metric, with their sources.

A variant is a combination of the values of the table's row keys; trials that differ only in the
other varied keys are its replicates. Failed trials count in a row's trials, not in its n.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..expectations import lookup
from ..results.reading import RunData, result_rows
from ..rundir.reader import RunFiles
from ..specs.study import NAMED_METRICS
from ..summary import Summary
from .launch import summary_of
from .manifest import Manifest, StudyDir, TrialRecord

#: How a metric's numbers are printed: percentages and minutes to two decimals, others to three digits.
FIXED = ("test_error", "test_error_best", "wall_time")
_HEADERS = {"test_error": "test error (%)", "test_error_best": "best test error (%)", "params": "params (M)",
            "wall_time": "wall time (min)"}


@dataclass
class TrialResult:
    record: TrialRecord
    run_dir: Path
    summary: Summary | None
    values: dict[str, float | None]
    replicate: str                     # the values of the keys that are not rows (seed=1)


@dataclass
class Cell:
    values: list[tuple[str, float]]    # (replicate, value) of the trials that have one

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(v for _, v in self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(v for _, v in self.values) if len(self.values) > 1 else None

    def text(self, spec: str = ".2f") -> str:
        if not self.values:
            return "– (0)"
        spread = f" ± {self.std:{spec}}" if self.std is not None else ""
        return f"{self.mean:{spec}}{spread} ({self.n})"


@dataclass
class Published:
    text: str       # 2.76 ± 0.09, or 2.5 – 3.0
    source: str


@dataclass
class Row:
    variant: dict[str, str]
    trials: list[TrialResult]
    cells: dict[str, Cell] = field(default_factory=dict)
    published: dict[str, list[Published]] = field(default_factory=dict)

    @property
    def counts(self) -> str:
        done = sum(t.record.state == "completed" for t in self.trials)
        failed = sum(t.record.state == "failed" for t in self.trials)
        return f"{done}/{len(self.trials)}" + (f" ({failed} failed)" if failed else "")


@dataclass
class StudyTable:
    path: Path
    manifest: Manifest
    metrics: list[str]
    headers: dict[str, str]
    rows: list[Row]
    results: list[TrialResult]

    @property
    def row_keys(self) -> list[str]:
        return self.manifest.rows


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def metric_values(run_dir: Path, summary: Summary | None, metrics: list[str]) -> tuple[dict[str, float | None], str | None]:
    """Each metric of a completed trial (None where the run has no such number), and the search cost's unit."""
    if summary is None or summary.status != "completed":
        return {m: None for m in metrics}, None
    row = result_rows(RunData(files=RunFiles(run_dir), label=run_dir.name, name=summary.name, summary=summary))[0]
    named = {"test_error": row["test_error_final"], "test_error_best": row["test_error_best"],
             "params": row["params_M"], "search_cost": row["search_cost"],
             "wall_time": summary.search_cost.wall_seconds / 60.0}
    data = summary.to_json()
    return {m: _num(named[m] if m in NAMED_METRICS else lookup(data, m)) for m in metrics}, row["search_cost_unit"]


def read_table(path: str | Path) -> StudyTable:
    sdir = StudyDir(path)
    manifest = sdir.read()
    metrics = manifest.metrics
    results, unit = [], None
    for record in manifest.trials:
        run_dir = sdir.trial(record.id)
        summary = summary_of(run_dir) if run_dir.is_dir() else None
        values, found_unit = metric_values(run_dir, summary, metrics)
        unit = unit or found_unit
        replicate = ", ".join(f"{k}={v}" for k, v in record.values.items() if k not in manifest.rows) or record.id
        results.append(TrialResult(record, run_dir, summary, values, replicate))
    headers = {m: _HEADERS.get(m, m) for m in metrics}
    if "search_cost" in headers:
        headers["search_cost"] = f"search cost ({unit or 'device-hours'})"
    rows: dict[tuple[str, ...], Row] = {}
    for result in results:
        variant = {k: result.record.values[k] for k in manifest.rows}
        rows.setdefault(tuple(variant.values()), Row(variant, [])).trials.append(result)
    for row in rows.values():
        for metric in metrics:
            row.cells[metric] = Cell([(t.replicate, t.values[metric]) for t in row.trials if t.values[metric] is not None])
        row.published = _published(row, metrics)
    return StudyTable(sdir.path, manifest, metrics, headers, list(rows.values()), results)


def _published(row: Row, metrics: list[str]) -> dict[str, list[Published]]:
    """The recipe's ``expect:`` entries about each metric (from the variant's first set-up trial)."""
    expect = []
    for trial in row.trials:
        resolved = trial.run_dir / "spec.resolved.yaml"
        if resolved.is_file():
            expect = _expectations(resolved)
            break
    out: dict[str, list[Published]] = {}
    for metric in metrics:
        for e in expect:
            if _speaks_of(e.metric, metric):
                text = f"{e.value:g} ± {e.tolerance:g}" if e.value is not None else f"{e.bounds[0]:g} – {e.bounds[1]:g}"
                out.setdefault(metric, []).append(Published(text, e.source))
    return out


def _expectations(resolved: Path) -> list[Any]:
    from ..errors import SpecError
    from ..specs.load import load_spec

    try:
        return list(load_spec(resolved)[0].expect)
    except SpecError:
        return []


def _speaks_of(path: str, metric: str) -> bool:
    """Whether an ``expect:`` metric (a path into summary.json) is the table's ``metric``."""
    if metric == "test_error":
        return path.startswith("evaluations.") and path.endswith(".test_error_final")
    if metric == "test_error_best":
        return path.startswith("evaluations.") and path.endswith(".test_error_best")
    if metric == "params":
        return path.endswith(".params_M")
    if metric == "search_cost":
        return path in ("search_cost.hours", "search_cost.device_hours")
    return path == metric
