"""``sgl plan --estimate``: what a spec will cost on this machine, before it runs — in a bounded time.

The runtime is built as ``sgl run`` builds it (that time is the run's set-up too) and every distinct
kind of work of the plan is *probed*: a search stage's iterations before its A-steps begin and after,
an evaluation stage's iterations, a pass of accuracy measurement over every network (per image), a
checkpoint's serialisation. Each probe runs once; then, while the estimate stays within its bound —
``budget`` seconds (30 by default) or a tenth of the run it projects, whichever is less — the probes
run again, fewest samples first, up to ``iterations`` times after their first (which pays one-off
costs, and counts only when nothing else was timed). The projection multiplies each probe's time by
the plan's counts. Nothing is written; every step is said as it happens (``say``).
"""

from __future__ import annotations

import io
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..plan.types import EvaluateStagePlan, TrainStagePlan

#: The estimate's own time at most, in seconds (also at most a tenth of the projected run).
DEFAULT_BUDGET = 30.0
SHARE = 0.1


@dataclass
class Measured:
    stage: str
    what: str                 # "iterations with A", "evaluation", "accuracy on D_val", ...
    seconds: float            # per iteration (or per measured image for accuracy)
    count: int                # iterations (or images) the plan will run
    search: bool              # counted in the search cost
    samples: int = 1          # how many times it was timed (the first, a warm-up, counts only alone)

    @property
    def total(self) -> float:
        return self.seconds * self.count


@dataclass
class Estimate:
    device: str
    processes: int
    rows: list[Measured] = field(default_factory=list)
    own_seconds: float = 0.0  # how long the estimate took
    bound: float = 0.0        # how long it was allowed
    first_pass: float = 0.0   # when every kind had been timed once (the least it can take)
    longest: float = 0.0      # the longest single sample (how far the last one can run past the bound)

    def seconds(self, search: bool | None = None) -> float:
        return sum(r.total for r in self.rows if search is None or r.search == search)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device, "processes": self.processes,
            "rows": [{"stage": r.stage, "what": r.what, "seconds_each": r.seconds, "count": r.count, "seconds": r.total,
                      "samples": r.samples} for r in self.rows],
            "search_seconds": self.seconds(True), "evaluation_seconds": self.seconds(False),
            "total_seconds": self.seconds(), "device_hours": self.seconds() * self.processes / 3600,
            "estimate_seconds": self.own_seconds, "estimate_bound": self.bound,
        }


@dataclass
class Probe:
    """One kind of work: ``run()`` does one unit of it (``per`` units: images for accuracy)."""

    stage: str
    what: str
    run: Callable[[], None]
    count: int
    search: bool
    per: int = 1
    times: list[float] = field(default_factory=list)
    shared: bool = False  # another probe's samples (its ``times``): never sampled itself

    def sample(self, sync: Callable[[], None]) -> float:
        start = time.perf_counter()
        self.run()
        sync()
        self.times.append((time.perf_counter() - start) / self.per)
        return self.times[-1] * self.per

    @property
    def seconds(self) -> float:
        """Seconds per unit: the median after the first sample (the first alone when it is all there is)."""
        return statistics.median(self.times[1:]) if len(self.times) > 1 else self.times[0]

    def row(self) -> Measured:
        return Measured(self.stage, self.what, self.seconds, self.count, self.search, len(self.times))


def estimate(compiled: Any, iterations: int = 3, budget: float | None = None,
             say: Callable[[str], None] | None = None) -> Estimate:
    """Probe the plan's kinds of work on this machine and project the whole run, within the bound."""
    import torch

    from .accelerator import make_accelerator
    from .runner import Runner
    from .runtime import build_runtime

    say = say or (lambda text: None)
    started = time.perf_counter()
    cap = DEFAULT_BUDGET if budget is None else budget
    plan = compiled.plan
    say(f"estimate: setting up as sgl run does (data, networks); bounded by {cap:g} s or a tenth of the run")
    runtime = build_runtime(plan, make_accelerator(plan), compiled.base_dir)
    device = runtime.collectives.device
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    setup = Measured("(start)", "data and networks", time.perf_counter() - started, 1, True)
    say(f"estimate: set up in {setup.seconds:.1f} s")
    probes = _probes(Runner(compiled, runtime))
    result = Estimate(device=device.type, processes=runtime.collectives.world)

    def projected() -> float:
        return setup.total + sum(p.seconds * p.count for p in probes if p.times)

    for probe in (p for p in probes if not p.shared):  # every kind once: nothing is projected without it
        seconds = probe.sample(sync)
        say(f"estimate: {probe.stage} · {probe.what}: {seconds:.2f} s")
    result.first_pass = time.perf_counter() - started
    bound = min(cap, SHARE * projected())
    while True:
        waiting = [p for p in probes if not p.shared and len(p.times) <= iterations]
        if not waiting:
            break
        probe = min(waiting, key=lambda p: len(p.times))
        if time.perf_counter() - started + min(probe.times) * probe.per > bound:
            break
        probe.sample(sync)
        bound = min(cap, SHARE * projected())
    result.rows = [setup, *(p.row() for p in probes)]
    result.longest = max((t * p.per for p in probes for t in p.times), default=0.0)
    result.own_seconds, result.bound = time.perf_counter() - started, bound
    say(f"estimate: done in {result.own_seconds:.1f} s (bound {bound:.1f} s: "
        f"{'the budget' if bound == cap else 'a tenth of the projected run'})")
    return result


def _probes(runner: Any) -> list[Probe]:
    runtime, plan = runner.runtime, runner.plan
    probes: list[Probe] = []
    per_epoch = runtime.iterations
    measurements = 0
    for stage in plan.stages:
        if isinstance(stage, TrainStagePlan):
            without_a = stage.arch_start if stage.arch_from_epoch is not None else stage.epochs
            for arch, epochs, what in ((False, without_a, "iterations without A"), (True, stage.epochs - without_a, "iterations with A")):
                if epochs > 0:
                    probes.append(Probe(stage.name, what, lambda s=stage.index, a=arch: runner.search_iteration(s, arch=a),
                                        epochs * per_epoch, True))
            measurements += len(stage.measured_epochs)
        elif isinstance(stage, EvaluateStagePlan):
            probes += _evaluation_probes(runtime, stage)
    if plan.train_stages:
        probes += _accuracy_probes(runtime, measurements)
    probes.append(_checkpoint_probe(runtime, plan))
    return probes


def _accuracy_probes(runtime: Any, measurements: int) -> list[Probe]:
    """Accuracy of every network of every learner, per image: on D_val after each measured epoch,
    and on the test set at the end — the same forward passes, so one probe's samples serve both."""
    batch = runtime.plan.data.eval_batch_size
    indices = runtime.val_indices[:batch]

    def measure() -> None:
        for learner in runtime.learners.values():
            for net in learner.nets:
                runtime.network_accuracy(learner, net, runtime.val_images, indices)

    val = Probe("(search)", "accuracy on D_val", measure, len(runtime.measured_val) * measurements, True, per=max(1, len(indices)))
    test = Probe("(end)", "accuracy on the test set", measure, len(runtime.bundle.test), True, per=val.per,
                 times=val.times, shared=True)
    return [val, test]


def _checkpoint_probe(runtime: Any, plan: Any) -> Probe:
    """A checkpoint of every learner (serialised, not written): one at the start, after each epoch
    and at the end of each stage."""
    import torch

    def serialise() -> None:
        torch.save({name: learner.state_dict() for name, learner in runtime.learners.items()}, io.BytesIO())

    count = 1 + plan.total_epochs + len(plan.stages)
    return Probe("(run)", "checkpoints", serialise, count, True)


def _evaluation_probes(runtime: Any, stage: EvaluateStagePlan) -> list[Probe]:
    import torch

    from .accuracy import accuracy, running_statistics
    from .evaluation import EvaluationTraining

    training = EvaluationTraining(runtime, stage)
    training.begin_epoch(0)
    test_images = len(training.bundle.test)
    probe = min(test_images, runtime.plan.data.eval_batch_size)
    subset = torch.utils.data.Subset(training.bundle.test, range(probe))

    def test_pass() -> None:
        with running_statistics(training.net):
            accuracy(training.net, subset, None, runtime.plan.data.eval_batch_size, runtime.collectives,
                     runtime.accelerator.autocast)

    return [Probe(stage.name, "evaluation", training.step, stage.epochs * training.iterations, False),
            Probe(stage.name, "accuracy on the test set", test_pass, stage.epochs * test_images, False, per=max(1, probe))]


def render(result: Estimate) -> str:
    lines = [f"estimate on this machine ({result.device}, {result.processes} process(es)); "
             "each kind of work timed, after a warm-up where the bound allowed:"]
    for r in result.rows:
        each = f"{r.seconds * 1000:.3g} ms" if r.seconds < 1 else f"{r.seconds:.3g} s"
        unit = "image" if "accuracy" in r.what else "time" if r.count == 1 or "checkpoint" in r.what else "iteration"
        lines.append(f"  {r.stage:<14} {r.what:<26} {each:>10} per {unit:<9} x {r.count:>10,} = {_duration(r.total)}")
    hours = result.seconds() * result.processes / 3600
    lines.append(f"search {_duration(result.seconds(True))}, evaluation {_duration(result.seconds(False))}, "
                 f"in all {_duration(result.seconds())} of wall time, {hours:.3g} {result.device.upper()}-hours "
                 f"(this estimate took {_duration(result.own_seconds)})")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
