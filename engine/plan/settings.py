"""The plan's own value types for the run as a whole: data, loss weights, run settings, early
stopping and expectations. Frozen, and built from the spec's sections by the planner alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sgl.registry.datasets import DatasetConfig


@dataclass(frozen=True)
class DataPlan:
    dataset: DatasetConfig            # builds the data (``build(base_dir, seed=..., **options)``)
    split_train: float
    split_val: float
    shuffle: bool
    subset: int | None                # search on the first N training images only
    unlabeled: Literal["train", "val"]
    batch_size: int
    eval_batch_size: int
    num_workers: int | None           # None: decided by the device
    examples: dict[str, int | None]   # D_train / D_val sizes when known without loading
    batches: Literal["auto", "device", "per_image"] = "auto"  # auto: decided by the device
    val_every: int = 1                # measure D_val accuracy every this many epochs (and after the last)
    val_subset: int | None = None     # on D_val's first N images
    val_measured: int | None = None   # images of D_val each measurement sees, when the sizes are known


@dataclass(frozen=True)
class LossWeights:
    labeled: float  # w_lab: the labelled cross-entropy of stage 2
    pseudo: float   # λ: each peer's pseudo-label loss


@dataclass(frozen=True)
class EarlyStopRule:
    """Stop a search stage once ``metric`` worsened ``patience`` epochs in a row."""

    metric: Literal["val_loss", "val_acc"]
    patience: int


@dataclass(frozen=True)
class ExpectationPlan:
    """A number the run must produce: a dotted path of summary.json within ``[low, high]``."""

    metric: str
    low: float
    high: float
    source: str        # where the number comes from (a paper, or "measured: ...")
    stated_in: str     # the spec file that states it (a base file when inherited through extends)
    inherited: bool    # stated in a base spec, not in the spec that was run


@dataclass(frozen=True)
class TrackerPlan:
    """An experiment tracker of the run (the spec's ``run.trackers``, or TensorBoard by default)."""

    name: str                         # Accelerate's name: tensorboard, mlflow, wandb, ...
    experiment: str                   # MLflow experiment, W&B project, ...: the spec's name unless given
    uri: str | None                   # where it stores; None: inside the run directory
    options: dict[str, str | int | float | bool]  # passed to the tracker's own start
    required: bool                    # a missing package is an error (else the tracker is left out)


@dataclass(frozen=True)
class RunSettings:
    """Where and how the run runs (the spec's ``run:`` section, every default filled)."""

    output: Path                      # runs go to <output>/<name>/<id>/ (relative to the spec's folder)
    mixed_precision: Literal["no", "fp16", "bf16"]
    cpu: bool
    log_every: int                    # iterations between metric lines (and host syncs)
    tensorboard: Literal["auto", "on", "off"]
    trackers: tuple[TrackerPlan, ...]  # every tracker, the default TensorBoard included
    threads: int | None
    eval_bn: Literal["batch", "running"]
    fused: bool
    checkpoint_every: float | None    # minutes between checkpoints inside an epoch
    dist_timeout: float               # seconds a process waits in a collective
