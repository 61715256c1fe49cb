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

from .errors import PlanError, PlanIssue, did_you_mean
from .runplan import (
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


class _Group:
    """Facts about the learners that every part of the planner needs."""

    def __init__(self, spec: BaseModel) -> None:
        self.configs = spec.learners
        self.names = list(spec.learners)
        self.searchable = [n for n, c in spec.learners.items() if type(c).searchable]
        train = [s for s in spec.stages if s.type == "train"]
        self.steps = {step for s in train for step in s.steps}
        self.has_v = "V" in self.steps
        lam = spec.loss_weights.pseudo
        self.peers = {k: tuple(j for j in self.names if j != k) if self.has_v and lam > 0 else () for k in self.names}
        self.producers = sorted({j for ps in self.peers.values() for j in ps}, key=self.names.index)
        self.networks = ("W", "V") if self.has_v else ("W",)

    def growing_phases(self, name: str) -> int:
        config = self.configs[name]
        return config.growing_phases() if type(config).searchable else 1


def plan(spec: BaseModel, base_dir: Path | None = None) -> RunPlan:
    """Compile a validated spec into a RunPlan, or raise PlanError listing every problem."""
    group = _Group(spec)
    issues = _check_group(spec, group)
    data = _data_plan(spec)
    issues += _check_batches(spec, group, data)
    iterations = data.examples["train"] // spec.data.batch_size if data.examples["train"] is not None else None

    phases, phase_issues = _growing_phases(spec, group)
    issues += phase_issues
    stages: list[StagePlan] = []
    epoch = 0
    for index, stage in enumerate(spec.stages):
        if stage.type == "derive":
            stages.append(DeriveStagePlan(index=index, name=stage.name))
        elif stage.type == "evaluate":
            issues += _check_evaluate(stage, index, group, base_dir)
            stages.append(EvaluateStagePlan(index=index, name=stage.name, learner=stage.learner, genotype=stage.genotype,
                                            protocol=stage, seed=spec.seed if stage.seed is None else stage.seed))
        else:
            issues += _check_train_stage(stage, index, group)
            stages.append(_train_stage(stage, index, group, epoch, phases[index], iterations))
            epoch += stage.epochs
    issues += [PlanIssue(("hypergradient", "method"), problem) for problem in spec.hypergradient.check(spec.optim.weights)]
    issues += _check_expectations(spec, group)
    if issues:
        raise PlanError(issues)
    stages = _with_ramps(stages, group)
    learners = {k: _learner_plan(spec, group, k, stages) for k in group.names}
    nodes, edges = _graph(learners, stages, spec.hypergradient)
    return RunPlan(
        name=spec.name, description=spec.description, seed=spec.seed, deterministic=spec.deterministic, data=data,
        learners=learners, stages=tuple(stages), loss_weights=spec.loss_weights, labeler=spec.pseudo_labels,
        hypergradient=spec.hypergradient, grad_clip=spec.optim.grad_clip, run=spec.run, expect=tuple(spec.expect),
        nodes=nodes, edges=edges, passes=_passes(spec.hypergradient, learners, group.steps),
    )


# --------------------------------------------------------------------------- checks


def _check_group(spec: BaseModel, group: _Group) -> list[PlanIssue]:
    issues = []
    lam = spec.loss_weights.pseudo
    if group.steps and not group.names:
        issues.append(PlanIssue(("learners",), "a training stage needs at least one learner"))
    if group.has_v and lam > 0 and len(group.names) < 2:
        issues.append(PlanIssue(("loss_weights", "pseudo"), f"λ = {lam} > 0 needs at least two learners to learn from each other; set it to 0 for a single learner"))
    if group.has_v and spec.loss_weights.labeled == 0 and (lam == 0 or len(group.names) < 2):
        issues.append(PlanIssue(("loss_weights",), "stage 2 would have no loss: both weights are zero"))
    return issues


def _check_batches(spec: BaseModel, group: _Group, data: DataPlan) -> list[PlanIssue]:
    issues = []
    batch, train, val = spec.data.batch_size, data.examples["train"], data.examples["val"]
    if train is not None and train < batch and group.steps:
        issues.append(PlanIssue(("data", "batch_size"), f"batch size {batch} is larger than D_train ({train} examples)"))
    # A-steps read D_val; V-steps with peers read D_u (a split again): each must fill one batch too.
    if val is not None and val < batch and (("A" in group.steps and group.searchable)
                                            or (spec.data.unlabeled == "val" and group.producers)):
        issues.append(PlanIssue(("data", "batch_size"), f"batch size {batch} is larger than D_val ({val} examples)"))
    return issues


def _check_train_stage(stage: BaseModel, index: int, group: _Group) -> list[PlanIssue]:
    from sgl import registry

    where, steps, issues = ("stages", index), stage.steps, []
    if "A" in steps and not group.searchable:
        kinds = ", ".join(registry.names("search_space"))
        issues.append(PlanIssue(where + ("steps",), f"an A-step needs a searchable learner (kind {kinds}, ...)"))
    if "A" in steps and stage.arch_start >= stage.epochs:
        issues.append(PlanIssue(where + ("arch_start",), f"arch_start ({stage.arch_start}) must be below epochs ({stage.epochs}): no A-step would run"))
    if "V" in steps and group.producers and "PL" not in steps:
        issues.append(PlanIssue(where + ("steps",), "V learns from the peers' pseudo-labels: add PL before V (or set loss_weights.pseudo: 0)"))
    if "PL" in steps and not ("V" in steps and group.producers):
        issues.append(PlanIssue(where + ("steps",), "PL makes pseudo-labels that no V-step uses in this stage"))
    if "PL" in steps and "V" in steps and steps.index("PL") > steps.index("V"):
        issues.append(PlanIssue(where + ("steps",), "PL must come before V: V reads this iteration's pseudo-labels"))
    return issues


def _check_evaluate(stage: BaseModel, index: int, group: _Group, base_dir: Path | None) -> list[PlanIssue]:
    issues = []
    if stage.learner is not None:
        if stage.learner not in group.configs:
            hint = did_you_mean(stage.learner, group.names, cutoff=0.6)
            issues.append(PlanIssue(("stages", index, "learner"), f"no learner named {stage.learner!r}{hint}"))
        elif not type(group.configs[stage.learner]).searchable:
            issues.append(PlanIssue(("stages", index, "learner"), f"learner {stage.learner!r} is fixed: it has no genotype to evaluate"))
    if stage.genotype is not None:
        from sgl.registry.spaces.genotype import resolve_genotype

        try:
            resolve_genotype(stage.genotype, base_dir)  # a name, or a file that must hold a genotype
        except (ValueError, OSError) as exc:
            issues.append(PlanIssue(("stages", index, "genotype"), str(exc)))
    return issues


def _growing_phases(spec: BaseModel, group: _Group) -> tuple[dict[int, dict[str, int]], list[PlanIssue]]:
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


def _with_ramps(stages: list[StagePlan], group: _Group) -> list[StagePlan]:
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


_SUMMARY_KEYS = ("name", "status", "dataset", "hypergradient", "seed", "epochs_done", "learners", "search_cost",
                 "evaluations", "distributed", "early_stopped")


def _check_expectations(spec: BaseModel, group: _Group) -> list[PlanIssue]:
    """Metric paths that cannot exist in this run's summary (a typo in a key, learner or stage)."""
    issues = []
    evaluations = [s.name for s in spec.stages if s.type == "evaluate"]
    for i, expectation in enumerate(spec.expect):
        parts = expectation.metric.split(".")
        where = ("expect", i, "metric")
        if parts[0] not in _SUMMARY_KEYS:
            issues.append(PlanIssue(where, f"summary.json has no {parts[0]!r}{did_you_mean(parts[0], _SUMMARY_KEYS)}; "
                                           f"it has {', '.join(_SUMMARY_KEYS)}"))
        elif parts[0] == "learners" and (len(parts) < 2 or parts[1] not in group.names):
            name = parts[1] if len(parts) > 1 else ""
            issues.append(PlanIssue(where, f"no learner {name!r}{did_you_mean(name, group.names)}"))
        elif parts[0] == "evaluations" and (len(parts) < 2 or not (parts[1] in evaluations or
                                                                   (parts[1].isdigit() and int(parts[1]) < len(evaluations)))):
            name = parts[1] if len(parts) > 1 else ""
            issues.append(PlanIssue(where, f"no evaluate stage {name!r}{did_you_mean(name, evaluations)}"
                                           + (f"; the spec's: {', '.join(evaluations)}" if evaluations else "; the spec has none")))
    return issues


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


def _train_stage(stage: BaseModel, index: int, group: _Group, first_epoch: int, growing_phase: dict[str, int],
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


def _learner_plan(spec: BaseModel, group: _Group, name: str, stages: list[StagePlan]) -> LearnerPlan:
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
