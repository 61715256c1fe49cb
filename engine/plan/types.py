"""The run plan: everything execution needs, typed to the last field — the executor's only input.

The planner (``build.py``) derives it from a validated spec; nothing after the plan reads the spec.
Where a component is meant (a search space, an optimizer, the dataset, ...), the plan holds the
registry's validated, immutable config of it, which builds the runtime object; everything else is
the plan's own frozen types. Every fact derived from the spec is computed once, here: each
learner's final network, each stage's A-step loss weights and the epochs that measure D_val,
epoch counts, the architecture an evaluate stage trains.

Names: a *stage* is an entry of the spec's ``stages`` list; a *growing phase* is a phase of a search
space that deepens as it searches (P-DARTS). A stage belongs to one growing phase of each such
learner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sgl.registry import Architecture, LearnerConfig
from sgl.registry.evaluation import EvaluationProtocol
from sgl.registry.hypergrad import HypergradientConfig
from sgl.registry.optim import OptimizerConfig, SchedulerConfig
from sgl.registry.pseudo_labels import PseudoLabelerConfig

from .settings import DataPlan, EarlyStopRule, ExpectationPlan, LossWeights, RunSettings

Step = Literal["A", "W", "PL", "V"]
Stream = Literal["train", "unlabeled", "val"]
NetName = Literal["W", "V"]


@dataclass(frozen=True)
class NetworkPlan:
    """One of a learner's weight networks (W: stage 1, V: stage 2) and how it is optimised."""

    name: NetName
    optimizer: OptimizerConfig
    schedule: SchedulerConfig
    horizons: tuple[int, ...]  # epochs its schedule spans, per growing phase of the learner


@dataclass(frozen=True)
class LearnerPlan:
    name: str
    kind: str
    searchable: bool
    seed: int                             # the learner's own initialisation (run seed + name)
    config: LearnerConfig                 # its search space or fixed model (``build(task)``)
    networks: dict[str, NetworkPlan]      # W always; V when some stage has V-steps
    arch_optimizer: OptimizerConfig | None  # optimizer of α/β (searchable learners)
    arch_net: NetName | None              # the network the architecture gradient flows through
    final_net: NetName                    # the network that is the learner's result (tested, exported)
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
    arch_loss_weights: LossWeights  # the stage-2 loss the A-step's gradient sees (CE alone without V)
    measured_epochs: tuple[int, ...]  # epochs of this stage (0-based, in the stage) that measure D_val
    # growing learner -> network -> (epochs of that network before this stage in its phase, its
    # epochs in the phase, its epochs in the phase before the first A-step): where a per-phase
    # schedule such as P-DARTS' skip dropout stands when this stage begins
    ramps: dict[str, dict[str, tuple[int, int, int]]] = field(default_factory=dict)
    early_stop: EarlyStopRule | None = None
    type: Literal["train"] = "train"

    @property
    def order(self) -> tuple[str, ...]:
        """Node ids of one iteration, in order (``A[alice]``, ``W[alice]``, ...)."""
        return tuple(node_id(a.step, k) for a in self.actions for k in a.learners)

    @property
    def arch_start(self) -> int:
        """Epochs into the stage before A-steps (the stage's length when it has none)."""
        return self.epochs if self.arch_from_epoch is None else self.arch_from_epoch - self.first_epoch

    def arch_on(self, epoch: int) -> bool:
        """Whether iterations of ``epoch`` (0-based, in the stage) take A-steps."""
        return self.arch_from_epoch is not None and self.first_epoch + epoch >= self.arch_from_epoch


@dataclass(frozen=True)
class DeriveStagePlan:
    index: int
    name: str
    type: Literal["derive"] = "derive"


@dataclass(frozen=True)
class EvaluateStagePlan:
    index: int
    name: str
    learner: str | None                 # train the architecture this run derives for this learner ...
    architecture: Architecture | None   # ... or this one (a published name or a file of the spec)
    given_as: str | None                # how the spec named that architecture
    protocol: EvaluationProtocol        # how it is trained and tested, with this stage's values
    seed: int                           # the network's initialisation and batch order (with the stage name)
    seed_from: Literal["stage", "run"]  # the stage's own seed, or the run's
    type: Literal["evaluate"] = "evaluate"

    @property
    def epochs(self) -> int:
        return self.protocol.epochs


StagePlan = TrainStagePlan | DeriveStagePlan | EvaluateStagePlan


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
    deterministic: bool | None      # None: decided by the device (on for the CPU)
    data: DataPlan
    learners: dict[str, LearnerPlan]
    stages: tuple[StagePlan, ...]
    loss_weights: LossWeights       # w_lab and λ of stage 2
    labeler: PseudoLabelerConfig
    hypergradient: HypergradientConfig
    grad_clip: float | None
    run: RunSettings
    expect: tuple[ExpectationPlan, ...] = ()
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

    def search_epochs_before(self, stage: int, epoch: int = 0) -> int:
        """Search epochs done when the run stands at ``epoch`` of stage ``stage`` (an index of
        ``stages``; past the last: the end of the run)."""
        done = sum(s.epochs for s in self.train_stages if s.index < stage)
        current = self.stages[stage] if stage < len(self.stages) else None
        return done + (epoch if isinstance(current, TrainStagePlan) else 0)

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)


def node_id(step: str, learner: str | None = None) -> str:
    return f"{step}[{learner}]" if learner else step


__all__ = [
    "Action", "DataPlan", "DeriveStagePlan", "EarlyStopRule", "Edge", "EvaluateStagePlan", "ExpectationPlan",
    "LearnerPlan", "LossWeights", "NetName", "NetworkPlan", "Node", "RunPlan", "RunSettings", "StagePlan", "Step",
    "Stream", "TrainStagePlan", "node_id",
]
