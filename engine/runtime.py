"""What a run plan becomes in a process: the data, the batch streams, the learners and the step context.

``build_runtime`` fixes the order in which randomness is consumed (run seed, data, each learner
from its own seed, then the run seed again for training), which is what makes a spec and seed
reproduce bit for bit; the executor and the public runner both start from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .accuracy import batch_statistics, measure, running_statistics
from .data import BatchStream, split_indices, stream_seed
from .distributed import Collectives
from .learners import Learner
from .runplan import RunPlan
from .steps import StepContext


@dataclass
class Runtime:
    plan: RunPlan
    accelerator: Any
    collectives: Collectives
    base_dir: Path
    bundle: Any                        # the dataset: train (augmented), test, task
    val_indices: torch.Tensor          # D_val within the training set
    streams: dict[str, BatchStream]    # train / val / unlabeled (empty for evaluation-only plans)
    learners: dict[str, Learner]
    step_ctx: StepContext

    @property
    def iterations(self) -> int:
        """Iterations of one search epoch: one pass over D_train."""
        return self.streams["train"].batches_per_cycle if self.streams else 0

    def network_accuracy(self, learner: Learner, net: str, dataset: Any, indices: torch.Tensor | None,
                         with_loss: bool = False) -> tuple[float, float | None]:
        """A learner's network on a dataset, with the BatchNorm statistics ``run.eval_bn`` asks for:
        ``(accuracy, mean cross-entropy when asked for)``."""
        module = learner.nets[net].module
        statistics = batch_statistics if self.plan.run.eval_bn == "batch" else running_statistics
        with statistics(module):
            arch = learner.arch()
            return measure(lambda x: learner.logits(net, x, arch), dataset, indices, self.plan.data.eval_batch_size,
                           self.collectives, self.accelerator.autocast, with_loss=with_loss)

    def val_accuracy(self, learner: Learner, net: str, with_loss: bool = False) -> tuple[float, float | None]:
        return self.network_accuracy(learner, net, self.bundle.train, self.val_indices, with_loss)

    def test_accuracies(self) -> dict[str, dict[str, float]]:
        return {name: {net: self.network_accuracy(learner, net, self.bundle.test, None)[0] for net in learner.nets}
                for name, learner in self.learners.items()}


def configure_torch(plan: RunPlan) -> None:
    if plan.run.threads:
        torch.set_num_threads(plan.run.threads)
    if plan.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def build_runtime(plan: RunPlan, accelerator: Any, base_dir: Path) -> Runtime:
    configure_torch(plan)
    torch.manual_seed(plan.seed)
    data = plan.data
    with accelerator.main_process_first():  # a download (download: true) happens once, not per process
        bundle = data.dataset.build(base_dir, seed=plan.seed)
    searched = len(bundle.train) if data.subset is None else min(data.subset, len(bundle.train))
    splits = split_indices(searched, data.split_train, data.split_val,
                           shuffle=data.shuffle, seed=stream_seed(plan.seed, "split"))
    collectives = Collectives(accelerator)
    streams = {}
    if plan.train_stages:  # an evaluation-only plan has no search streams (its data may be too small)
        common = dict(batch_size=data.batch_size, rank=collectives.rank, world=collectives.world,
                      num_workers=data.num_workers, device=collectives.device)
        unlabeled = splits.train if data.unlabeled == "train" else splits.val
        streams = {
            "train": BatchStream(bundle.train, splits.train, seed=stream_seed(plan.seed, "train"), **common),
            "val": BatchStream(bundle.train, splits.val, seed=stream_seed(plan.seed, "val"), **common),
            "unlabeled": BatchStream(bundle.train, unlabeled, seed=stream_seed(plan.seed, "unlabeled"), **common),
        }
    learners = {name: Learner(lp, bundle.task, accelerator) for name, lp in plan.learners.items()}
    torch.manual_seed(plan.seed)  # the training stream of randomness starts from the run seed
    step_ctx = StepContext(
        autocast=accelerator.autocast,
        backward=accelerator.backward,
        mean_grads=collectives.mean_,
        unscale=lambda optimizer: accelerator.unscale_gradients(optimizer=optimizer),
        grad_clip=plan.grad_clip,
        scaler=getattr(accelerator, "scaler", None),
    )
    return Runtime(plan, accelerator, collectives, base_dir, bundle, splits.val, streams, learners, step_ctx)
