"""Growing phases (P-DARTS): which phase each training stage belongs to, and where each growing
learner's per-phase schedules stand when a stage begins."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import PlanIssue
from .checks import Group
from .types import StagePlan, TrainStagePlan


def growing_phases(stages: list[Any], group: Group) -> tuple[dict[int, dict[str, int]], list[PlanIssue]]:
    """Per training stage (by index), each searchable learner's growing phase (0-based).

    Stages may name their phase (``growing_phase``, 1-based; a stage without one stays in the phase
    before it). When none does, each stage with A-steps after the first opens the next phase, so
    ``[W], [A W PL V], [W], [A W PL V]`` is two phases of a W-only stage and a search stage each.
    """
    train = [(i, s) for i, s in enumerate(stages) if s.type == "train"]
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


def with_ramps(stages: list[StagePlan], group: Group) -> list[StagePlan]:
    """Add to each training stage where each growing learner's networks stand in their phase."""
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


def net_epochs(train: list[TrainStagePlan], learner: str, net: str, phase: int) -> int:
    """Epochs that train ``net`` of ``learner`` in its growing ``phase`` (all of them without phases)."""
    return sum(s.epochs for s in train if s.growing_phase.get(learner, 0) == phase and any(a.step == net for a in s.actions))
