"""The planner's checks across keys: what no single field can say is wrong, each at its key path."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from ..errors import PlanIssue, did_you_mean
from ..summary import LEARNER_KEYS, SUMMARY_KEYS
from .settings import DataPlan


class Group:
    """Facts about the learners that every part of the planner needs."""

    def __init__(self, spec: BaseModel) -> None:
        self.configs = spec.learners
        self.names = list(spec.learners)
        self.searchable = [n for n, c in spec.learners.items() if c.searchable]
        train = [s for s in spec.stages if s.type == "train"]
        self.steps = {step for s in train for step in s.steps}
        self.has_v = "V" in self.steps
        lam = spec.loss_weights.pseudo
        self.peers = {k: tuple(j for j in self.names if j != k) if self.has_v and lam > 0 else () for k in self.names}
        self.producers = sorted({j for ps in self.peers.values() for j in ps}, key=self.names.index)
        self.networks = ("W", "V") if self.has_v else ("W",)

    def growing_phases(self, name: str) -> int:
        return self.configs[name].growing_phases()



def check_group(spec: BaseModel, group: Group) -> list[PlanIssue]:
    issues = []
    lam = spec.loss_weights.pseudo
    if group.steps and not group.names:
        issues.append(PlanIssue(("learners",), "a training stage needs at least one learner"))
    if group.has_v and lam > 0 and len(group.names) < 2:
        issues.append(PlanIssue(("loss_weights", "pseudo"), f"λ = {lam} > 0 needs at least two learners to learn from each other; set it to 0 for a single learner"))
    if group.has_v and spec.loss_weights.labeled == 0 and (lam == 0 or len(group.names) < 2):
        issues.append(PlanIssue(("loss_weights",), "stage 2 would have no loss: both weights are zero"))
    return issues


def check_learners(group: Group) -> list[PlanIssue]:
    """What each learner's own config says unfits it to train (a layout without a normal cell, ...)."""
    return [PlanIssue(("learners", name, *where), message)
            for name, config in group.configs.items() for where, message in config.plan_issues()]


def check_batches(spec: BaseModel, group: Group, data: DataPlan) -> list[PlanIssue]:
    issues = []
    batch, train, val = spec.data.batch_size, data.examples["train"], data.examples["val"]
    if train is not None and train < batch and group.steps:
        issues.append(PlanIssue(("data", "batch_size"), f"batch size {batch} is larger than D_train ({train} examples)"))
    # A-steps read D_val; V-steps with peers read D_u (a split again): each must fill one batch too.
    if val is not None and val < batch and (("A" in group.steps and group.searchable)
                                            or (spec.data.unlabeled == "val" and group.producers)):
        issues.append(PlanIssue(("data", "batch_size"), f"batch size {batch} is larger than D_val ({val} examples)"))
    return issues


def check_train_stage(stage: BaseModel, index: int, group: Group) -> list[PlanIssue]:
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


def check_evaluate(stage: BaseModel, index: int, group: Group) -> list[PlanIssue]:
    issues = []
    if stage.learner is not None:
        if stage.learner not in group.configs:
            hint = did_you_mean(stage.learner, group.names, cutoff=0.6)
            issues.append(PlanIssue(("stages", index, "learner"), f"no learner named {stage.learner!r}{hint}"))
        elif not group.configs[stage.learner].searchable:
            issues.append(PlanIssue(("stages", index, "learner"), f"learner {stage.learner!r} is fixed: it has no genotype to evaluate"))
    return issues


def check_expectations(spec: BaseModel, group: Group) -> list[PlanIssue]:
    """Metric paths that cannot exist in this run's summary (a typo in a key, learner or stage)."""
    issues = []
    evaluations = [s.name for s in spec.stages if s.type == "evaluate"]
    for i, expectation in enumerate(spec.expect):
        parts = expectation.metric.split(".")
        where = ("expect", i, "metric")
        if parts[0] not in SUMMARY_KEYS:
            issues.append(PlanIssue(where, f"summary.json has no {parts[0]!r}{did_you_mean(parts[0], SUMMARY_KEYS)}; "
                                           f"it has {', '.join(SUMMARY_KEYS)}"))
        elif parts[0] == "learners" and (len(parts) < 2 or parts[1] not in group.names):
            name = parts[1] if len(parts) > 1 else ""
            issues.append(PlanIssue(where, f"no learner {name!r}{did_you_mean(name, group.names)}"))
        elif parts[0] == "learners" and len(parts) > 2 and parts[2] not in LEARNER_KEYS:
            issues.append(PlanIssue(where, f"a learner's summary has no {parts[2]!r}{did_you_mean(parts[2], LEARNER_KEYS)}; "
                                           f"it has {', '.join(LEARNER_KEYS)}"))
        elif parts[0] == "evaluations" and (len(parts) < 2 or not (parts[1] in evaluations or
                                                                   (parts[1].isdigit() and int(parts[1]) < len(evaluations)))):
            name = parts[1] if len(parts) > 1 else ""
            issues.append(PlanIssue(where, f"no evaluate stage {name!r}{did_you_mean(name, evaluations)}"
                                           + (f"; the spec's: {', '.join(evaluations)}" if evaluations else "; the spec has none")))
    return issues


def memory_warnings(spec: BaseModel, group: Group) -> list[str]:
    """Learners whose supernets would not fit this machine's memory (an estimate, legal to run)."""
    shape = spec.data.dataset.input_shape()
    total = _physical_memory()
    if shape is None or total is None:
        return []
    from sgl.registry import Task

    task = Task(num_classes=10, in_channels=shape[0], image_size=shape[1])
    warnings = []
    for name in group.searchable:
        # the V-step keeps two batches for its backward when the learner has peers (x_train and x_u)
        batches = 2 if group.has_v and group.peers[name] else 1
        need = group.configs[name].activation_bytes(task, spec.data.batch_size) * batches
        if need > 0.8 * total:
            warnings.append(f"learners.{name}: its supernet needs about {need / 2**30:.1f} GiB of activations in one "
                            f"step (batch {spec.data.batch_size}), more than this machine's {total / 2**30:.1f} GiB of "
                            "memory; lower data.batch_size or channels, or run where there is more")
    return warnings


def data_warnings(spec: BaseModel, base_dir: Path | None) -> list[str]:
    """The dataset's files, when they are not where the spec says (legal to plan; `sgl run` refuses)."""
    missing = spec.data.dataset.missing(base_dir) if base_dir is not None else None
    return [f"data.dataset: {missing}; `sgl run` refuses to start until they are there"] if missing else []


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on every platform
        return None
