"""The spec's pydantic models: the single source of truth for every key, default and description.

Sections that name registry components (learners, dataset, optimizers, ...) are discriminated
unions over what the registry holds when ``spec_model()`` is called, so plugins extend the spec and
its JSON schema without touching this file. Everything else is static.
"""

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sgl import registry
from sgl.registry.core import MAX_BATCH, MAX_EPOCHS, PathField, PathText
from sgl.registry.evaluation import DEFAULT_PROTOCOL

SPEC_VERSION = 1
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
#: The per-iteration steps a training stage can list, in the vocabulary of DESIGN §1.
StepName = Literal["A", "W", "PL", "V"]
#: Generous bounds that refuse nonsense sizes (and the overflows they cause) before a run starts.


class Section(BaseModel):
    """Base of every spec section: unknown keys are errors; values are immutable once loaded; no float
    accepts NaN or ±inf (they validate against every bound and then poison a run)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SplitSpec(Section):
    train: float = Field(0.5, gt=0, le=1, description="Fraction of the dataset's training set used as D_train.")
    val: float = Field(0.5, gt=0, le=1, description="Fraction used as D_val (taken after D_train).")
    shuffle: bool = Field(
        False,
        description="Shuffle (from the seed) before splitting; DARTS takes the first and second halves in order.",
    )

    @model_validator(mode="after")
    def _fits(self) -> "SplitSpec":
        if self.train + self.val > 1 + 1e-9:
            raise ValueError(f"train + val must be at most 1, got {self.train} + {self.val}")
        return self


class DataSpecBase(Section):
    split: SplitSpec = Field(default_factory=SplitSpec, description="How the training set is split into D_train and D_val.")
    unlabeled: Literal["train", "val"] = Field(
        "train", description="D_u: this split again, reshuffled on its own stream, labels hidden."
    )
    subset: PositiveInt | None = Field(
        None,
        description="Search on the first N images of the training set only (split into D_train and D_val "
        "after); evaluation stages still train on all of it. SGL-PC-DARTS: 20000.",
    )
    batch_size: PositiveInt = Field(64, le=MAX_BATCH, description="Batch size of every search stream, per process (at most 65,536).")
    eval_batch_size: PositiveInt = Field(256, le=MAX_BATCH, description="Batch size for measuring accuracy (at most 65,536).")
    num_workers: NonNegativeInt | None = Field(
        None,
        le=256,
        description="DataLoader worker processes for datasets read image by image (0: in the main process; at "
        "most 256). Null: up to 8 (the CPU count) on a GPU, 0 on the CPU, where workers would change the "
        "random augmentation of a CPU run.",
    )
    batches: Literal["auto", "device", "per_image"] = Field(
        "auto",
        description="How training batches are made: device keeps an in-memory dataset (digits, CIFAR, fake) on the "
        "accelerator and augments whole batches there; per_image transforms one image at a time on the CPU "
        "(DataLoader workers, pinned memory). auto: device on a GPU, per_image on the CPU (bit for bit as "
        "earlier versions).",
    )
    val_every: PositiveInt = Field(
        1, le=MAX_EPOCHS,
        description="Measure the learners' accuracy on D_val every this many search epochs, and after the last "
        "(at most 100,000).",
    )
    val_subset: PositiveInt | None = Field(
        None, description="Measure the accuracy on D_val's first N images only (null: all of D_val)."
    )


class LossWeights(Section):
    labeled: NonNegativeFloat = Field(1.0, description="w_lab: weight of the labeled cross-entropy in stage 2.")
    pseudo: NonNegativeFloat = Field(1.0, description="λ: weight of each peer's pseudo-label loss in stage 2.")


class EarlyStop(Section):
    """Stop a search stage once its validation measure has worsened ``patience`` epochs in a row
    (the SGL-PC-DARTS authors' rule, with its every-10-epochs indexing fixed)."""

    metric: Literal["val_loss", "val_acc"] = Field(
        "val_loss",
        description="val_loss: the learners' mean cross-entropy on D_val, through the network A flows "
        "through (the authors' sum of both V's losses, up to a factor); val_acc: their mean accuracy.",
    )
    patience: PositiveInt = Field(5, description="Consecutive epochs of worsening that stop the stage.")


class TrainStage(Section):
    type: Literal["train"] = Field("train", description="A search stage: epochs of iterations of steps.")
    name: str = Field("search", pattern=NAME_PATTERN, description="Label shown in progress and metrics.")
    epochs: PositiveInt = Field(le=MAX_EPOCHS, description="Epochs in this stage (at most 100,000).")
    steps: list[StepName] = Field(
        description="Steps of one iteration, in order: A (architecture), W (stage 1), PL (pseudo-labels), V (stage 2).",
        min_length=1,
    )
    arch_start: NonNegativeInt = Field(0, le=MAX_EPOCHS, description="Epochs into this stage before A-steps begin (at most 100,000).")
    growing_phase: PositiveInt | None = Field(
        None,
        le=MAX_EPOCHS,
        description="The growing phase (1, 2, ...) of growing search spaces (P-DARTS) this stage belongs to; "
        "the first stage of a phase builds its networks, and a network's schedule spans the epochs of the "
        "phase's stages that train it. Null: the previous stage's phase, or, when no stage names one, "
        "each stage with A-steps after the first opens the next phase (at most 100,000).",
    )
    early_stop: EarlyStop | None = Field(None, description="Stop this stage early when validation worsens (null: never).")

    @model_validator(mode="after")
    def _unique_steps(self) -> "TrainStage":
        if len(set(self.steps)) != len(self.steps):
            raise ValueError(f"steps must not repeat: {self.steps}")
        return self


class DeriveStage(Section):
    type: Literal["derive"] = Field("derive", description="Write the genotype of every searchable learner.")
    name: str = Field("derive", pattern=NAME_PATTERN, description="Label.")


class EvaluateStageBase(Section):
    """What every evaluate stage has; the protocol it follows (``protocol:``, default darts) brings
    the rest of its fields (``sgl components protocol`` lists them)."""

    type: Literal["evaluate"] = Field("evaluate", description="Train a genotype from scratch and test it.")
    name: str = Field("evaluate", pattern=NAME_PATTERN, description="Label.")
    learner: str | None = Field(None, description="Evaluate the genotype this run derived for this learner.")
    genotype: PathText | None = Field(None, description="Or: a named genotype (DARTS_V2, ...) or a genotype JSON file.")
    seed: NonNegativeInt | None = Field(
        None, description="Seed of the network's initialisation and batch order (null: from the run seed and the stage name)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> "EvaluateStageBase":
        if (self.learner is None) == (self.genotype is None):
            raise ValueError("give exactly one of 'learner' (from this run's search) or 'genotype'")
        return self

    @model_validator(mode="after")
    def _min_lr(self) -> "EvaluateStageBase":
        # optimizer and schedule come with the protocol (every evaluate stage has them)
        _min_lr_at_most_lr(getattr(self, "optimizer", None), getattr(self, "schedule", None), "this stage's optimizer.lr")
        return self


class Expectation(Section):
    """A number the run must produce: a metric of summary.json within a range, or a value ± tolerance."""

    metric: str = Field(
        description="Path into summary.json, keys joined by dots; a list is indexed by position or by the name of "
        "an item's stage: evaluations.evaluate.test_error_final, learners.alice.test_acc.V, search_cost.hours.",
        min_length=1,
    )
    range: tuple[float, float] | None = Field(None, description="[low, high], both included.")
    value: float | None = Field(None, description="The expected value (with tolerance).")
    tolerance: NonNegativeFloat = Field(0.0, description="Allowed distance from value.")
    source: str = Field("", description="Where the number comes from (paper, table; or 'measured: ...').")

    @model_validator(mode="after")
    def _one_kind(self) -> "Expectation":
        if (self.range is None) == (self.value is None):
            raise ValueError("give exactly one of 'range' or 'value' (with 'tolerance')")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range low {self.range[0]} is above high {self.range[1]}")
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        if self.range is not None:
            return self.range
        return self.value - self.tolerance, self.value + self.tolerance


class RunSpec(Section):
    output: PathField = Field(Path("runs"), description="Runs go to <output>/<name>/<id>/ (relative to the spec file).")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field("no", description="Autocast precision (Accelerate).")
    cpu: bool = Field(False, description="Run on the CPU even when an accelerator is present.")
    log_every: PositiveInt = Field(20, description="Log metrics (and sync with the device) every this many iterations.")
    tensorboard: Literal["auto", "on", "off"] = Field("auto", description="TensorBoard events: auto = when installed.")
    threads: PositiveInt | None = Field(None, le=1024, description="torch CPU threads (default: torch's choice; at most 1024).")
    eval_bn: Literal["batch", "running"] = Field(
        "batch",
        description="BatchNorm statistics when measuring the learners' accuracy during the search: batch "
        "(as the architecture step sees the network) or running (DARTS' infer; poor early in a search).",
    )
    fused: bool = Field(
        False,
        description="Compute searchable learners' supernets with the fused implementation: the edges into a node "
        "that apply the same op run as one call, and depthwise convolutions take exact rewrites onto fast CPU "
        "kernels. The same math, summed in another order (float32 results differ in the last bits; measured "
        "2.8x faster on 8x8 inputs, 1.8x at CIFAR size on the CPU: bench/fused.py). Off: the plain networks.",
    )
    checkpoint_every: PositiveFloat | None = Field(
        10.0,
        le=7 * 24 * 60,
        description="Minutes between checkpoints inside an epoch, besides the one after every epoch, so a kill "
        "loses minutes, not an epoch (null: only at epoch ends; at most 10,080, a week).",
    )
    dist_timeout: PositiveFloat = Field(
        900.0,
        le=7 * 24 * 3600,
        description="Seconds a process waits for the others in a collective before the run fails (a hung or "
        "stopped peer); generous, since the main process writes checkpoints while the others wait "
        "(at most 604,800, a week).",
    )


def _shorthand(key: str, default: str | None):
    """Let `dataset: digits` stand for `dataset: {name: digits}`, and `{lr: 0.1}` for the default component."""

    def expand(value: Any) -> Any:
        if isinstance(value, str):
            return {key: value}
        if isinstance(value, dict) and key not in value and default is not None:
            return {key: default, **value}
        return value

    return BeforeValidator(expand)


def component(kind: str, *also: str, default: str | None = None) -> Any:
    """The discriminated union of the registered configs of ``kind`` (and of the ``also`` kinds).

    With a ``default``, a mapping that does not name its component means that default one.
    """
    key = registry.KINDS[kind]
    configs = tuple(e.config for k in (kind, *also) for e in registry.entries(k))
    if len(configs) == 1:
        # A one-member union would not be a union; a callable discriminator keeps errors uniform.
        (only,) = configs
        name = registry.entries(kind)[0].name
        return Annotated[
            Union[Annotated[only, Tag(name)]],  # noqa: UP007
            Discriminator(lambda v: v.get(key) if isinstance(v, dict) else getattr(v, key, None)),
            _shorthand(key, default),
        ]
    return Annotated[Union[configs], Field(discriminator=key), _shorthand(key, default)]  # noqa: UP007


def _default(kind: str, name: str, description: str, **values: Any) -> Any:
    config = registry.get(kind, name).config
    return Field(default_factory=lambda: config(**values), description=f"{description} Default: {name}.")


def stage_tag(value: Any) -> str | None:
    """The stage member a value selects: ``train``, ``derive`` or ``evaluate:<protocol>``."""
    if isinstance(value, dict):
        if "type" in value:
            kind = value["type"]
        elif "steps" not in value and value.get("name") in ("derive", "evaluate"):
            kind = value["name"]
        else:
            kind = "train"
        if kind == "evaluate":
            return f"evaluate:{value.get('protocol', DEFAULT_PROTOCOL)}"
        return kind
    kind = getattr(value, "type", None)
    return f"evaluate:{value.protocol}" if kind == "evaluate" else kind


def _evaluate_stage(entry: Any, optimizer: Any, scheduler: Any) -> type[BaseModel]:
    """The evaluate stage of one protocol: the stage's own fields, the protocol's, and its optimizer
    and schedule widened to every registered component (with the protocol's defaults)."""
    protocol = entry.config
    fields = protocol.model_fields
    namespace = {
        "__annotations__": {"optimizer": optimizer, "schedule": scheduler},
        "__doc__": protocol.__doc__,
        "__module__": __name__,
        "optimizer": Field(default_factory=fields["optimizer"].default_factory, description=fields["optimizer"].description),
        "schedule": Field(default_factory=fields["schedule"].default_factory, description=fields["schedule"].description),
    }
    return type(f"EvaluateStage_{entry.name}", (EvaluateStageBase, protocol), namespace)


def _min_lr_at_most_lr(optimizer: Any, schedule: Any, lr_name: str) -> None:
    """A schedule ending above its optimizer's lr would raise the rate, not anneal it.

    The error names ``schedule.min_lr`` in its context (``at``), so the loader points at min_lr.
    """
    min_lr = getattr(schedule, "min_lr", None)
    lr = getattr(optimizer, "lr", None)
    if min_lr is None or lr is None or min_lr <= lr:
        return
    given = "" if "min_lr" in schedule.model_fields_set else ", the default"
    raise PydanticCustomError(
        "min_lr_above_lr",
        f"min_lr ({min_lr}{given}) is above {lr_name} ({lr}): the schedule would raise the learning rate; "
        f"set min_lr to at most {lr}",
        {"at": "schedule.min_lr"},
    )


def _optim_spec(weights_optimizer: Any, arch_optimizer: Any, scheduler_union: Any) -> type[BaseModel]:
    class OptimSpec(Section):
        weights: weights_optimizer = _default("optimizer", "sgd", "Optimizer of the network weights W and V.")
        arch: arch_optimizer = _default("optimizer", "adam", "Optimizer of the architecture weights A.")
        schedule: scheduler_union = _default("scheduler", "cosine", "Per-epoch schedule of the weights' learning rate.")
        grad_clip: PositiveFloat | None = Field(5.0, description="Clip each network's gradient norm (null: off).")
        arch_grad_clip: PositiveFloat | Literal["grad_clip"] | None = Field(
            None,
            description="Clip each learner's architecture gradient (α, β) to this norm before the architecture "
            "optimizer, after the cross-process mean (the SGL authors' code: 5; DARTS and PC-DARTS: none). "
            "'grad_clip': the same value as grad_clip. Null: off.",
        )

        @model_validator(mode="after")
        def _min_lr(self) -> "OptimSpec":
            _min_lr_at_most_lr(self.weights, self.schedule, "optim.weights.lr")
            return self

    return OptimSpec


def _stage_union(weights_optimizer: Any, scheduler_union: Any) -> Any:
    """A stage: train, derive, or evaluate with one of the registered protocols."""
    evaluate_members = [
        Annotated[_evaluate_stage(entry, weights_optimizer, scheduler_union), Tag(f"evaluate:{entry.name}")]
        for entry in registry.entries("protocol")
    ]
    return Annotated[
        Union[  # noqa: UP007
            (Annotated[TrainStage, Tag("train")], Annotated[DeriveStage, Tag("derive")], *evaluate_members)
        ],
        Discriminator(stage_tag),
    ]


def _build_spec_model() -> type[BaseModel]:
    # A mapping that does not name its component means the default one (e.g. `weights: {lr: 0.1}`).
    dataset_union = component("dataset", default="digits")
    weights_optimizer = component("optimizer", default="sgd")
    scheduler_union = component("scheduler", default="cosine")
    learner_union = component("search_space", "model")
    labeler_union = component("pseudo_labeler", default="soft")
    hypergradient_union = component("hypergradient", default="first_order")
    OptimSpec = _optim_spec(weights_optimizer, component("optimizer", default="adam"), scheduler_union)  # noqa: N806
    Stage = _stage_union(weights_optimizer, scheduler_union)  # noqa: N806

    class DataSpec(DataSpecBase):
        dataset: dataset_union = _default("dataset", "digits", "The dataset (a name, or a mapping with its options).")

    class Spec(Section):
        """An sgl recipe: the learners, their data, the stages and how to run them."""

        version: Literal[1] = Field(SPEC_VERSION, description="Spec format version.")
        name: str = Field(pattern=NAME_PATTERN, description="Name of the recipe; runs go under <output>/<name>/.")
        description: str = Field("", description="Free text shown by `sgl plan`.")
        seed: int = Field(
            0, ge=0, le=2**63 - 1,
            description="Run seed (0 to 2^63 - 1, torch's range); each learner's seed is derived from it and its name.",
        )
        deterministic: bool | None = Field(
            None,
            description="Deterministic algorithms. Null: on the CPU (where a rerun is then bit-identical), off on a "
            "GPU, which runs cuDNN's fastest kernels (cudnn.benchmark) instead: deterministic GPU kernels are often "
            "10-30% slower and a GPU rerun still differs in the last bits from another GPU's.",
        )
        plugins: list[str] = Field(
            default_factory=list,
            description="Installed `sgl.plugins` entry points this spec needs (entry-point name or module), checked "
            "to be present; a spec never imports anything. Other modules: `sgl --plugin MODULE`.",
        )
        data: DataSpec = Field(default_factory=DataSpec, description="Dataset and splits.")
        learners: dict[Annotated[str, Field(pattern=NAME_PATTERN)], learner_union] = Field(
            default_factory=dict, description="The group: learner name -> searchable space or fixed model."
        )
        optim: OptimSpec = Field(default_factory=OptimSpec, description="Optimizers and schedule.")
        loss_weights: LossWeights = Field(default_factory=LossWeights, description="Weights of the stage-2 losses.")
        pseudo_labels: labeler_union = _default("pseudo_labeler", "soft", "How peers' predictions become targets.")
        hypergradient: hypergradient_union = _default("hypergradient", "first_order", "Architecture-gradient method.")
        stages: list[Stage] = Field(min_length=1, description="Stages run in order.")
        expect: list[Expectation] = Field(
            default_factory=list,
            description="What the run must produce, checked at its end and by `sgl report` (a failed one exits 1).",
        )
        run: RunSpec = Field(default_factory=RunSpec, description="Where and how to run.")

    return Spec


_cache: "tuple[int, type[BaseModel]] | None" = None


def spec_model() -> type[BaseModel]:
    """The Spec model for the components registered now (rebuilt when plugins add some)."""
    global _cache
    if _cache is None or _cache[0] != registry.version():
        _cache = (registry.version(), _build_spec_model())
    return _cache[1]
