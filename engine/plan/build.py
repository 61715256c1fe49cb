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
from typing import Any, Mapping

from pydantic import BaseModel

from sgl import registry

from ..errors import PlanError, PlanIssue
from .checks import (Group, check_batches, check_evaluate, check_expectations, check_group, check_learners, check_train_stage,
                     data_warnings, memory_warnings)
from .graph import graph, passes
from .phases import growing_phases, net_epochs, with_ramps
from .settings import DataPlan, EarlyStopRule, ExpectationPlan, LossWeights, RunSettings, TrackerPlan
from .types import (
    Action,
    DeriveStagePlan,
    EvaluateStagePlan,
    LearnerPlan,
    NetworkPlan,
    RunPlan,
    StagePlan,
    TrainStagePlan,
)

__all__ = ["PlanError", "PlanIssue", "learner_seed", "plan"]


def learner_seed(run_seed: int, name: str) -> int:
    """A learner's seed from the run seed and its name: stable when learners are added or reordered."""
    digest = hashlib.sha256(f"{run_seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def plan(spec: BaseModel, base_dir: Path | None = None, stated_in: Mapping[int, str] | None = None,
         spec_file: str | None = None) -> RunPlan:
    """Compile a validated spec into a RunPlan, or raise PlanError listing every problem.

    ``stated_in`` maps each ``expect:`` entry to the file that states it and ``spec_file`` names the
    spec itself, so that an expectation inherited through ``extends`` says so.
    """
    group = Group(spec)
    issues = check_group(spec, group) + check_learners(group)
    data = _data_plan(spec)
    issues += check_batches(spec, group, data)
    iterations = data.examples["train"] // spec.data.batch_size if data.examples["train"] is not None else None
    phases, phase_issues = growing_phases(spec.stages, group)
    issues += phase_issues
    loss_weights = LossWeights(labeled=spec.loss_weights.labeled, pseudo=spec.loss_weights.pseudo)
    total = sum(s.epochs for s in spec.stages if s.type == "train")
    stages: list[StagePlan] = []
    epoch = 0
    for index, stage in enumerate(spec.stages):
        if stage.type == "derive":
            stages.append(DeriveStagePlan(index=index, name=stage.name))
        elif stage.type == "evaluate":
            issues += check_evaluate(stage, index, group)
            evaluate, problem = _evaluate_stage(stage, index, spec.seed, base_dir)
            issues += problem
            stages.append(evaluate)
        else:
            issues += check_train_stage(stage, index, group)
            stages.append(_train_stage(stage, index, group, epoch, phases[index], iterations, loss_weights,
                                       _measured(stage.epochs, epoch, total, spec.data.val_every)))
            epoch += stage.epochs
    issues += [PlanIssue(("hypergradient", "method"), problem) for problem in spec.hypergradient.check(spec.optim.weights)]
    issues += check_expectations(spec, group)
    if issues:
        raise PlanError(issues)
    stages = with_ramps(stages, group)
    learners = {k: _learner_plan(spec, group, k, stages) for k in group.names}
    nodes, edges = graph(learners, stages, spec.hypergradient)
    return RunPlan(
        name=spec.name, description=spec.description, seed=spec.seed, deterministic=spec.deterministic, data=data,
        learners=learners, stages=tuple(stages), loss_weights=loss_weights, labeler=spec.pseudo_labels,
        hypergradient=spec.hypergradient, grad_clip=spec.optim.grad_clip, run=_run_settings(spec),
        expect=_expectations(spec, stated_in or {}, spec_file),
        warnings=tuple(memory_warnings(spec, group) + data_warnings(spec, base_dir)),
        nodes=nodes, edges=edges, passes=passes(spec.hypergradient, learners, group.steps),
    )


# --------------------------------------------------------------------------- the parts of the plan


def _run_settings(spec: BaseModel) -> RunSettings:
    """The run section, with its trackers resolved: those listed (each required), else TensorBoard
    as ``run.tensorboard`` says (``auto``: when installed)."""
    run = spec.run
    if run.trackers is not None:
        trackers = tuple(TrackerPlan(t.name, t.experiment or spec.name, t.uri, dict(t.options), required=True)
                         for t in run.trackers)
    elif run.tensorboard == "off":
        trackers = ()
    else:
        trackers = (TrackerPlan("tensorboard", spec.name, None, {}, required=run.tensorboard == "on"),)
    fields = run.model_dump(exclude={"trackers"})
    return RunSettings(**fields, trackers=trackers)


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
    val = examples["val"]
    measured = None if val is None else val if data.val_subset is None else min(val, data.val_subset)
    return DataPlan(dataset=data.dataset, split_train=data.split.train, split_val=data.split.val,
                    shuffle=data.split.shuffle, subset=data.subset, unlabeled=data.unlabeled, batch_size=data.batch_size,
                    eval_batch_size=data.eval_batch_size, num_workers=data.num_workers, examples=examples,
                    batches=data.batches, val_every=data.val_every, val_subset=data.val_subset, val_measured=measured)


def _measured(epochs: int, first_epoch: int, total: int, every: int) -> tuple[int, ...]:
    """Epochs of a stage that measure D_val: every ``every``-th of the search, the stage's last and
    the search's last."""
    return tuple(e for e in range(epochs)
                 if (first_epoch + e + 1) % every == 0 or first_epoch + e + 1 == total or e + 1 == epochs)


def _train_stage(stage: BaseModel, index: int, group: Group, first_epoch: int, growing_phase: dict[str, int],
                 iterations: int | None, loss_weights: LossWeights, measured: tuple[int, ...]) -> TrainStagePlan:
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
    rule = stage.early_stop
    return TrainStagePlan(
        index=index, name=stage.name, first_epoch=first_epoch, epochs=stage.epochs, actions=tuple(actions),
        arch_from_epoch=first_epoch + stage.arch_start if "A" in stage.steps else None,
        iterations_per_epoch=iterations,
        optimizer_steps=(weight_steps + arch_steps) if iterations is not None else None,
        growing_phase=growing_phase,
        streams=tuple(streams),
        stepped=tuple(sorted((k, a.step) for a in actions if a.step in ("W", "V") for k in a.learners)),
        # Without stage 2 the architecture gradient flows through W and its plain CE loss.
        arch_loss_weights=loss_weights if "V" in stage.steps else LossWeights(labeled=1.0, pseudo=0.0),
        measured_epochs=measured,
        early_stop=EarlyStopRule(metric=rule.metric, patience=rule.patience) if rule is not None else None,
    )


def _evaluate_stage(stage: Any, index: int, run_seed: int, base_dir: Path | None) -> tuple[EvaluateStagePlan, list[PlanIssue]]:
    """The stage with its protocol's own config and, for a named or file architecture, that architecture."""
    architecture, issues = None, []
    if stage.genotype is not None:
        try:
            architecture = registry.resolve_architecture(stage.genotype, base_dir)
        except (ValueError, OSError) as exc:
            issues.append(PlanIssue(("stages", index, "genotype"), str(exc)))
    config = registry.get("protocol", stage.protocol).config
    protocol = config.model_validate({name: getattr(stage, name) for name in config.model_fields})
    seed = run_seed if stage.seed is None else stage.seed
    return EvaluateStagePlan(index=index, name=stage.name, learner=stage.learner, architecture=architecture,
                             given_as=None if stage.genotype is None else str(stage.genotype),
                             protocol=protocol, seed=seed, seed_from="run" if stage.seed is None else "stage"), issues


def _learner_plan(spec: BaseModel, group: Group, name: str, stages: list[StagePlan]) -> LearnerPlan:
    config = group.configs[name]
    train = [s for s in stages if isinstance(s, TrainStagePlan)]
    phases = group.growing_phases(name)
    networks = {}
    for net in group.networks:
        # A growing space builds new networks in each phase: their schedules span that phase.
        horizons = tuple(net_epochs(train, name, net, phase) for phase in range(phases))
        networks[net] = NetworkPlan(net, spec.optim.weights, spec.optim.schedule, horizons)
    searchable = config.searchable
    clip = spec.optim.arch_grad_clip
    clip = spec.optim.grad_clip if clip == "grad_clip" else clip
    last = "V" if group.has_v else "W"
    return LearnerPlan(
        name=name, kind=config.kind, searchable=searchable, seed=learner_seed(spec.seed, name), config=config,
        networks=networks, arch_optimizer=spec.optim.arch if searchable else None,
        arch_net=last if searchable else None, final_net=last,
        peers=group.peers[name], growing_phases=phases, arch_grad_clip=clip if searchable else None,
        fused=spec.run.fused and searchable,
    )


def _expectations(spec: BaseModel, stated_in: Mapping[int, str], spec_file: str | None) -> tuple[ExpectationPlan, ...]:
    out = []
    for i, e in enumerate(spec.expect):
        low, high = e.bounds
        where = stated_in.get(i, spec_file or "")
        out.append(ExpectationPlan(metric=e.metric, low=low, high=high, source=e.source, stated_in=where,
                                   inherited=spec_file is not None and where != spec_file))
    return tuple(out)
