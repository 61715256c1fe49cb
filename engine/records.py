"""The lines of metrics.jsonl: their kinds and keys, shared by what writes them and what reads them.

Three kinds of line (docs/run-directory.md):

- ``iter``: per learner, every ``run.log_every`` iterations and at the end of each epoch — means
  over the interval of each trained network's loss and accuracy, and the learning rates;
- ``epoch``: per learner and epoch of a search stage — training means, validation accuracy,
  learning rates, and the architecture's entropy per cell type;
- ``eval_epoch``: per epoch of an evaluation stage.

Both name their stage: evaluation lines under ``stage``, search lines under ``phase`` — the key the
file had before stages were called stages, kept so that every run directory reads alike (and
distinct from a growing phase, which no line records).
"""

from __future__ import annotations

from typing import Any

ITER = "iter"
EPOCH = "epoch"
EVAL_EPOCH = "eval_epoch"

KIND = "kind"
SEARCH_STAGE = "phase"     # the stage name in iter/epoch lines (see above)
EVAL_STAGE = "stage"       # the stage name in eval_epoch lines
EPOCH_INDEX = "epoch"      # 0-based; global over search stages, per stage for evaluations
STEP = "step"              # global iteration (iter lines)
LEARNER = "learner"
TIME = "time"              # seconds: the only value that differs between two runs of a spec and seed

#: The networks a learner trains, in display order.
NETWORKS = ("W", "V")


def loss(net: str) -> str:
    """Interval mean of a network's training loss (iter lines)."""
    return f"{net}/loss"


def acc(net: str) -> str:
    """Interval accuracy on the training batches (iter lines)."""
    return f"{net}/acc"


def lr(net: str) -> str:
    return f"lr/{net}"


def train_loss(net: str) -> str:
    """Epoch mean of a network's training loss (epoch lines)."""
    return f"train/{net}/loss"


def train_acc(net: str) -> str:
    return f"train/{net}/acc"


def val_acc(net: str) -> str:
    """Accuracy on D_val at the end of the epoch (epoch lines)."""
    return f"val/{net}/acc"


def val_loss(net: str) -> str:
    """Mean cross-entropy on D_val at the end of the epoch (epoch lines of stages with early_stop)."""
    return f"val/{net}/loss"


def entropy(cell: str) -> str:
    return f"entropy/{cell}"


def is_val_acc(key: str) -> bool:
    return key.startswith("val/") and key.endswith("/acc")


# Keys of eval_epoch lines.
EVAL_TRAIN_LOSS = "train/loss"
EVAL_TRAIN_ACC = "train/acc"
EVAL_TEST_ACC = "test/acc"
EVAL_LR = "lr"


def of_kind(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get(KIND) == kind]
