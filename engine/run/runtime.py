"""What a run plan becomes in a process: the data, the batch streams, the learners and the step context.

``build_runtime`` fixes the order in which randomness is consumed (run seed, data, each learner
from its own seed, then the run seed again for training), which is what makes a spec and seed
reproduce bit for bit; the executor and the public runner both start from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .accuracy import batch_statistics, measure, running_statistics
from .data import BatchStream, split_indices, stream_seed
from .distributed import Collectives
from .learners import Learner
from ..plan.types import RunPlan
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
    # On the device: id(dataset) -> (the dataset, its InMemory copy on the device or None). The entry
    # holds the dataset, so no dataset built later can take its address (and a stale copy) while cached.
    resident_data: dict[int, tuple[Any, Any]] = field(default_factory=dict, repr=False)

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
                           self.collectives, self.accelerator.autocast, with_loss=with_loss, **self.eval_source(dataset))

    def eval_source(self, dataset: Any) -> dict[str, Any]:
        """Where accuracy batches of ``dataset`` come from: its copy on the device (unless its
        transform draws random numbers: then as before, through the dataset), or workers."""
        resident = self.resident(dataset)
        if resident is not None and resident.augment is not None and resident.augment.random:
            resident = None
        return {"resident": resident, "workers": self.workers(evaluation=True)}

    @property
    def measured_val(self) -> torch.Tensor:
        """The D_val images an accuracy measurement sees: all, or the first ``data.val_subset``."""
        return self.val_indices[: self.plan.data.val_subset]

    @property
    def val_images(self) -> Any:
        """D_val's images through the evaluation transform (the training set's, without augmentation)."""
        return self.bundle.train_eval if self.bundle.train_eval is not None else self.bundle.train

    def val_accuracy(self, learner: Learner, net: str, with_loss: bool = False) -> tuple[float, float | None]:
        """On D_val's measured images, through the evaluation transform."""
        return self.network_accuracy(learner, net, self.val_images, self.measured_val, with_loss)

    def resident(self, dataset: Any) -> Any:
        """``dataset`` held on the device with its augmentation as a batch operation, when batches
        are made on the device and the dataset can be (else None: batches come image by image)."""
        if not on_device_batches(self.plan, self.collectives):
            return None
        entry = self.resident_data.get(id(dataset))
        if entry is None or entry[0] is not dataset:
            data = dataset.in_memory() if hasattr(dataset, "in_memory") else None
            if data is not None:
                device = self.collectives.device
                data = type(data)(data.images.to(device), data.labels.to(device), data.augment)
            entry = self.resident_data[id(dataset)] = (dataset, data)
        return entry[1]

    def release(self, *datasets: Any) -> None:
        """Free the device copies of ``datasets`` (a stage that built them has ended)."""
        for dataset in datasets:
            entry = self.resident_data.get(id(dataset))
            if entry is not None and entry[0] is dataset:
                del self.resident_data[id(dataset)]

    def workers(self, share: int = 1, evaluation: bool = False) -> int:
        return data_workers(self.plan, self.collectives, share, evaluation)

    def networks(self) -> dict[str, Any]:
        """Every learner's networks, by ``learner.net``."""
        return {f"{name}.{net}": network.module for name, learner in self.learners.items()
                for net, network in learner.nets.items()}

    def average_statistics(self) -> None:
        """Every learner's BatchNorm statistics, averaged over the processes (one collective): each
        process gathered its own from its own batches."""
        self.collectives.mean_([b for module in self.networks().values() for b in module.buffers() if b.is_floating_point()])

    def test_accuracies(self) -> dict[str, dict[str, float]]:
        return {name: {net: self.network_accuracy(learner, net, self.bundle.test, None)[0] for net in learner.nets}
                for name, learner in self.learners.items()}


def on_device_batches(plan: RunPlan, collectives: Collectives) -> bool:
    return plan.data.batches == "device" or (plan.data.batches == "auto" and collectives.device.type == "cuda")


def data_workers(plan: RunPlan, collectives: Collectives, share: int = 1, evaluation: bool = False) -> int:
    """DataLoader workers for one of ``share`` loaders of this process (the search's three streams
    share its budget). The budget is ``data.num_workers``, or by default the CPUs of the machine
    divided among the processes on it (at most 8 each) where that pays: on a GPU, and for
    measuring accuracy (no random draws) on the CPU too; 0 for the CPU's training batches, where
    workers would change a run's random augmentation."""
    if plan.data.num_workers is not None:
        total = int(plan.data.num_workers)
    elif collectives.device.type == "cuda" or evaluation:
        local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        total = min(8, (os.cpu_count() or 1) // local_processes)
    else:
        total = 0
    return max(1, total // share) if total else 0


def deterministic(plan: RunPlan, device: torch.device) -> bool:
    """``deterministic`` as the spec says, or by the device: on the CPU yes, on a GPU speed first."""
    return plan.deterministic if plan.deterministic is not None else device.type == "cpu"


def configure_torch(plan: RunPlan, device: torch.device) -> None:
    if plan.run.threads:
        torch.set_num_threads(plan.run.threads)
    if deterministic(plan, device):
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True


def load_bundle(plan: RunPlan, accelerator: Any, base_dir: Path, **options: Any) -> Any:
    """The plan's dataset, loaded by the main process of each machine first (so a download happens
    once per machine, into a data root that may be the machine's own disk) and then by the others;
    the dataset itself locks its root while it downloads, for machines that share one."""
    with accelerator.local_main_process_first():
        return plan.data.dataset.build(base_dir, seed=plan.seed, **options)


def build_runtime(plan: RunPlan, accelerator: Any, base_dir: Path) -> Runtime:
    configure_torch(plan, accelerator.device)
    torch.manual_seed(plan.seed)
    data = plan.data
    bundle = load_bundle(plan, accelerator, base_dir)
    searched = len(bundle.train) if data.subset is None else min(data.subset, len(bundle.train))
    splits = split_indices(searched, data.split_train, data.split_val,
                           shuffle=data.shuffle, seed=stream_seed(plan.seed, "split"))
    collectives = Collectives(accelerator)
    streams = {}
    runtime = Runtime(plan, accelerator, collectives, base_dir, bundle, splits.val, streams, {}, None)  # filled below
    if plan.train_stages:  # an evaluation-only plan has no search streams (its data may be too small)
        common = dict(batch_size=data.batch_size, rank=collectives.rank, world=collectives.world,
                      num_workers=runtime.workers(share=3), device=collectives.device, resident=runtime.resident(bundle.train))
        unlabeled = splits.train if data.unlabeled == "train" else splits.val
        streams.update({
            "train": BatchStream(bundle.train, splits.train, seed=stream_seed(plan.seed, "train"), **common),
            "val": BatchStream(bundle.train, splits.val, seed=stream_seed(plan.seed, "val"), **common),
            "unlabeled": BatchStream(bundle.train, unlabeled, seed=stream_seed(plan.seed, "unlabeled"), **common),
        })
    runtime.learners.update({name: Learner(lp, bundle.task, accelerator) for name, lp in plan.learners.items()})
    torch.manual_seed(plan.seed)  # the training stream of randomness starts from the run seed
    runtime.step_ctx = StepContext(
        autocast=accelerator.autocast,
        backward=accelerator.backward,
        mean_grads=collectives.mean_,
        unscale=lambda optimizer: accelerator.unscale_gradients(optimizer=optimizer),
        grad_clip=plan.grad_clip,
        scaler=getattr(accelerator, "scaler", None),
    )
    return runtime
