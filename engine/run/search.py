"""A search stage: epochs of iterations whose steps (A, W, PL, V) the plan lists, over the learners.

It is the training loop's work for a ``TrainStagePlan``: one iteration draws the batches the
stage reads and runs its actions in order; at logging intervals and epoch ends it turns the
metric sums into records. It knows the plan's vocabulary (steps, learners, networks), not SGL.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from sgl.registry.hypergrad.base import ArchContext

from . import records as R
from ..errors import NonFiniteLoss
from ..faults import poisoned
from .metrics import Accumulator
from ..plan.types import RunPlan, TrainStagePlan
from .runtime import Runtime
from .steps import a_step, pl_step, v_step, w_step


class SearchStage:
    def __init__(self, runtime: Runtime, stage: TrainStagePlan, recorder: Any, progress: Any, clock: Any) -> None:
        self.runtime = runtime
        self.plan: RunPlan = runtime.plan
        self.stage = stage
        self.recorder = recorder
        self.progress = progress
        self.clock = clock
        self.name = stage.name
        self.epochs = stage.epochs
        self.iterations = runtime.iterations
        self.interval_sums = Accumulator()
        self.epoch_sums = Accumulator()
        self._has_v = any(a.step == "V" for a in stage.actions)
        self.watched: list[float] = []  # the early-stop measure, one value per epoch of this stage

    # -- the loop's interface
    def begin(self) -> None:
        """Enter the stage: a growing space moves to this stage's phase (building new networks)."""
        for name, phase in self.stage.growing_phase.items():
            if self.runtime.learners[name].enter_growing_phase(phase):
                self.progress.message(f"{name}: entered growing phase {phase + 1} ({self.stage.name})")

    def begin_epoch(self, epoch: int) -> None:
        for name, learner in self.runtime.learners.items():
            ramps = self.stage.ramps.get(name)
            if ramps is None:  # the stage is the whole schedule
                positions = {net: (epoch, self.stage.epochs, self.stage.arch_start) for net in learner.nets}
            else:  # the schedule spans the growing phase's stages that train the network
                positions = {net: (before + epoch, span, arch) for net, (before, span, arch) in ramps.items()}
            learner.configure_epoch(positions)

    def display(self, epoch: int) -> tuple[int, int]:
        """(epoch shown, of how many): epochs count over all search stages."""
        return self.stage.first_epoch + epoch, self.plan.total_epochs

    def iteration(self, epoch: int) -> None:
        start = self.stage.arch_from_epoch
        self.run_iteration(arch_on=start is not None and self.stage.first_epoch + epoch >= start)

    def run_iteration(self, arch_on: bool) -> None:
        """The stage's batches, then its actions in order (A-steps only when ``arch_on``)."""
        streams, learners, step_ctx = self.runtime.streams, self.runtime.learners, self.runtime.step_ctx
        reads = self.stage.streams
        x_tr, y_tr = streams["train"].next()
        x_u = streams["unlabeled"].next()[0] if "unlabeled" in reads else None
        x_v, y_v = streams["val"].next() if "val" in reads else (None, None)
        pseudo: dict[str, Any] = {}
        lw = self.plan.loss_weights
        for action in self.stage.actions:
            names = action.learners
            if action.step == "A":
                if arch_on:
                    context = self._arch_context(names, x_tr, y_tr, x_u, x_v, y_v)
                    a_step(learners, list(names), self.plan.hypergradient, context, step_ctx)
            elif action.step == "W":
                for k in names:
                    self.interval_sums.add(k, "W", poisoned(w_step(learners[k], x_tr, y_tr, step_ctx)))
            elif action.step == "PL":
                for j in names:
                    pseudo[j] = pl_step(learners[j], x_u, self.plan.labeler, step_ctx)
            else:
                for k in names:
                    peers = [pseudo[j] for j in self.plan.learners[k].peers]
                    result = v_step(learners[k], x_tr, y_tr, x_u, peers, lw.labeled, lw.pseudo, step_ctx)
                    self.interval_sums.add(k, "V", result)

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
            record = {R.KIND: R.ITER, R.STAGE_OF_SEARCH: self.stage.name, R.EPOCH_INDEX: global_epoch,
                      R.STEP: global_epoch * self.iterations + iteration, R.LEARNER: name}
            for net, stats in nets.items():
                record[R.loss(net)] = stats["loss"]
                record[R.acc(net)] = stats["acc"]
            for net_name, net in self.runtime.learners[name].nets.items():
                record[R.lr(net_name)] = net.lr
            record[R.TIME] = now
            self.recorder.log(record)
            shown[name] = {f"{net} loss": stats["loss"] for net, stats in nets.items()}
        self.progress.report(shown)

    def end_epoch(self, epoch: int) -> bool:
        """Schedules advance; per learner an epoch line with validation accuracy; genotypes recorded.
        Returns True when the stage's early-stop rule ends it here."""
        learners = self.runtime.learners
        for name, net in self.stage.stepped:
            learners[name].nets[net].scheduler.step()
        totals = _by_learner(self.epoch_sums.read_and_reset())
        global_epoch = self.stage.first_epoch + epoch
        now = self.clock.process_seconds()
        rule = self.stage.early_stop
        every = self.plan.data.val_every
        measured = (global_epoch + 1) % every == 0 or global_epoch + 1 == self.plan.total_epochs or epoch + 1 == self.epochs
        watched = []
        for name, learner in learners.items():
            record: dict[str, Any] = {R.KIND: R.EPOCH, R.STAGE_OF_SEARCH: self.stage.name, R.EPOCH_INDEX: global_epoch, R.LEARNER: name}
            for net, stats in totals.get(name, {}).items():
                record[R.train_loss(net)] = stats["loss"]
                record[R.train_acc(net)] = stats["acc"]
            final = learner.plan.arch_net or ("V" if "V" in learner.nets else "W")
            for net_name, net in learner.nets.items():
                if measured:
                    acc, loss = self.runtime.val_accuracy(learner, net_name, with_loss=rule is not None)
                    record[R.val_acc(net_name)] = acc
                    if loss is not None:
                        record[R.val_loss(net_name)] = loss
                    if net_name == final and rule is not None:
                        watched.append(loss if rule.metric == "val_loss" else acc)
                record[R.lr(net_name)] = net.lr
            if learner.space is not None:
                entropy = learner.space.entropy()
                record.update({R.entropy(cell): value for cell, value in entropy.items()})
                genotype = learner.genotype()
                self.recorder.genotype(name, genotype)
                self.recorder.genotype_history(name, global_epoch, genotype, learner.space.snapshot(), entropy)
            record[R.TIME] = now
            self.recorder.log(record)
        lines = [f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in self.recorder.last_epoch(name).items()
                                        if isinstance(v, float) and R.is_val_acc(k))
                 for name in learners]
        self.progress.message(escape(f"[{self.stage.name}] epoch {global_epoch + 1}/{self.plan.total_epochs} done · " + " · ".join(lines)))
        return bool(watched) and self._worsened(sum(watched) / len(watched), rule)

    def _worsened(self, value: float, rule: Any) -> bool:
        """Record this epoch's measure; True once it worsened ``rule.patience`` epochs in a row."""
        self.watched.append(value)
        recent = self.watched[-(rule.patience + 1):]
        if len(recent) <= rule.patience:
            return False
        worse = (lambda a, b: b > a) if rule.metric == "val_loss" else (lambda a, b: b < a)
        if all(worse(a, b) for a, b in zip(recent, recent[1:])):
            self.progress.message(f"[{self.stage.name}] early stop: {rule.metric} worsened {rule.patience} epochs in a row "
                                  f"({', '.join(f'{v:.4f}' for v in recent)})")
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"interval": self.interval_sums.state_dict(), "epoch": self.epoch_sums.state_dict(), "watched": list(self.watched)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.interval_sums.load_state_dict(state["interval"])
        self.epoch_sums.load_state_dict(state["epoch"])
        self.watched = list(state.get("watched", []))

    # -- helpers
    def _arch_context(self, targets, x_tr, y_tr, x_u, x_v, y_v) -> ArchContext:
        lw = self.plan.loss_weights
        learners = self.runtime.learners
        return ArchContext(
            learners={k: learner.view() for k, learner in learners.items()},
            targets=list(targets),
            peers={k: list(lp.peers) for k, lp in self.plan.learners.items()},
            x_train=x_tr, y_train=y_tr, x_unlabeled=x_u, x_val=x_v, y_val=y_v,
            # Without stage 2 the architecture gradient flows through W and its plain CE loss.
            w_labeled=lw.labeled if self._has_v else 1.0,
            w_pseudo=lw.pseudo if self._has_v else 0.0,
            pseudo_labeler=self.plan.labeler,
            autocast=self.runtime.accelerator.autocast,
        )


def _by_learner(values: dict[tuple[str, str], dict[str, float]]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (name, net), stats in values.items():
        out.setdefault(name, {})[net] = stats
    return out
