"""One search iteration: the batches a stage reads, then its actions (A, W, PL, V) in the plan's order.

This is SGL's iteration and nothing else: it records nothing and decides nothing about epochs.
The search stage (``search.py``) runs it inside the training loop; the public runner and
``sgl plan --estimate`` run it alone.
"""

from __future__ import annotations

from typing import Any

from sgl.registry.hypergrad.base import ArchContext

from ..faults import failure_point, poisoned
from .runtime import Runtime
from .steps import StepResult, a_step, pl_step, v_step, w_step
from ..plan.types import TrainStagePlan


class SearchIteration:
    def __init__(self, runtime: Runtime, stage: TrainStagePlan) -> None:
        self.runtime = runtime
        self.stage = stage

    def enter(self) -> list[str]:
        """Enter the stage: each growing space moves to this stage's phase (building new networks).
        Returns the learners that changed phase."""
        return [name for name, phase in self.stage.growing_phase.items()
                if self.runtime.learners[name].enter_growing_phase(phase)]

    def begin_epoch(self, epoch: int) -> None:
        """Let each space adjust its networks for where their schedules stand (P-DARTS' skip dropout)."""
        for name, learner in self.runtime.learners.items():
            ramps = self.stage.ramps.get(name)
            if ramps is None:  # the stage is the whole schedule
                positions = {net: (epoch, self.stage.epochs, self.stage.arch_start) for net in learner.nets}
            else:  # the schedule spans the growing phase's stages that train the network
                positions = {net: (before + epoch, span, arch) for net, (before, span, arch) in ramps.items()}
            learner.configure_epoch(positions)

    def run(self, arch_on: bool) -> list[tuple[str, str, StepResult]]:
        """One iteration (A-steps only when ``arch_on``); returns ``(learner, network, result)`` of
        each weight step."""
        runtime, stage = self.runtime, self.stage
        streams, learners, step_ctx, plan = runtime.streams, runtime.learners, runtime.step_ctx, runtime.plan
        x_tr, y_tr = streams["train"].next()
        x_u = streams["unlabeled"].next()[0] if "unlabeled" in stage.streams else None
        x_v, y_v = streams["val"].next() if "val" in stage.streams else (None, None)
        pseudo: dict[str, Any] = {}
        results = []
        lw = plan.loss_weights
        for action in stage.actions:
            names = action.learners
            if action.step == "A":
                if arch_on:
                    context = self._arch_context(names, x_tr, y_tr, x_u, x_v, y_v)
                    a_step(learners, list(names), plan.hypergradient, context, step_ctx)
            elif action.step == "W":
                failure_point()
                results += [(k, "W", poisoned(w_step(learners[k], x_tr, y_tr, step_ctx))) for k in names]
            elif action.step == "PL":
                for j in names:
                    pseudo[j] = pl_step(learners[j], x_u, plan.labeler, step_ctx)
            else:
                for k in names:
                    peers = [pseudo[j] for j in plan.learners[k].peers]
                    results.append((k, "V", v_step(learners[k], x_tr, y_tr, x_u, peers, lw.labeled, lw.pseudo, step_ctx)))
        return results

    def _arch_context(self, targets, x_tr, y_tr, x_u, x_v, y_v) -> ArchContext:
        plan, weights = self.runtime.plan, self.stage.arch_loss_weights
        return ArchContext(
            learners={k: learner.view() for k, learner in self.runtime.learners.items()},
            targets=list(targets),
            peers={k: list(lp.peers) for k, lp in plan.learners.items()},
            x_train=x_tr, y_train=y_tr, x_unlabeled=x_u, x_val=x_v, y_val=y_v,
            w_labeled=weights.labeled,
            w_pseudo=weights.pseudo,
            pseudo_labeler=plan.labeler,
            autocast=self.runtime.accelerator.autocast,
        )
