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

from sgl.registry.spaces.genotype import Genotype

from ..run import records as R
from ..errors import ReportError
from ..run.expectations import check
from ..rundir.layout import RunDir, read_json, read_jsonl


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
    expectations: list[dict[str, Any]] = field(default_factory=list)  # the spec's expect: against the summary

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
    run_dir = RunDir(Path(path), writer=False)
    path = run_dir.path
    if not run_dir.is_run():
        raise ReportError(f"{str(path)!r} is not an sgl run directory (no run.json, summary.json or metrics.jsonl)")
    info = read_json(run_dir.run_info)
    summary = run_dir.read_summary()
    name = str(summary.get("name") or info.get("name") or path.name)
    records = read_jsonl(run_dir.metrics)
    run = RunData(path=path, label=label or name, name=name, info=info, summary=summary)
    run.expectations = _expectations(run_dir, summary)
    run.iters = _dedupe(R.of_kind(records, R.ITER), lambda r: (r.get(R.LEARNER), r.get(R.STAGE_OF_SEARCH), r.get(R.STEP)))
    run.epochs = _dedupe(R.of_kind(records, R.EPOCH), lambda r: (r.get(R.LEARNER), r.get(R.STAGE_OF_SEARCH), r.get(R.EPOCH_INDEX)))
    run.evals = _dedupe(R.of_kind(records, R.EVAL_EPOCH), lambda r: (r.get(R.STAGE_OF_EVAL), r.get(R.EPOCH_INDEX)))
    if run_dir.genotypes.is_dir():
        for file in sorted(run_dir.genotypes.glob("*.json")):
            try:
                run.genotypes[file.stem] = Genotype.load(file)
            except (ValueError, OSError):
                continue
        for learner, file in run_dir.genotype_histories().items():
            history = _dedupe(read_jsonl(file), lambda r: r.get("epoch"))
            if history:
                run.histories[learner] = history
    return run


def _expectations(run_dir: RunDir, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The resolved spec's ``expect:`` checked against the summary (a finished run's only)."""
    if summary.get("status") != "completed" or not run_dir.resolved_spec.is_file():
        return []
    from ruamel.yaml import YAML

    try:
        spec = YAML(typ="safe", pure=True).load(run_dir.resolved_spec.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - a torn or edited file: nothing to check, the report still renders
        return []
    expect = spec.get("expect") if isinstance(spec, dict) else None
    if not isinstance(expect, list):
        return []
    entries = [e for e in expect if isinstance(e, dict) and "metric" in e and ("range" in e or "value" in e)]
    return check(entries, summary)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def _labels(paths: list[Path]) -> list[str]:
    """File-safe labels: the spec name and the run folder's name, made unique."""
    out, seen = [], set()
    for path in paths:
        run_dir = RunDir(path, writer=False)
        info, summary = read_json(run_dir.run_info), run_dir.read_summary()
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
