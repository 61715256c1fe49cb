"""The spec's static sections: every key, default and description that names no component.

``models.py`` assembles them with the registry's components into the Spec model.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sgl.registry.core import MAX_BATCH, MAX_EPOCHS, PathField, PathText
from sgl.registry.evaluation import DEFAULT_PROTOCOL

SPEC_VERSION = 1
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
#: Names become file and folder names (genotypes/<learner>.history.jsonl, figures/cell_<learner>_...,
#: models/<stage>.pt, <output>/<name>/): short enough for every file system's 255-byte limit.
NAME_MAX = 64
#: The per-iteration steps a training stage can list: A (architecture, stage 3), W (stage 1),
#: PL (pseudo-labels), V (stage 2).
StepName = Literal["A", "W", "PL", "V"]


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
        "after); evaluation stages still train on all of it. Null: all of it (every SGL recipe).",
    )
    batch_size: PositiveInt = Field(64, le=MAX_BATCH, description="Batch size of every search stream, per process (at most 65,536).")
    eval_batch_size: PositiveInt = Field(256, le=MAX_BATCH, description="Batch size for measuring accuracy (at most 65,536).")
    num_workers: NonNegativeInt | None = Field(
        None,
        le=256,
        description="DataLoader worker processes of each process for datasets read image by image, shared by its "
        "batch streams (0: in the main process; at most 256). Null: the machine's CPUs divided among its "
        "processes, at most 8, on a GPU; 0 for a CPU run's training batches, where workers would change their "
        "random augmentation.",
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
    (a rule a student copy of the SGL-PC-DARTS code added, its indexing fixed; the authors' code has
    no early stopping)."""

    metric: Literal["val_loss", "val_acc"] = Field(
        "val_loss",
        description="val_loss: the learners' mean cross-entropy on D_val, through the network A flows "
        "through (the authors' sum of both V's losses, up to a factor); val_acc: their mean accuracy.",
    )
    patience: PositiveInt = Field(5, description="Consecutive epochs of worsening that stop the stage.")


class TrainStage(Section):
    type: Literal["train"] = Field("train", description="A search stage: epochs of iterations of steps.")
    name: str = Field("search", pattern=NAME_PATTERN, max_length=NAME_MAX, description="Label shown in progress and metrics.")
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
    name: str = Field("derive", pattern=NAME_PATTERN, max_length=NAME_MAX, description="Label.")


class EvaluateStageBase(Section):
    """What every evaluate stage has; the protocol it follows (``protocol:``, default darts) brings
    the rest of its fields (``sgl components protocol`` lists them)."""

    type: Literal["evaluate"] = Field("evaluate", description="Train a genotype from scratch and test it.")
    name: str = Field("evaluate", pattern=NAME_PATTERN, max_length=NAME_MAX, description="Label.")
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


#: The experiment trackers a run can report to (Accelerate's trackers), each installed by the extra
#: of the same name (``pip install 'sgl[mlflow]'``), ``comet_ml`` by ``sgl[comet]``.
TrackerName = Literal["tensorboard", "mlflow", "wandb", "aim", "comet_ml", "clearml", "dvclive"]


class TrackerSpec(Section):
    name: TrackerName = Field(description="The tracker (Accelerate's name for it).")
    experiment: str | None = Field(
        None, max_length=250, description="MLflow experiment, W&B / Comet / ClearML project, Aim experiment (default: the spec's name).")
    uri: str | None = Field(
        None, max_length=2000,
        description="Where the tracker stores: MLflow's tracking URI, Aim's repository (default: inside the run "
        "directory, under trackers/; an MLFLOW_TRACKING_URI in the environment counts as given).")
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Passed to the tracker's own start (wandb.init's mode, entity, tags, ...).")


def _trackers(value: Any) -> Any:
    """A tracker given by its name alone (``trackers: [tensorboard, mlflow]``) has every default."""
    if isinstance(value, (list, tuple)):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return value


class RunSpec(Section):
    output: PathField = Field(Path("runs"), description="Runs go to <output>/<name>/<id>/ (relative to the spec file).")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field("no", description="Autocast precision (Accelerate).")
    cpu: bool = Field(False, description="Run on the CPU even when an accelerator is present.")
    log_every: PositiveInt = Field(20, description="Log metrics (and sync with the device) every this many iterations.")
    tensorboard: Literal["auto", "on", "off"] = Field(
        "auto", description="TensorBoard events when run.trackers is not given: auto = when installed.")
    trackers: Annotated[tuple[TrackerSpec, ...], BeforeValidator(_trackers)] | None = Field(
        None, max_length=7,
        description="Experiment trackers that get the resolved spec, every metric line, the genotype of every "
        "epoch and the figures: names (tensorboard, mlflow, wandb, aim, comet_ml, clearml, dvclive) or mappings "
        "{name, experiment, uri, options}. Each is stored inside the run directory unless told otherwise; a "
        "tracker that is not installed is an error naming its extra (pip install 'sgl[mlflow]'). Default: "
        "TensorBoard as run.tensorboard says.")
    threads: PositiveInt | None = Field(None, le=1024, description="torch CPU threads (default: torch's choice; at most 1024).")
    eval_bn: Literal["batch", "running"] = Field(
        "batch",
        description="BatchNorm statistics when measuring the learners' accuracy during the search: batch "
        "(as the architecture step sees the network) or running (DARTS' infer; poor early in a search).",
    )
    fused: bool = Field(
        True,
        description="Compute searchable learners' supernets with the fused implementation wherever their search "
        "space has one (DARTS, PC-DARTS, P-DARTS): the edges into a node that apply the same op run as one call, "
        "and depthwise convolutions take exact rewrites onto fast CPU kernels. The same math, summed in another "
        "order (equal to 1e-10 in float64; float32 results differ in the last bits), 1.7-2.8x faster on the CPU "
        "(bench/iteration.py). false: the plain networks, for reference comparisons.",
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

    @model_validator(mode="after")
    def _each_tracker_once(self) -> "RunSpec":
        names = [t.name for t in self.trackers or ()]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise PydanticCustomError("tracker_twice", f"trackers names {', '.join(twice)} more than once",
                                      {"at": "trackers"})
        return self


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
