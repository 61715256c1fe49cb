"""Spec → StageGraph: the explicit, checked plan the executor walks.

The plan is plain data. It decides what users must not set by hand: which learners get which
steps, who learns from whose pseudo-labels, which network the architecture gradient flows
through, each network's schedule horizon and per-learner seeds. Every inconsistency is reported
with its key path, so the CLI can point at the line of the spec.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from .load import KeyPath

StepKind = Literal["A", "W", "PL", "V", "derive", "evaluate"]


@dataclass(frozen=True)
class LearnerPlan:
    name: str
    kind: str
    searchable: bool
    seed: int
    networks: tuple[str, ...]  # "W" always; "V" when some stage has V-steps
    arch_net: str | None       # the network the architecture gradient flows through (V, or W without stage 2)
    peers: tuple[str, ...]     # learners whose pseudo-labels this learner's V learns from
    schedule_epochs: dict[str, int]  # network -> epochs its learning-rate schedule spans
    space_phases: int = 1


@dataclass(frozen=True)
class Node:
    id: str
    step: StepKind
    learner: str | None


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    kind: Literal["data", "grad"]
    label: str


@dataclass(frozen=True)
class PhasePlan:
    index: int                 # position in spec.stages
    name: str
    type: Literal["train", "derive", "evaluate"]
    first_epoch: int = 0       # global epoch index where this phase starts (train)
    epochs: int = 0
    order: tuple[str, ...] = ()       # node ids of one iteration, in order
    arch_from_epoch: int | None = None  # global epoch from which A-nodes run
    iterations_per_epoch: int | None = None
    optimizer_steps: int | None = None
    space_phase: dict[str, int] = field(default_factory=dict)  # learner -> growing phase (P-DARTS)
    learner: str | None = None  # evaluate: the learner whose genotype is evaluated


@dataclass(frozen=True)
class StageGraph:
    name: str
    seed: int
    learners: dict[str, LearnerPlan]
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    phases: tuple[PhasePlan, ...]
    hypergradient: str
    passes: dict[str, dict[str, int]]  # step -> {"forward": n, "backward": n} per iteration, all learners
    train_examples: dict[str, int | None]

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases if p.type == "train")

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlanIssue:
    path: KeyPath
    message: str


class PlanError(Exception):
    def __init__(self, issues: list[PlanIssue]):
        self.issues = issues
        super().__init__("\n".join(f"{'.'.join(map(str, i.path))}: {i.message}" for i in issues))


def learner_seed(run_seed: int, name: str) -> int:
    """A learner's seed from the run seed and its name: stable when learners are added or reordered."""
    digest = hashlib.sha256(f"{run_seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def node_id(step: str, learner: str | None = None) -> str:
    return f"{step}[{learner}]" if learner else step


def plan(spec: BaseModel, base_dir: Path | None = None) -> StageGraph:
    """Compile a validated spec into a StageGraph, or raise PlanError listing every problem."""
    issues: list[PlanIssue] = []
    learners = spec.learners
    searchable = [n for n, c in learners.items() if type(c).searchable]
    train_stages = [(i, s) for i, s in enumerate(spec.stages) if s.type == "train"]
    all_steps = {step for _, s in train_stages for step in s.steps}
    has_v = "V" in all_steps
    lam = spec.loss_weights.pseudo

    if train_stages and not learners:
        issues.append(PlanIssue(("learners",), "a training stage needs at least one learner"))
    if has_v and lam > 0 and len(learners) < 2:
        issues.append(PlanIssue(("loss_weights", "pseudo"), f"λ = {lam} > 0 needs at least two learners to learn from each other; set it to 0 for a single learner"))
    if has_v and spec.loss_weights.labeled == 0 and (lam == 0 or len(learners) < 2):
        issues.append(PlanIssue(("loss_weights",), "stage 2 would have no loss: both weights are zero"))

    peers = {
        k: tuple(j for j in learners if j != k) if has_v and lam > 0 else ()
        for k in learners
    }
    producers = sorted({j for ps in peers.values() for j in ps}, key=list(learners).index)

    # Epoch bookkeeping and per-stage checks.
    examples = _examples(spec)
    iterations = examples["train"] // spec.data.batch_size if examples["train"] is not None else None
    if examples["train"] is not None and examples["train"] < spec.data.batch_size and train_stages:
        issues.append(PlanIssue(("data", "batch_size"), f"batch size {spec.data.batch_size} is larger than D_train ({examples['train']} examples)"))
    # A-steps read D_val; V-steps with peers read D_u (a split again): each must fill one batch too.
    if examples["val"] is not None and examples["val"] < spec.data.batch_size and (
        ("A" in all_steps and searchable) or (spec.data.unlabeled == "val" and producers)
    ):
        issues.append(PlanIssue(("data", "batch_size"), f"batch size {spec.data.batch_size} is larger than D_val ({examples['val']} examples)"))

    phases: list[PhasePlan] = []
    epoch = 0
    arch_stage_count = 0
    schedule_epochs = {"W": 0, "V": 0}
    for index, stage in enumerate(spec.stages):
        where = ("stages", index)
        if stage.type != "train":
            learner = getattr(stage, "learner", None)
            if stage.type == "evaluate":
                issues += _check_evaluate(stage, index, learners, base_dir)
            phases.append(PhasePlan(index=index, name=stage.name, type=stage.type, learner=learner,
                                    first_epoch=epoch))
            continue
        steps = stage.steps
        if "A" in steps and not searchable:
            issues.append(PlanIssue(where + ("steps",), "an A-step needs a searchable learner (kind darts, pc_darts, p_darts, ...)"))
        if "A" in steps and stage.arch_start >= stage.epochs:
            issues.append(PlanIssue(where + ("arch_start",), f"arch_start ({stage.arch_start}) must be below epochs ({stage.epochs}): no A-step would run"))
        if "V" in steps and producers and "PL" not in steps:
            issues.append(PlanIssue(where + ("steps",), "V learns from the peers' pseudo-labels: add PL before V (or set loss_weights.pseudo: 0)"))
        if "PL" in steps and not ("V" in steps and producers):
            issues.append(PlanIssue(where + ("steps",), "PL makes pseudo-labels that no V-step uses in this stage"))
        if "PL" in steps and "V" in steps and steps.index("PL") > steps.index("V"):
            issues.append(PlanIssue(where + ("steps",), "PL must come before V: V reads this iteration's pseudo-labels"))
        order: list[str] = []
        for step in steps:
            if step == "A":
                order += [node_id("A", k) for k in searchable]
            elif step == "PL":
                order += [node_id("PL", j) for j in producers]
            else:
                order += [node_id(step, k) for k in learners]
        arch_from = epoch + stage.arch_start if "A" in steps else None
        space_phase = {k: arch_stage_count for k in searchable}
        if "A" in steps:
            arch_stage_count += 1
        for net in ("W", "V"):
            if net in steps:
                schedule_epochs[net] += stage.epochs
        steps_per_iter = sum(1 for n in order if n[0] in "WV") * (stage.epochs * (iterations or 0))
        arch_steps = len(searchable) * (stage.epochs - stage.arch_start) * (iterations or 0) if "A" in steps else 0
        phases.append(PhasePlan(
            index=index, name=stage.name, type="train", first_epoch=epoch, epochs=stage.epochs,
            order=tuple(order), arch_from_epoch=arch_from, iterations_per_epoch=iterations,
            optimizer_steps=(steps_per_iter + arch_steps) if iterations is not None else None,
            space_phase={k: min(v, _space_phases(learners[k]) - 1) for k, v in space_phase.items()},
        ))
        epoch += stage.epochs

    for k in searchable:
        count = _space_phases(learners[k])
        if count > 1 and count != arch_stage_count:
            issues.append(PlanIssue(("learners", k, "phases"), f"{count} growing phases, but the spec has {arch_stage_count} stage(s) with A-steps; give one such stage per phase"))

    learner_plans = {
        k: LearnerPlan(
            name=k, kind=c.kind, searchable=type(c).searchable, seed=learner_seed(spec.seed, k),
            networks=("W", "V") if has_v else ("W",),
            arch_net=("V" if has_v else "W") if type(c).searchable else None,
            peers=peers[k],
            schedule_epochs={net: schedule_epochs[net] for net in (("W", "V") if has_v else ("W",))},
            space_phases=_space_phases(c),
        )
        for k, c in learners.items()
    }
    nodes, edges = _graph(learner_plans, phases, spec)
    if issues:
        raise PlanError(issues)
    return StageGraph(
        name=spec.name, seed=spec.seed, learners=learner_plans, nodes=nodes, edges=edges,
        phases=tuple(phases), hypergradient=spec.hypergradient.method,
        passes=_passes(spec, learner_plans, all_steps), train_examples=examples,
    )


def _space_phases(config: BaseModel) -> int:
    return len(getattr(config, "phases", ()) or ()) or 1


def _examples(spec: BaseModel) -> dict[str, int | None]:
    total = spec.data.dataset.num_train()
    if total is None:
        return {"train": None, "val": None}
    train = math.floor(total * spec.data.split.train)
    val = math.floor(total * spec.data.split.val)
    return {"train": train, "val": min(val, total - train)}


def _check_evaluate(stage: BaseModel, index: int, learners: dict, base_dir: Path | None) -> list[PlanIssue]:
    issues = []
    if stage.learner is not None:
        if stage.learner not in learners:
            import difflib

            close = difflib.get_close_matches(stage.learner, list(learners), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            issues.append(PlanIssue(("stages", index, "learner"), f"no learner named {stage.learner!r}{hint}"))
        elif not type(learners[stage.learner]).searchable:
            issues.append(PlanIssue(("stages", index, "learner"), f"learner {stage.learner!r} is fixed: it has no genotype to evaluate"))
    if stage.genotype is not None:
        from sgl.registry.spaces.genotype import GENOTYPES

        if stage.genotype not in GENOTYPES:
            path = Path(stage.genotype)
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            if not path.is_file():
                issues.append(PlanIssue(("stages", index, "genotype"), f"not a named genotype ({', '.join(GENOTYPES)}) and no such file: {str(path)!r}"))
    return issues


def _graph(learners: dict[str, LearnerPlan], phases: list[PhasePlan], spec: BaseModel) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
    seen: dict[str, Node] = {}
    for phase in phases:
        for nid in phase.order:
            step, learner = nid.split("[")[0], nid.split("[")[1].rstrip("]")
            seen.setdefault(nid, Node(nid, step, learner))
        if phase.type != "train":
            nid = f"{phase.type}:{phase.name}"
            seen.setdefault(nid, Node(nid, phase.type, phase.learner))
    edges = []
    for k, lp in learners.items():
        if node_id("PL", k) in seen:
            edges.append(Edge(node_id("W", k), node_id("PL", k), "data", f"W_{k} labels D_u"))
        for j in lp.peers:
            if node_id("V", k) in seen and node_id("PL", j) in seen:
                edges.append(Edge(node_id("PL", j), node_id("V", k), "data", f"q_{j}"))
        if lp.arch_net and node_id("A", k) in seen:
            edges.append(Edge(node_id(lp.arch_net, k), node_id("A", k), "grad", f"L_val through {lp.arch_net}_{k}"))
            if spec.hypergradient.method in ("full_chain", "exact") and getattr(spec.hypergradient, "chain", True):
                for j in learners:
                    if k in learners[j].peers and node_id("V", j) in seen:
                        edges.append(Edge(node_id("V", j), node_id("A", k), "grad", f"L_val,{j} through q_{k}"))
    for node in seen.values():
        if node.step in ("derive", "evaluate"):
            sources = [node_id("A", k) for k in learners if node_id("A", k) in seen and (node.learner in (None, k))]
            edges += [Edge(src, node.id, "data", "architecture") for src in sources]
    return tuple(seen.values()), tuple(edges)


def _passes(spec: BaseModel, learners: dict[str, LearnerPlan], steps: set[str]) -> dict[str, dict[str, int]]:
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
                for key, value in spec.hypergradient.passes(len(lp.peers)).items():
                    totals[key] = totals.get(key, 0) + value
        out["A"] = totals
    return out
