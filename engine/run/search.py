"""A search stage as the training loop's work: the iteration (``iteration.py``) plus what a stage
records — interval and epoch lines, validation accuracy, architectures — and its early stop.

It knows the plan's vocabulary (steps, learners, networks), not SGL's.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from .. import records as R
from ..errors import NonFiniteLoss
from ..plan.settings import EarlyStopRule
from ..plan.types import TrainStagePlan
from .iteration import SearchIteration
from .metrics import Accumulator
from .runtime import Runtime
from .sink import RunSink


class EarlyStopWatch:
    """The stage's early-stop measure, one value per measured epoch; says when it has worsened
    ``rule.patience`` epochs in a row."""

    def __init__(self, rule: EarlyStopRule) -> None:
        self.rule = rule
        self.values: list[float] = []

    def worsened(self, value: float) -> bool:
        self.values.append(value)
        recent = self.values[-(self.rule.patience + 1):]
        if len(recent) <= self.rule.patience:
            return False
        worse = (lambda a, b: b > a) if self.rule.metric == "val_loss" else (lambda a, b: b < a)
        return all(worse(a, b) for a, b in zip(recent, recent[1:]))

    def describe(self) -> str:
        recent = self.values[-(self.rule.patience + 1):]
        return (f"{self.rule.metric} worsened {self.rule.patience} epochs in a row "
                f"({', '.join(f'{v:.4f}' for v in recent)})")


class SearchStage:
    def __init__(self, runtime: Runtime, stage: TrainStagePlan, sink: RunSink, progress: Any, clock: Any) -> None:
        self.runtime = runtime
        self.stage = stage
        self.iteration_work = SearchIteration(runtime, stage)
        self.sink = sink
        self.progress = progress
        self.clock = clock
        self.name = stage.name
        self.epochs = stage.epochs
        self.iterations = runtime.iterations
        self.interval_sums = Accumulator()
        self.epoch_sums = Accumulator()
        self.watch = EarlyStopWatch(stage.early_stop) if stage.early_stop is not None else None

    # -- the loop's interface
    def begin(self) -> None:
        for name in self.iteration_work.enter():
            self.progress.message(f"{name}: entered growing phase {self.stage.growing_phase[name] + 1} ({self.stage.name})")

    def begin_epoch(self, epoch: int) -> None:
        self.iteration_work.begin_epoch(epoch)

    def display(self, epoch: int) -> tuple[int, int]:
        """(epoch shown, of how many): epochs count over all search stages."""
        return self.stage.first_epoch + epoch, self.runtime.plan.total_epochs

    def iteration(self, epoch: int) -> None:
        for learner, net, result in self.iteration_work.run(arch_on=self.stage.arch_on(epoch)):
            self.interval_sums.add(learner, net, result)

    def flush(self, epoch: int, iteration: int) -> None:
        """A logging interval ends: one host sync, one iter line per learner; stop on a non-finite loss."""
        values = self.interval_sums.read_and_reset()
        if not values:
            return
        self.epoch_sums.merge(values)
        global_epoch = self.stage.first_epoch + epoch
        bad = [(name, net) for (name, net), stats in values.items() if not stats["finite"]]
        # every process stops together: one that stopped alone would leave the others waiting
        if self.runtime.collectives.any_of([bool(bad)])[0]:
            what = f"{bad[0][1]} loss of learner {bad[0][0]!r}" if bad else "loss on another process"
            raise NonFiniteLoss(f"non-finite {what} in {self.stage.name}, epoch {global_epoch + 1} "
                                f"(before iteration {iteration}); try a lower learning rate or grad_clip")
        now = self.clock.process_seconds()
        shown = {}
        for name, nets in _by_learner(values).items():
            record = {R.KIND: R.ITER, R.SEARCH_STAGE: self.stage.name, R.EPOCH_INDEX: global_epoch,
                      R.STEP: global_epoch * self.iterations + iteration, R.LEARNER: name}
            for net, stats in nets.items():
                record[R.loss(net)] = stats["loss"]
                record[R.acc(net)] = stats["acc"]
            for net_name, net in self.runtime.learners[name].nets.items():
                record[R.lr(net_name)] = net.lr
            record[R.TIME] = now
            self.sink.log(record)
            shown[name] = {f"{net} loss": stats["loss"] for net, stats in nets.items()}
        self.progress.report(shown)

    def end_epoch(self, epoch: int) -> bool:
        """Schedules advance; per learner an epoch line with validation accuracy; architectures
        recorded. Returns True when the stage's early-stop rule ends it here."""
        learners = self.runtime.learners
        for name, net in self.stage.stepped:
            learners[name].nets[net].scheduler.step()
        # Measured and checkpointed with the mean of every process's statistics (nothing alone).
        self.runtime.average_statistics()
        totals = _by_learner(self.epoch_sums.read_and_reset())
        global_epoch = self.stage.first_epoch + epoch
        measured = epoch in self.stage.measured_epochs
        now = self.clock.process_seconds()
        watched = [self._epoch_line(name, global_epoch, totals.get(name, {}), measured, now) for name in learners]
        watched = [value for value in watched if value is not None]
        lines = [f"{name}: " + ", ".join(f"{R.val_acc(net)} {line[R.val_acc(net)]:.4f}" for net in R.NETWORKS
                                        if isinstance(line.get(R.val_acc(net)), float) and R.train_loss(net) in line)
                 for name, line in ((name, self.sink.last_epoch(name)) for name in learners)]
        self.progress.message(escape(f"[{self.stage.name}] epoch {global_epoch + 1}/{self.runtime.plan.total_epochs} done · "
                                     + " · ".join(lines)))
        if self.watch is None or not watched or not self.watch.worsened(sum(watched) / len(watched)):
            return False
        self.progress.message(f"[{self.stage.name}] early stop: {self.watch.describe()}")
        return True

    def _epoch_line(self, name: str, global_epoch: int, totals: dict[str, dict[str, float]], measured: bool,
                    now: float) -> float | None:
        """Record one learner's epoch line (and its architecture); returns its early-stop measure."""
        learner = self.runtime.learners[name]
        rule = self.stage.early_stop
        record: dict[str, Any] = {R.KIND: R.EPOCH, R.SEARCH_STAGE: self.stage.name, R.EPOCH_INDEX: global_epoch, R.LEARNER: name}
        for net, stats in totals.items():
            record[R.train_loss(net)] = stats["loss"]
            record[R.train_acc(net)] = stats["acc"]
        watched = None
        for net_name, net in learner.nets.items():
            if measured:
                acc, loss = self.runtime.val_accuracy(learner, net_name, with_loss=rule is not None)
                record[R.val_acc(net_name)] = acc
                if loss is not None:
                    record[R.val_loss(net_name)] = loss
                if net_name == learner.plan.final_net and rule is not None:
                    watched = loss if rule.metric == "val_loss" else acc
            record[R.lr(net_name)] = net.lr
        if learner.space is not None:
            entropy = learner.space.entropy()
            record.update({R.entropy(cell): value for cell, value in entropy.items()})
            architecture = learner.architecture()
            self.sink.architecture(name, architecture)
            self.sink.architecture_history(name, global_epoch, architecture, learner.space.snapshot(), entropy)
        record[R.TIME] = now
        self.sink.log(record)
        return watched

    def state_dict(self) -> dict[str, Any]:
        return {"interval": self.interval_sums.state_dict(), "epoch": self.epoch_sums.state_dict(),
                "watched": list(self.watch.values) if self.watch is not None else []}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.interval_sums.load_state_dict(state["interval"])
        self.epoch_sums.load_state_dict(state["epoch"])
        if self.watch is not None:
            self.watch.values = list(state.get("watched", []))


def _by_learner(values: dict[tuple[str, str], dict[str, float]]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (name, net), stats in values.items():
        out.setdefault(name, {})[net] = stats
    return out
