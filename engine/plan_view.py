"""How a StageGraph is shown: text (graph + per-phase table), JSON, and Graphviz DOT."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .plan import StageGraph

STEP_TITLES = {
    "A": "architecture step (stage 3)",
    "W": "stage-1 weights step",
    "PL": "pseudo-labels on D_u",
    "V": "stage-2 weights step",
}


def plan_json(graph: StageGraph) -> str:
    return json.dumps(graph.to_dict(), indent=2, default=str)


def plan_dot(graph: StageGraph) -> str:
    lines = [f'digraph "{graph.name}" {{', "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica"];']
    for phase in graph.phases:
        lines.append(f'  subgraph "cluster_{phase.index}" {{ label="{phase.name} ({phase.type})";')
        ids = phase.order if phase.type == "train" else (f"{phase.type}:{phase.name}",)
        for nid in ids:
            lines.append(f'    "{phase.index}/{nid}" [label="{nid}"];')
        for a, b in zip(ids, ids[1:]):
            lines.append(f'    "{phase.index}/{a}" -> "{phase.index}/{b}" [style=invis];')
        lines.append("  }")
        for edge in graph.edges:
            if edge.src in ids and edge.dst in ids:
                style = "dashed" if edge.kind == "grad" else "solid"
                lines.append(f'  "{phase.index}/{edge.src}" -> "{phase.index}/{edge.dst}" [label="{edge.label}", style={style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def plan_text(graph: StageGraph, console: Console) -> None:
    console.print(f"[bold]plan[/bold] {graph.name}  seed {graph.seed}  hypergradient {graph.hypergradient}")
    console.print()
    console.print("[bold]learners[/bold]")
    for lp in graph.learners.values():
        role = "searchable" if lp.searchable else "fixed"
        extra = f", A through {lp.arch_net}" if lp.arch_net else ""
        peers = f", learns from {', '.join(lp.peers)}" if lp.peers else ""
        horizons = ", ".join(f"{n} schedule {e} ep" for n, e in lp.schedule_epochs.items())
        if lp.space_phases > 1:
            horizons = f"{lp.space_phases} growing phases, networks and schedules restart with each"
        console.print(f"  {lp.name}: {lp.kind} ({role}), seed {lp.seed}, networks {'+'.join(lp.networks)}{extra}{peers}; {horizons}")
    console.print()
    console.print("[bold]graph[/bold] (one iteration per training phase, in order)")
    for phase in graph.phases:
        if phase.type == "train":
            gate = ""
            if phase.arch_from_epoch is not None and phase.arch_from_epoch > phase.first_epoch:
                gate = f"  (A from epoch {phase.arch_from_epoch})"
            console.print(f"  {phase.name}: epochs {phase.first_epoch}–{phase.first_epoch + phase.epochs - 1}{gate}")
            for nid in phase.order:
                node = graph.node(nid)
                inputs = [e for e in graph.edges if e.dst == nid]
                reads = "; ".join(f"{'∇ ' if e.kind == 'grad' else ''}{e.label} ← {e.src}" for e in inputs)
                console.print(f"    {escape(f'{nid:<14}')} {STEP_TITLES[node.step]}" + (f"   [dim]{escape(reads)}[/dim]" if reads else ""))
        else:
            target = f" {phase.learner}" if phase.learner else ""
            console.print(f"  {phase.name}: {phase.type}{target}")
    console.print()
    table = Table(title="phases", title_justify="left")
    for column in ("phase", "type", "epochs", "learners", "steps / iteration", "iterations / epoch", "optimizer steps"):
        table.add_column(column, justify="right" if column in ("epochs", "iterations / epoch", "optimizer steps") else "left")
    for phase in graph.phases:
        if phase.type == "train":
            learners = sorted({graph.node(n).learner for n in phase.order})
            table.add_row(
                phase.name, phase.type, str(phase.epochs), ", ".join(learners), str(len(phase.order)),
                _num(phase.iterations_per_epoch), _num(phase.optimizer_steps),
            )
        else:
            table.add_row(phase.name, phase.type, "", phase.learner or "all searchable", "", "", "")
    console.print(table)
    if graph.passes:
        costs = ", ".join(f"{step} {p['forward']}F/{p['backward']}B" for step, p in graph.passes.items())
        console.print(f"passes per iteration (forward/backward, all learners): {costs}")


def _num(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"
