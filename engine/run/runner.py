"""A small public entry to the engine, for benchmarks and for checking it against other code.

    from sgl.engine.runner import build_runner

    runner = build_runner("specs/quickstart.yaml", ["run.cpu=true"])
    runner.search_iteration()            # one iteration (A, W, PL, V ...) of the first search stage
    x, y = runner.streams["train"].next()
    runner.learners["alice"].nets["W"]   # module, optimizer, scheduler of a learner's network

It builds exactly what ``sgl run`` builds before its first iteration (same seeds, same order of
randomness), without a run directory: nothing is written, no signal handler is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..plan.compile import Compiled, compile_spec
from .data import BatchStream
from .learners import Learner
from ..plan.types import RunPlan, TrainStagePlan
from .accelerator import make_accelerator
from .iteration import SearchIteration
from .metrics import Accumulator
from .runtime import Runtime, build_runtime


class Runner:
    """A ready run: its plan, learners and batch streams, and one search iteration at a time."""

    def __init__(self, compiled: Compiled, runtime: Runtime) -> None:
        self.compiled = compiled
        self.runtime = runtime
        self._iterations: dict[int, SearchIteration] = {}
        self._sums: dict[int, Accumulator] = {}

    @property
    def plan(self) -> RunPlan:
        return self.runtime.plan

    @property
    def learners(self) -> dict[str, Learner]:
        return self.runtime.learners

    @property
    def streams(self) -> dict[str, BatchStream]:
        """The search's batch streams: ``train`` (D_train), ``val`` (D_val), ``unlabeled`` (D_u)."""
        return self.runtime.streams

    @property
    def accelerator(self):
        return self.runtime.accelerator

    def stage(self, which: int | str | None = None) -> TrainStagePlan:
        """A search stage by index among the spec's stages or by name; by default the first one
        with architecture steps (else the first search stage)."""
        stages = self.plan.train_stages
        if not stages:
            raise ValueError(f"{self.plan.name!r} has no search stage")
        if which is None:
            return next((s for s in stages if s.arch_from_epoch is not None), stages[0])
        for stage in stages:
            if which in (stage.index, stage.name):
                return stage
        raise ValueError(f"no search stage {which!r}; stages: {', '.join(s.name for s in stages)}")

    def search_iteration(self, which: int | str | None = None, *, arch: bool = True) -> None:
        """Run one iteration of a search stage: its batches, then its steps in order. With ``arch``
        its A-steps run (as in the stage's epochs after ``arch_start``); without, they are skipped."""
        stage = self.stage(which)
        if stage.index not in self._iterations:
            self._iterations[stage.index] = SearchIteration(self.runtime, stage)
            self._sums[stage.index] = Accumulator()
            self._iterations[stage.index].enter()
        for learner, net, result in self._iterations[stage.index].run(arch_on=arch):
            self._sums[stage.index].add(learner, net, result)

    def losses(self, which: int | str | None = None) -> dict[tuple[str, str], float]:
        """Mean loss per (learner, network) over the iterations run since the last call."""
        sums = self._sums.get(self.stage(which).index)
        values = sums.read_and_reset() if sums is not None else {}
        return {key: stats["loss"] for key, stats in values.items()}


def build_runner(spec: str | Path, overrides: Iterable[str] = ()) -> Runner:
    """Compile ``spec`` (with ``key.path=value`` overrides) and build its runtime: data, streams,
    learners. Bad input raises ``sgl.engine.errors.SpecError`` with every problem."""
    compiled = compile_spec(spec, list(overrides))
    accelerator = make_accelerator(compiled.plan)
    return Runner(compiled, build_runtime(compiled.plan, accelerator, compiled.base_dir))
