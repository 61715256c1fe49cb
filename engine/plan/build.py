"""Spec → RunPlan: the explicit, checked plan that is execution's only input.

The planner decides what users must not set by hand: which learners get which steps and in what
order, who learns from whose pseudo-labels, which network the architecture gradient flows
through, each network's schedule horizon, each stage's growing phase, per-learner seeds, and
which batch streams an iteration reads. Every inconsistency is reported with its key path, so
the CLI can point at the line of the spec.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import PlanError, PlanIssue
from .checks import Group, check_batches, check_evaluate, check_expectations, check_group, check_train_stage, memory_warnings
from .types import (
    Action,
    DataPlan,
    DeriveStagePlan,
    Edge,
    EvaluateStagePlan,
    LearnerPlan,
    NetworkPlan,
    Node,
    RunPlan,
    StagePlan,
    TrainStagePlan,
    node_id,
)

__all__ = ["PlanError", "PlanIssue", "learner_seed", "plan"]


def learner_seed(run_seed: int, name: str) -> int:
    """A learner's seed from the run seed and its name: stable when learners are added or reordered."""
    digest = hashlib.sha256(f"{run_seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def plan(spec: BaseModel, base_dir: Path | None = None) -> RunPlan:
    """Compile a validated spec into a RunPlan, or raise PlanError listing every problem."""
    group = Group(spec)
    issues = check_group(spec, group)
    data = _data_plan(spec)
    issues += check_batches(spec, group, data)
    iterations = data.examples["train"] // spec.data.batch_size if data.examples["train"] is not None else None

    phases, phase_issues = _growing_phases(spec, group)
    issues += phase_issues
    stages: list[StagePlan] = []
    epoch = 0
    for index, stage in enumerate(spec.stages):
        if stage.type == "derive":
            stages.append(DeriveStagePlan(index=index, name=stage.name))
        elif stage.type == "evaluate":
            issues += check_evaluate(stage, index, group, base_dir)
            stages.append(EvaluateStagePlan(index=index, name=stage.name, learner=stage.learner, genotype=stage.genotype,
                                            protocol=stage, seed=spec.seed if stage.seed is None else stage.seed))
        else:
            issues += check_train_stage(stage, index, group)
            stages.append(_train_stage(stage, index, group, epoch, phases[index], iterations))
            epoch += stage.epochs
    issues += [PlanIssue(("hypergradient", "method"), problem) for problem in spec.hypergradient.check(spec.optim.weights)]
    issues += check_expectations(spec, group)
    if issues:
        raise PlanError(issues)
    stages = _with_ramps(stages, group)
    learners = {k: _learner_plan(spec, group, k, stages) for k in group.names}
    nodes, edges = _graph(learners, stages, spec.hypergradient)
    return RunPlan(
        name=spec.name, description=spec.description, seed=spec.seed, deterministic=spec.deterministic, data=data,
        learners=learners, stages=tuple(stages), loss_weights=spec.loss_weights, labeler=spec.pseudo_labels,
        hypergradient=spec.hypergradient, grad_clip=spec.optim.grad_clip, run=spec.run, expect=tuple(spec.expect),
        warnings=tuple(memory_warnings(spec, group)),
        nodes=nodes, edges=edges, passes=_passes(spec.hypergradient, learners, group.steps),
    )


def _growing_phases(spec: BaseModel, group: Group) -> tuple[dict[int, dict[str, int]], list[PlanIssue]]:
    """Per training stage (by index), each searchable learner's growing phase (0-based).

    Stages may name their phase (``growing_phase``, 1-based; a stage without one stays in the phase
    before it). When none does, each stage with A-steps after the first opens the next phase, so
    ``[W], [A W PL V], [W], [A W PL V]`` is two phases of a W-only stage and a search stage each.
    """
    train = [(i, s) for i, s in enumerate(spec.stages) if s.type == "train"]
    issues: list[PlanIssue] = []
    explicit = any(s.growing_phase is not None for _, s in train)
    shared: dict[int, int] = {}
    current, arch_stages = 0, 0
    for index, stage in train:
        if explicit:
            named = stage.growing_phase - 1 if stage.growing_phase is not None else current
            if named not in (current, current + 1) or (not shared and named != 0):
                issues.append(PlanIssue(("stages", index, "growing_phase"), f"growing phases run in order from 1: "
                                        f"after phase {current + 1} comes {current + 1} or {current + 2}, not {named + 1}"))
            current = named
        else:
            current = arch_stages
            arch_stages += "A" in stage.steps
        shared[index] = current
    used = max(shared.values(), default=0) + 1 if explicit else max(arch_stages, 1)
    for k in group.searchable:
        count = group.growing_phases(k)
        if count > 1 and count != used:
            has = f"its stages name {used}" if explicit else f"the spec has {used} stage(s) with A-steps"
            issues.append(PlanIssue(("learners", k), f"{count} growing phases, but {has}; give one such stage per "
                                                     "phase, or name each stage's growing_phase (1, 2, ...)"))
    phases = {index: {k: min(p, group.growing_phases(k) - 1) for k in group.searchable} for index, p in shared.items()}
    return phases, issues


def _with_ramps(stages: list[StagePlan], group: Group) -> list[StagePlan]:
    """Add to each training stage where each growing learner's networks stand in their phase."""
    from dataclasses import replace

    train = [s for s in stages if isinstance(s, TrainStagePlan)]
    out = []
    for stage in stages:
        if not isinstance(stage, TrainStagePlan):
            out.append(stage)
            continue
        ramps = {}
        for k, phase in stage.growing_phase.items():
            if group.growing_phases(k) == 1:
                continue
            mates = [s for s in train if s.growing_phase.get(k) == phase]
            arch_from = next((s.arch_from_epoch for s in mates if s.arch_from_epoch is not None), None)
            ramps[k] = {}
            for net in group.networks:
                trains = [s for s in mates if any(a.step == net for a in s.actions)]
                before = sum(s.epochs for s in trains if s.first_epoch < stage.first_epoch)
                span = sum(s.epochs for s in trains)
                arch = span if arch_from is None else sum(
                    max(0, min(s.epochs, arch_from - s.first_epoch)) for s in trains)
                ramps[k][net] = (before, span, arch)
        out.append(replace(stage, ramps=ramps))
    return out


# --------------------------------------------------------------------------- the parts of the plan


def _data_plan(spec: BaseModel) -> DataPlan:
    data = spec.data
    total = data.dataset.num_train()
    if total is not None and data.subset is not None:
        total = min(total, data.subset)
    if total is None:
        examples: dict[str, int | None] = {"train": None, "val": None}
    else:
        train = math.floor(total * data.split.train)
        examples = {"train": train, "val": min(math.floor(total * data.split.val), total - train)}
    return DataPlan(dataset=data.dataset, split_train=data.split.train, split_val=data.split.val,
                    shuffle=data.split.shuffle, subset=data.subset, unlabeled=data.unlabeled, batch_size=data.batch_size,
                    eval_batch_size=data.eval_batch_size, num_workers=data.num_workers, examples=examples,
                    batches=data.batches, val_every=data.val_every, val_subset=data.val_subset)


def _train_stage(stage: BaseModel, index: int, group: Group, first_epoch: int, growing_phase: dict[str, int],
                 iterations: int | None) -> TrainStagePlan:
    actions: list[Action] = []
    for step in stage.steps:
        learners = group.searchable if step == "A" else group.producers if step == "PL" else group.names
        if learners:
            actions.append(Action(step, tuple(learners)))
    weight_steps = sum(len(a.learners) for a in actions if a.step in ("W", "V")) * stage.epochs * (iterations or 0)
    arch_steps = len(group.searchable) * (stage.epochs - stage.arch_start) * (iterations or 0) if "A" in stage.steps else 0
    streams = ["train"]
    if "PL" in stage.steps:
        streams.append("unlabeled")
    if "A" in stage.steps:
        streams.append("val")
    return TrainStagePlan(
        index=index, name=stage.name, first_epoch=first_epoch, epochs=stage.epochs, actions=tuple(actions),
        arch_from_epoch=first_epoch + stage.arch_start if "A" in stage.steps else None,
        iterations_per_epoch=iterations,
        optimizer_steps=(weight_steps + arch_steps) if iterations is not None else None,
        growing_phase=growing_phase,
        streams=tuple(streams),
        stepped=tuple(sorted((k, a.step) for a in actions if a.step in ("W", "V") for k in a.learners)),
        early_stop=stage.early_stop,
    )


def _learner_plan(spec: BaseModel, group: Group, name: str, stages: list[StagePlan]) -> LearnerPlan:
    config = group.configs[name]
    train = [s for s in stages if isinstance(s, TrainStagePlan)]
    phases = group.growing_phases(name)
    networks = {}
    for net in group.networks:
        # A growing space builds new networks in each phase: their schedules span that phase.
        horizons = tuple(_net_epochs(train, name, net, phase) for phase in range(phases))
        networks[net] = NetworkPlan(net, spec.optim.weights, spec.optim.schedule, horizons)
    searchable = type(config).searchable
    clip = spec.optim.arch_grad_clip
    clip = spec.optim.grad_clip if clip == "grad_clip" else clip
    return LearnerPlan(
        name=name, kind=config.kind, searchable=searchable, seed=learner_seed(spec.seed, name), config=config,
        networks=networks, arch_optimizer=spec.optim.arch if searchable else None,
        arch_net=("V" if group.has_v else "W") if searchable else None,
        peers=group.peers[name], growing_phases=phases, arch_grad_clip=clip if searchable else None,
        fused=spec.run.fused and searchable,
    )


def _net_epochs(train: list[TrainStagePlan], learner: str, net: str, phase: int) -> int:
    """Epochs that train ``net`` of ``learner`` in its growing ``phase`` (all of them without phases)."""
    return sum(s.epochs for s in train if s.growing_phase.get(learner, 0) == phase and any(a.step == net for a in s.actions))


def _graph(learners: dict[str, LearnerPlan], stages: list[StagePlan], method: Any) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
    seen: dict[str, Node] = {}
    for stage in stages:
        if isinstance(stage, TrainStagePlan):
            for action in stage.actions:
                for k in action.learners:
                    seen.setdefault(node_id(action.step, k), Node(node_id(action.step, k), action.step, k))
        else:
            nid = f"{stage.type}:{stage.name}"
            seen.setdefault(nid, Node(nid, stage.type, getattr(stage, "learner", None)))
    edges = []
    for k, lp in learners.items():
        if node_id("PL", k) in seen:
            edges.append(Edge(node_id("W", k), node_id("PL", k), "data", f"W_{k} labels D_u"))
        for j in lp.peers:
            if node_id("V", k) in seen and node_id("PL", j) in seen:
                edges.append(Edge(node_id("PL", j), node_id("V", k), "data", f"q_{j}"))
        if lp.arch_net and node_id("A", k) in seen:
            edges.append(Edge(node_id(lp.arch_net, k), node_id("A", k), "grad", f"L_val through {lp.arch_net}_{k}"))
            if method.follows_pseudo_labels:
                for j in learners:
                    if k in learners[j].peers and node_id("V", j) in seen:
                        edges.append(Edge(node_id("V", j), node_id("A", k), "grad", f"L_val,{j} through q_{k}"))
    for node in seen.values():
        if node.step in ("derive", "evaluate"):
            sources = [node_id("A", k) for k in learners if node_id("A", k) in seen and (node.learner in (None, k))]
            edges += [Edge(src, node.id, "data", "architecture") for src in sources]
    return tuple(seen.values()), tuple(edges)


def _passes(method: Any, learners: dict[str, LearnerPlan], steps: set[str]) -> dict[str, dict[str, int]]:
    """Forward/backward passes per iteration, summed over learners, by step."""
    out: dict[str, dict[str, int]] = {}
    n = len(learners)
    if "W" in steps:
        out["W"] = {"forward": n, "backward": n}
    producers = {j for lp in learners.values() for j in lp.peers}
    if "PL" in steps and producers:
        out["PL"] = {"forward": len(producers), "backward": 0}
    if "V" in steps:
        with_u = sum(1 for lp in learners.values() if lp.peers)
        out["V"] = {"forward": n + with_u, "backward": n}
    if "A" in steps:
        totals = {"forward": 0, "backward": 0}
        for lp in learners.values():
            if lp.searchable:
                for key, value in method.passes(len(lp.peers)).items():
                    totals[key] = totals.get(key, 0) + value
        out["A"] = totals
    return out
