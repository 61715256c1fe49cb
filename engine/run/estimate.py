"""``sgl plan --estimate``: what a spec will cost on this machine, before it runs.

Every distinct kind of training iteration of the plan — a search stage's iterations before its
A-steps begin and after, an evaluation stage's — is timed here for a few iterations after a
warm-up (so start-up and one-off compilation are left out), as is a pass of accuracy measurement;
the projection multiplies them by the plan's counts of iterations, epochs and measured images.
Nothing is written: the runtime is built as ``sgl run`` builds it and thrown away.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..plan.types import EvaluateStagePlan, TrainStagePlan


@dataclass
class Measured:
    stage: str
    what: str                 # "iterations with A", "evaluation", "accuracy on D_val", ...
    seconds: float            # per iteration (or per measured image for accuracy)
    count: int                # iterations (or images) the plan will run
    search: bool              # counted in the search cost

    @property
    def total(self) -> float:
        return self.seconds * self.count


@dataclass
class Estimate:
    device: str
    processes: int
    rows: list[Measured] = field(default_factory=list)

    def seconds(self, search: bool | None = None) -> float:
        return sum(r.total for r in self.rows if search is None or r.search == search)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device, "processes": self.processes,
            "rows": [{"stage": r.stage, "what": r.what, "seconds_each": r.seconds, "count": r.count, "seconds": r.total}
                     for r in self.rows],
            "search_seconds": self.seconds(True), "evaluation_seconds": self.seconds(False),
            "total_seconds": self.seconds(), "device_hours": self.seconds() * self.processes / 3600,
        }


def _timed(step: Callable[[], None], iterations: int, warmup: int, sync: Callable[[], None]) -> float:
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def estimate(compiled: Any, iterations: int = 3, warmup: int = 1) -> Estimate:
    """Time the plan's kinds of iteration on this machine and project the whole run."""
    import torch

    from .accelerator import make_accelerator
    from .runner import Runner
    from .runtime import build_runtime

    plan = compiled.plan
    accelerator = make_accelerator(plan)
    runtime = build_runtime(plan, accelerator, compiled.base_dir)
    runner = Runner(compiled, runtime)
    device = runtime.collectives.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    result = Estimate(device=device.type, processes=runtime.collectives.world)
    per_epoch = runtime.iterations
    for stage in plan.stages:
        if isinstance(stage, TrainStagePlan):
            result.rows += _search_rows(runner, stage, per_epoch, iterations, warmup, sync)
        elif isinstance(stage, EvaluateStagePlan):
            result.rows += _evaluation_rows(runtime, stage, iterations, warmup, sync)
    if plan.train_stages:  # the summary's test accuracy of every network
        networks = sum(len(learner.nets) for learner in runtime.learners.values())
        per_image = _accuracy_seconds_per_image(runtime, sync)
        result.rows.append(Measured("(end)", "accuracy on the test set", per_image, len(runtime.bundle.test) * networks, True))
    return result


def _search_rows(runner: Any, stage: TrainStagePlan, per_epoch: int, iterations: int, warmup: int, sync) -> list[Measured]:
    rows = []
    without_a = stage.arch_start if stage.arch_from_epoch is not None else stage.epochs
    for arch, epochs, what in ((False, without_a, "iterations without A"), (True, stage.epochs - without_a, "iterations with A")):
        if epochs <= 0:
            continue
        seconds = _timed(lambda: runner.search_iteration(stage.index, arch=arch), iterations, warmup, sync)
        rows.append(Measured(stage.name, what, seconds, epochs * per_epoch, True))
    # accuracy on D_val after every measured epoch: each learner's networks
    runtime = runner.runtime
    networks = sum(len(learner.nets) for learner in runtime.learners.values())
    per_image = _accuracy_seconds_per_image(runtime, sync)
    count = len(runtime.measured_val) * networks * len(stage.measured_epochs)
    rows.append(Measured(stage.name, "accuracy on D_val", per_image, count, True))
    return rows


def _accuracy_seconds_per_image(runtime: Any, sync) -> float:
    """Seconds per image of measuring every network's accuracy (a few batches timed)."""
    learners = list(runtime.learners.values())
    if not learners:
        return 0.0
    learner = learners[0]
    net = next(iter(learner.nets))
    batch = runtime.plan.data.eval_batch_size
    indices = runtime.val_indices[: batch * 2]
    seconds = _timed(lambda: runtime.network_accuracy(learner, net, runtime.bundle.train, indices), 2, 1, sync)
    return seconds / max(1, len(indices))


def _evaluation_rows(runtime: Any, stage: EvaluateStagePlan, iterations: int, warmup: int, sync) -> list[Measured]:
    import torch

    from .accuracy import accuracy, running_statistics
    from .evaluation import EvaluationTraining

    training = EvaluationTraining(runtime, stage)
    training.begin_epoch(0)
    seconds = _timed(training.step, iterations, warmup, sync)
    test_images = len(training.bundle.test)
    probe = min(test_images, runtime.plan.data.eval_batch_size * 2)
    subset = torch.utils.data.Subset(training.bundle.test, range(probe))

    def test_pass() -> None:
        with running_statistics(training.net):
            accuracy(training.net, subset, None, runtime.plan.data.eval_batch_size, runtime.collectives,
                     runtime.accelerator.autocast)

    test_seconds = _timed(test_pass, 2, 1, sync) / max(1, probe)
    return [Measured(stage.name, "evaluation", seconds, stage.epochs * training.iterations, False),
            Measured(stage.name, "accuracy on the test set", test_seconds, stage.epochs * test_images, False)]


def render(result: Estimate) -> str:
    lines = [f"estimate on this machine ({result.device}, {result.processes} process(es)); "
             "each kind of iteration timed after a warm-up:"]
    for r in result.rows:
        each = f"{r.seconds * 1000:.3g} ms" if r.seconds < 1 else f"{r.seconds:.3g} s"
        unit = "image" if "accuracy" in r.what else "iteration"
        lines.append(f"  {r.stage:<14} {r.what:<26} {each:>10} per {unit:<9} x {r.count:>10,} = {_duration(r.total)}")
    hours = result.seconds() * result.processes / 3600
    lines.append(f"search {_duration(result.seconds(True))}, evaluation {_duration(result.seconds(False))}, "
                 f"in all {_duration(result.seconds())} of wall time, {hours:.3g} {result.device.upper()}-hours")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
