"""The run plan: everything execution needs, typed — the executor's only input.

The planner (``plan.py``) derives it from a validated spec; nothing downstream reads the spec. The
component configs it carries (search spaces, models, optimizers, schedules, the pseudo-labeler, the
hypergradient method, evaluation protocols, the dataset) are the spec's own validated, immutable
models: they build the runtime objects.

Names: a *stage* is an entry of the spec's ``stages`` list; a *growing phase* is a phase of a search
space that deepens as it searches (P-DARTS). A stage belongs to one growing phase of each such
learner.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

from pydantic import BaseModel

Step = Literal["A", "W", "PL", "V"]
Stream = Literal["train", "unlabeled", "val"]


@dataclass(frozen=True)
class NetworkPlan:
    """One of a learner's weight networks (W: stage 1, V: stage 2) and how it is optimised."""

    name: str
    optimizer: Any            # an optimizer config (``build(params)``)
    schedule: Any             # a scheduler config (``build(optimizer, epochs)``)
    horizons: tuple[int, ...]  # epochs its schedule spans, per growing phase of the learner


@dataclass(frozen=True)
class LearnerPlan:
    name: str
    kind: str
    searchable: bool
    seed: int                             # the learner's own initialisation (run seed + name)
    config: Any                           # its search-space or model config (``build(task)``)
    networks: dict[str, NetworkPlan]      # W always; V when some stage has V-steps
    arch_optimizer: Any | None            # optimizer config of α/β (searchable learners)
    arch_net: str | None                  # the network the architecture gradient flows through
    peers: tuple[str, ...]                # learners whose pseudo-labels this learner's V learns from
    growing_phases: int = 1
    arch_grad_clip: float | None = None   # norm its architecture gradient is clipped to (None: off)
    fused: bool = False                   # its supernets computed by the fused implementation


@dataclass(frozen=True)
class Action:
    """One step of an iteration, for these learners, in this order."""

    step: Step
    learners: tuple[str, ...]


@dataclass(frozen=True)
class TrainStagePlan:
    index: int                      # position in the spec's stages
    name: str
    first_epoch: int                # global epoch (over training stages) where the stage starts
    epochs: int
    actions: tuple[Action, ...]
    arch_from_epoch: int | None     # global epoch from which A-steps run; None: the stage has none
    iterations_per_epoch: int | None
    optimizer_steps: int | None
    growing_phase: dict[str, int]   # searchable learner -> its growing phase during this stage (0-based)
    streams: tuple[Stream, ...]     # the batch streams an iteration reads
    stepped: tuple[tuple[str, str], ...]  # (learner, network) whose schedules advance each epoch
    # growing learner -> network -> (epochs of that network before this stage in its phase, its
    # epochs in the phase, its epochs in the phase before the first A-step): where a per-phase
    # schedule such as P-DARTS' skip dropout stands when this stage begins
    ramps: dict[str, dict[str, tuple[int, int, int]]] = field(default_factory=dict)
    early_stop: Any = None          # EarlyStop settings, or None
    type: Literal["train"] = "train"

    @property
    def order(self) -> tuple[str, ...]:
        """Node ids of one iteration, in order (``A[alice]``, ``W[alice]``, ...)."""
        return tuple(node_id(a.step, k) for a in self.actions for k in a.learners)

    @property
    def arch_start(self) -> int:
        """Epochs into the stage before A-steps (the stage's length when it has none)."""
        return self.epochs if self.arch_from_epoch is None else self.arch_from_epoch - self.first_epoch


@dataclass(frozen=True)
class DeriveStagePlan:
    index: int
    name: str
    type: Literal["derive"] = "derive"


@dataclass(frozen=True)
class EvaluateStagePlan:
    index: int
    name: str
    learner: str | None     # evaluate the genotype this run derives for this learner ...
    genotype: str | None    # ... or a named genotype / genotype file (relative to the spec)
    protocol: Any           # the evaluation protocol config, with this stage's values
    seed: int = 0           # seeds the network's initialisation and batch order (with the stage name)
    type: Literal["evaluate"] = "evaluate"


StagePlan = TrainStagePlan | DeriveStagePlan | EvaluateStagePlan


@dataclass(frozen=True)
class DataPlan:
    dataset: Any                    # the dataset config (``build(base_dir, seed=..., **options)``)
    split_train: float
    split_val: float
    shuffle: bool
    subset: int | None               # search on the first N training images only
    unlabeled: Literal["train", "val"]
    batch_size: int
    eval_batch_size: int
    num_workers: int | None          # None: decided by the device
    examples: dict[str, int | None]  # D_train / D_val sizes when known without loading
    batches: str = "auto"            # "device", "per_image" or "auto" (decided by the device)
    val_every: int = 1               # measure D_val accuracy every this many epochs
    val_subset: int | None = None    # on D_val's first N images


@dataclass(frozen=True)
class Node:
    id: str
    step: str
    learner: str | None


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    kind: Literal["data", "grad"]
    label: str


@dataclass(frozen=True)
class RunPlan:
    name: str
    description: str
    seed: int
    deterministic: bool
    data: DataPlan
    learners: dict[str, LearnerPlan]
    stages: tuple[StagePlan, ...]
    loss_weights: Any               # LossWeights: w_lab and λ of stage 2
    labeler: Any                    # pseudo-labeler config
    hypergradient: Any              # hypergradient config
    grad_clip: float | None
    run: Any                        # the spec's run section (output, precision, logging, ...)
    expect: tuple[Any, ...] = ()    # Expectations the run's summary must meet
    warnings: tuple[str, ...] = ()  # legal but suspicious (a supernet too large for this machine)
    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()
    passes: dict[str, dict[str, int]] = field(default_factory=dict)  # step -> forward/backward passes

    @property
    def train_stages(self) -> tuple[TrainStagePlan, ...]:
        return tuple(s for s in self.stages if isinstance(s, TrainStagePlan))

    @property
    def total_epochs(self) -> int:
        """Epochs of all training (search) stages."""
        return sum(s.epochs for s in self.train_stages)

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


def _plain(value: Any) -> Any:
    """JSON-ready data: dataclasses and config models become mappings."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, TrainStagePlan):
            out["order"] = list(value.order)
        return out
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def node_id(step: str, learner: str | None = None) -> str:
    return f"{step}[{learner}]" if learner else step


__all__ = [
    "Action", "DataPlan", "DeriveStagePlan", "Edge", "EvaluateStagePlan", "LearnerPlan", "NetworkPlan", "Node",
    "RunPlan", "StagePlan", "TrainStagePlan", "node_id",
]
