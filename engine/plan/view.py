"""How a RunPlan is shown: text (learners, one iteration per stage, a table of stages), JSON, DOT —
and the spec it was compiled from, resolved (``sgl plan --resolved``, a run's spec.resolved.yaml)."""

from __future__ import annotations

import io
import json
import os
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .types import EvaluateStagePlan, RunPlan, TrainStagePlan

STEP_TITLES = {
    "A": "architecture step (stage 3)",
    "W": "stage-1 weights step",
    "PL": "pseudo-labels on D_u",
    "V": "stage-2 weights step",
}


def plan_dict(plan: RunPlan) -> dict[str, Any]:
    """The plan as JSON-ready data (``sgl plan --format json``, ``plan.json`` of a run)."""
    return _plain(plan)


def plan_json(plan: RunPlan) -> str:
    return json.dumps(plan_dict(plan), indent=2, default=str)


def _plain(value: Any) -> Any:
    """JSON-ready data: dataclasses, component configs and architectures become mappings."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", serialize_as_any=True)
    if is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, TrainStagePlan):
            out["order"] = list(value.order)
        return out
    if hasattr(value, "to_json"):  # an architecture
        return value.to_json()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def resolved_yaml(spec: BaseModel, base_dir: Path | None = None, target: Path | None = None, *,
                  exclude: frozenset[str] = frozenset()) -> str:
    """The spec with every default filled and the overrides applied, as YAML that runs unchanged.

    With ``target`` (the file it will be written to) in another folder than ``base_dir`` (the spec's),
    relative paths — dataset roots, ``run.output``, genotype files — are rebased onto ``target``'s
    folder, so they name the same files from there."""
    from ruamel.yaml import YAML

    data = spec.model_dump(mode="json", exclude=set(exclude))
    if target is not None and base_dir is not None:
        data = _rebased(spec.model_dump(exclude=set(exclude)), data, Path(base_dir), Path(target).parent)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    buffer = io.StringIO()
    buffer.write(f"# {spec.name}: the spec as run (defaults filled, overrides applied).\n")  # type: ignore[attr-defined]
    yaml.dump(data, buffer)
    return buffer.getvalue()


def _rebased(python: Any, plain: Any, base: Path, folder: Path) -> Any:
    """``plain`` (the JSON dump) with each relative path of ``python`` (the Python dump) made
    relative to ``folder`` instead of ``base``: Path fields, and genotype names that are files."""
    def move(path: str) -> str:
        return Path(os.path.relpath(os.path.abspath(base / path), os.path.abspath(folder))).as_posix()

    if isinstance(python, dict) and isinstance(plain, dict):
        out = {}
        for key, value in plain.items():
            if key == "genotype" and isinstance(value, str) and not Path(value).is_absolute() and (base / value).is_file():
                out[key] = move(value)
            else:
                out[key] = _rebased(python.get(key), value, base, folder)
        return out
    if isinstance(python, (list, tuple)) and isinstance(plain, list):
        return [_rebased(p, q, base, folder) for p, q in zip(python, plain)]
    if isinstance(python, Path) and not python.is_absolute():
        return move(str(python))
    return plain


def _stage_ids(stage) -> tuple[str, ...]:
    return stage.order if isinstance(stage, TrainStagePlan) else (f"{stage.type}:{stage.name}",)


def plan_dot(plan: RunPlan) -> str:
    lines = [f'digraph "{plan.name}" {{', "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica"];']
    for stage in plan.stages:
        lines.append(f'  subgraph "cluster_{stage.index}" {{ label="{stage.name} ({stage.type})";')
        ids = _stage_ids(stage)
        for nid in ids:
            lines.append(f'    "{stage.index}/{nid}" [label="{nid}"];')
        for a, b in zip(ids, ids[1:]):
            lines.append(f'    "{stage.index}/{a}" -> "{stage.index}/{b}" [style=invis];')
        lines.append("  }")
        for edge in plan.edges:
            if edge.src in ids and edge.dst in ids:
                style = "dashed" if edge.kind == "grad" else "solid"
                lines.append(f'  "{stage.index}/{edge.src}" -> "{stage.index}/{edge.dst}" [label="{edge.label}", style={style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _component(config) -> str:
    """A component config in one line: its name and the values that differ from its defaults."""
    data = config.model_dump(mode="json", exclude_defaults=True, serialize_as_any=True)
    key = next((k for k in ("name", "kind", "method", "protocol") if k in type(config).model_fields), None)
    label = str(getattr(config, key)) if key else type(config).__name__
    data.pop(key, None)
    extras = ", ".join(f"{k} {v}" for k, v in data.items())
    return f"{label} ({extras})" if extras else label


def _evaluation(stage: EvaluateStagePlan) -> str:
    """An evaluate stage in one line: its name, the protocol's values that differ from the
    protocol's defaults, and what it trains."""
    data = stage.protocol.model_dump(mode="json", exclude_defaults=True, serialize_as_any=True)
    data.pop("protocol", None)
    given = {"learner": stage.learner, "genotype": stage.given_as, "seed": stage.seed if stage.seed_from == "stage" else None}
    data.update({k: v for k, v in given.items() if v is not None})
    extras = ", ".join(f"{k} {v}" for k, v in data.items())
    return f"{stage.name} ({extras})" if extras else stage.name


def plan_text(plan: RunPlan, console: Console) -> None:
    console.print(f"[bold]plan[/bold] {plan.name}  seed {plan.seed}  hypergradient {escape(_component(plan.hypergradient))}")
    lw = plan.loss_weights
    console.print(f"stage-2 loss: w_lab {lw.labeled}, λ {lw.pseudo}; pseudo-labels {escape(_component(plan.labeler))}; "
                  f"grad clip {plan.grad_clip}")
    data = plan.data
    sizes = ", ".join(f"D_{k} {v:,}" for k, v in data.examples.items() if v is not None)
    subset = f", the first {data.subset:,} training images" if data.subset is not None else ""
    console.print(f"data: {escape(_component(data.dataset))}{subset}, batch {data.batch_size}, D_u = D_{data.unlabeled}"
                  + (f" ({sizes})" if sizes else ""))
    console.print()
    console.print("[bold]learners[/bold]")
    for lp in plan.learners.values():
        role = "searchable" if lp.searchable else "fixed"
        extra = f", A through {lp.arch_net}" if lp.arch_net else ""
        peers = f", learns from {', '.join(lp.peers)}" if lp.peers else ""
        console.print(f"  {lp.name}: {lp.kind} ({role}), seed {lp.seed}, networks {'+'.join(lp.networks)}{extra}{peers}")
        for net in lp.networks.values():
            horizons = " / ".join(f"{h} ep" for h in net.horizons)
            grow = f" (per growing phase: {horizons})" if lp.growing_phases > 1 else f" over {horizons}"
            console.print(f"    {net.name}: {escape(_component(net.optimizer))}, schedule {escape(_component(net.schedule))}{grow}")
        if lp.arch_optimizer is not None:
            clip = f", gradient clipped to norm {lp.arch_grad_clip}" if lp.arch_grad_clip is not None else ""
            console.print(f"    A: {escape(_component(lp.arch_optimizer))}{clip}")
    console.print()
    console.print("[bold]graph[/bold] (one iteration per training stage, in order)")
    for stage in plan.stages:
        _stage_text(plan, stage, console)
    console.print()
    console.print(_stage_table(plan))
    if plan.passes:
        costs = ", ".join(f"{step} {p['forward']}F/{p['backward']}B" for step, p in plan.passes.items())
        console.print(f"passes per iteration (forward/backward, all learners): {costs}")
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    for expectation in plan.expect:
        source = f"  [dim]{escape(expectation.source)}[/dim]" if expectation.source else ""
        inherited = f"  [dim](inherited from {escape(expectation.stated_in)})[/dim]" if expectation.inherited else ""
        console.print(f"expect {expectation.metric} in [{expectation.low:.6g}, {expectation.high:.6g}]{source}{inherited}")


def _stage_text(plan: RunPlan, stage, console: Console) -> None:
    if not isinstance(stage, TrainStagePlan):
        target = f" {stage.learner}" if getattr(stage, "learner", None) else ""
        protocol = f" ({escape(_evaluation(stage))})" if isinstance(stage, EvaluateStagePlan) else ""
        console.print(f"  {stage.name}: {stage.type}{target}{protocol}")
        return
    gate = ""
    if stage.arch_from_epoch is not None and stage.arch_from_epoch > stage.first_epoch:
        gate = f"  (A from epoch {stage.arch_from_epoch})"
    growing = {k: p + 1 for k, p in stage.growing_phase.items() if plan.learners[k].growing_phases > 1}
    grow = "  growing phase " + ", ".join(f"{k} {p}" for k, p in growing.items()) if growing else ""
    stop = ""
    if stage.early_stop is not None:
        stop = f"  (early stop: {stage.early_stop.metric} worse {stage.early_stop.patience} epochs in a row)"
    console.print(f"  {stage.name}: epochs {stage.first_epoch}–{stage.first_epoch + stage.epochs - 1}{gate}{grow}{stop}")
    for nid in stage.order:
        node = plan.node(nid)
        inputs = [e for e in plan.edges if e.dst == nid]
        reads = "; ".join(f"{'∇ ' if e.kind == 'grad' else ''}{e.label} ← {e.src}" for e in inputs)
        console.print(f"    {escape(f'{nid:<14}')} {STEP_TITLES[node.step]}" + (f"   [dim]{escape(reads)}[/dim]" if reads else ""))


def _stage_table(plan: RunPlan) -> Table:
    table = Table(title="stages", title_justify="left")
    numeric = ("epochs", "iterations / epoch", "optimizer steps")
    for column in ("stage", "type", "epochs", "learners", "steps / iteration", "iterations / epoch", "optimizer steps"):
        table.add_column(column, justify="right" if column in numeric else "left")
    for stage in plan.stages:
        if isinstance(stage, TrainStagePlan):
            learners = sorted({k for a in stage.actions for k in a.learners})
            table.add_row(stage.name, stage.type, str(stage.epochs), ", ".join(learners), str(len(stage.order)),
                          _num(stage.iterations_per_epoch), _num(stage.optimizer_steps))
        elif isinstance(stage, EvaluateStagePlan):
            table.add_row(stage.name, stage.type, str(stage.epochs), stage.learner or str(stage.given_as), "", "", "")
        else:
            table.add_row(stage.name, stage.type, "", "all searchable", "", "", "")
    return table


def _num(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"
