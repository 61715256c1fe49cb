"""The executor: runs a plan's stages in order with one loop, one checkpointer and one recorder.

Search and evaluation stages are the loop's work; derive stages write genotypes. The executor
owns the cursor and what a checkpoint holds, and writes the summary at the end — also when the run
failed or was interrupted. It reads nothing but the plan.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from . import records as R
from .checkpoint import Checkpointer, Cursor, rng_state, set_rng_state
from .distributed import peer_failure
from ..errors import ExpectationFailed, Interrupted, NonFiniteLoss, PeerLost
from .expectations import check, describe
from ..faults import crash_point
from .evaluation import EvaluationStage
from .loop import StopControl, TrainingLoop
from .progress import Progress, expectations_table, summary_table
from ..rundir.recorder import Recorder
from ..plan.types import DeriveStagePlan, EvaluateStagePlan, TrainStagePlan
from .runtime import Runtime
from .search import SearchStage


@dataclass
class RunOptions:
    run_dir: Any = None
    overwrite: bool = False
    stop_after_epochs: int | None = None  # stop cleanly after this many epochs in total (resume later)
    progress: bool = True


class Clock:
    """Seconds since this process started the run, and the time spent in the current search stage."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.search_started: float | None = None

    def process_seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3)

    def search_seconds(self) -> float:
        return 0.0 if self.search_started is None else time.perf_counter() - self.search_started


class Executor:
    def __init__(self, runtime: Runtime, recorder: Recorder, options: RunOptions) -> None:
        self.runtime = runtime
        self.plan = runtime.plan
        self.recorder = recorder
        self.checkpointer = Checkpointer(recorder.rundir)
        self.options = options
        self.clock = Clock()
        self.stop = StopControl(options.stop_after_epochs, self.plan.run.checkpoint_every, runtime.collectives)
        self.progress = Progress(
            total_iterations=self.plan.total_epochs * runtime.iterations,
            enabled=options.progress and runtime.collectives.is_main,
        )
        self.loop = TrainingLoop(log_every=self.plan.run.log_every, stop=self.stop, progress=self.progress, save=self._save)
        self._resume: dict[str, Any] | None = None  # the running stage's saved state, until that stage starts
        self.cursor = Cursor()

    # -- checkpoints
    def _state(self, cursor: Cursor, work: Any = None) -> dict[str, Any]:
        at = cursor.to_dict()
        at["elapsed"] = cursor.elapsed + time.perf_counter() - self.clock.started
        at["search_elapsed"] = cursor.search_elapsed + self.clock.search_seconds()
        scaler = getattr(self.runtime.accelerator, "scaler", None)
        return {
            "cursor": at,
            "learners": {name: learner.state_dict() for name, learner in self.runtime.learners.items()},
            "streams": {name: stream.state_dict() for name, stream in self.runtime.streams.items()},
            "stage": work.state_dict() if work is not None else None,
            # every process's RNG (a collective: every process checkpoints at the same moment)
            "rng": self.runtime.collectives.gather_objects(rng_state(self.runtime.collectives.device)),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "offsets": self.recorder.offsets(),
        }

    def _save(self, cursor: Cursor, work: Any = None) -> None:
        self.checkpointer.save(self._state(cursor, work))
        self.saved_at = (cursor.stage, cursor.epoch, cursor.iteration)
        self.stop.checkpointed()

    def _own_rng(self, states: list[dict[str, Any]]) -> dict[str, Any]:
        """This process's RNG state from a checkpoint (the main process's when the world changed)."""
        rank = self.runtime.collectives.rank
        return states[rank] if len(states) == self.runtime.collectives.world else states[0]

    def restore(self, state: dict[str, Any]) -> Cursor:
        """Take a checkpoint's state; the running stage's own part waits until that stage starts."""
        cursor = Cursor.from_dict(state["cursor"])
        for name, learner in self.runtime.learners.items():
            learner.load_state_dict(state["learners"][name])
        for name, stream in self.runtime.streams.items():
            stream.load_state_dict(state["streams"][name])
        self.recorder.restore(state["offsets"])
        scaler = getattr(self.runtime.accelerator, "scaler", None)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        rng = self._own_rng(state["rng"])
        if state.get("stage") is None:
            # Taken between stages: the next stage builds what it needs from this very RNG state.
            set_rng_state(rng, self.runtime.collectives.device)
        else:
            # Taken inside a stage: its work is rebuilt first (an evaluation reseeds to build its
            # network), then gets its saved state and the RNG state of that moment.
            self._resume = {"stage": state["stage"], "rng": rng}
        self.saved_at = (cursor.stage, cursor.epoch, cursor.iteration)
        done = sum(s.epochs for s in self.plan.train_stages if s.index < cursor.stage)
        current = self.plan.stages[min(cursor.stage, len(self.plan.stages) - 1)]
        if isinstance(current, TrainStagePlan):
            done += cursor.epoch
        self.progress.resume_at(done * self.runtime.iterations + cursor.iteration)
        self.progress.message(f"resuming {self.recorder.rundir.path} at stage {current.name}, "
                              f"epoch {cursor.epoch + 1}, iteration {cursor.iteration + 1}")
        return cursor

    def checkpoint_start(self) -> None:
        """A checkpoint before anything trains: a run killed in its first epoch can be resumed."""
        self._save(self.cursor)

    # -- the run
    def execute(self, cursor: Cursor) -> None:
        self.cursor = cursor
        self.recorder.start()
        status = "failed"
        try:
            with self.stop.watching_signals(), self.progress:
                while cursor.stage < len(self.plan.stages):
                    self._run_stage(self.plan.stages[cursor.stage], cursor)
                    cursor.stage += 1
                    cursor.epoch = cursor.iteration = 0
                    self._save(cursor)
                    stop, _ = self.stop.poll()
                    if stop and cursor.stage < len(self.plan.stages):
                        raise Interrupted("stopped between stages")
            status = "completed"
        except Interrupted as exc:
            status = "interrupted"
            self.progress.message(f"stopped: {exc}; resume with: sgl resume {self.recorder.rundir.path}")
            raise Interrupted(f"run stopped; resume with: sgl resume {self.recorder.rundir.path}") from None
        except NonFiniteLoss as exc:
            raise NonFiniteLoss(f"{exc}. The last good checkpoint is kept: {self.recorder.rundir.checkpoint} "
                                f"({self._where_saved()}); resume with: sgl resume {self.recorder.rundir.path}") from None
        except RuntimeError as exc:
            if not peer_failure(exc):
                raise
            self.peer_lost = True  # no more collectives: the summary is this process's alone
            raise PeerLost(f"another process of the run stopped answering or failed ({str(exc).splitlines()[0]}); "
                           f"run.dist_timeout is {self.plan.run.dist_timeout:g} s. The last checkpoint is kept: "
                           f"{self.recorder.rundir.checkpoint} ({self._where_saved()}); resume with: "
                           f"sgl resume {self.recorder.rundir.path}") from None
        finally:
            failed = self._write_summary(cursor, status)
            self.recorder.finish()
        if failed:
            raise ExpectationFailed([describe(r) for r in failed])

    def _where_saved(self) -> str:
        stage, epoch, iteration = getattr(self, "saved_at", (0, 0, 0))
        if stage >= len(self.plan.stages):
            return "the end of the run"
        name = self.plan.stages[stage].name
        if epoch == 0 and iteration == 0:
            return f"the start of stage {name}"
        return f"stage {name}, epoch {epoch + 1}, iteration {iteration + 1}"

    def _run_stage(self, stage: Any, cursor: Cursor) -> None:
        if isinstance(stage, DeriveStagePlan):
            self._derive()
            return
        if isinstance(stage, TrainStagePlan):
            work: Any = SearchStage(self.runtime, stage, self.recorder, self.progress, self.clock)
        else:
            work = EvaluationStage(self.runtime, stage, self.recorder, self.progress)
        work.begin()
        if self._resume is not None:  # the stage this checkpoint was taken in: continue it exactly
            work.load_state_dict(self._resume["stage"])
            set_rng_state(self._resume["rng"], self.runtime.collectives.device)
            self._resume = None
        searching = isinstance(stage, TrainStagePlan)
        if searching:
            self.clock.search_started = time.perf_counter()
        try:
            self.loop.run(work, cursor)
        finally:
            if searching:
                cursor.search_elapsed += self.clock.search_seconds()
                self.clock.search_started = None
        if isinstance(stage, EvaluateStagePlan):
            cursor.completed.append(work.finish())
        stop_after = self.stop.stop_after_epochs
        if stop_after is not None and cursor.epochs_done >= stop_after and self._training_after(cursor.stage):
            cursor.stage, cursor.epoch, cursor.iteration = cursor.stage + 1, 0, 0
            self._save(cursor)
            raise Interrupted(f"stopped after epoch {cursor.epochs_done}")

    def _training_after(self, index: int) -> bool:
        """Whether a stage after ``index`` trains (search or evaluation): worth stopping before."""
        return any(not isinstance(s, DeriveStagePlan) for s in self.plan.stages[index + 1 :])

    def _derive(self) -> None:
        for name, learner in self.runtime.learners.items():
            if learner.space is None:
                continue
            genotype = learner.genotype()
            self.recorder.genotype(name, genotype)
            self.recorder.cell_diagrams(name, genotype, type(learner.plan.config))
            self.progress.message(f"{name}: genotype written to {self.recorder.rundir.genotype(name)}")

    # -- the summary
    def _write_summary(self, cursor: Cursor, status: str) -> list[dict[str, Any]]:
        """Write summary.json (checking the spec's expectations when the run completed); returns the
        expectations that failed."""
        runtime, collectives = self.runtime, self.runtime.collectives
        elapsed = cursor.elapsed + time.perf_counter() - self.clock.started
        hours = (cursor.search_elapsed + self.clock.search_seconds()) / 3600
        test = runtime.test_accuracies() if status == "completed" else {}
        learners, rows = {}, []
        for name, learner in runtime.learners.items():
            last = self.recorder.last_epoch(name)
            val = {net: last.get(R.val_acc(net)) for net in learner.nets}
            params = sum(p.numel() for p in learner.nets["W"].module.parameters()) / 1e6
            genotype = self.recorder.rundir.genotype_relative(name) if learner.space is not None else None
            learners[name] = {"kind": learner.plan.kind, "searchable": learner.plan.searchable,
                              "val_acc": val, "test_acc": test.get(name, {}), "genotype": genotype, "params_M": params}
            final_net = learner.plan.arch_net or ("V" if "V" in learner.nets else "W")
            rows.append({"learner": name, "kind": learner.plan.kind, "val_acc_W": val.get("W"), "val_acc_V": val.get("V"),
                         "test_acc": test.get(name, {}).get(final_net), "genotype": genotype})
        distributed: dict[str, Any] = {"processes": collectives.world}
        if collectives.world > 1 and not getattr(self, "peer_lost", False):
            # Every rank must hold the same architecture; record each rank's fingerprint to prove it.
            fingerprints = collectives.gather_objects(self._fingerprints())  # a collective: all are here
            distributed["architecture_fingerprints"] = [f[0] for f in fingerprints]
            distributed["weights_fingerprints"] = [f[1] for f in fingerprints]
            distributed["ranks_agree"] = len(set(fingerprints)) == 1
        search_done = sum(s.epochs for s in self.plan.train_stages if s.index < cursor.stage)
        current = self.plan.stages[cursor.stage] if cursor.stage < len(self.plan.stages) else None
        if isinstance(current, TrainStagePlan):
            search_done += cursor.epoch
        summary = {
            "name": self.plan.name, "status": status, "dataset": self.plan.data.dataset.name,
            "hypergradient": self.plan.hypergradient.method, "seed": self.plan.seed,
            "epochs_done": search_done, "learners": learners,
            "search_cost": {"device": collectives.device.type, "hours": hours, "device_hours": hours * collectives.world,
                            "wall_seconds": elapsed},
            "evaluations": cursor.completed,
            "early_stopped": cursor.early_stopped,
            "distributed": distributed,
        }
        results = check(self.plan.expect, summary) if status == "completed" else []
        if results:
            summary["expectations"] = results
        crash_point("summary")
        self.recorder.summary(summary)
        if status == "completed" and collectives.is_main and self.options.progress:
            self.progress.console.print(summary_table(rows))
            if results:
                self.progress.console.print(expectations_table(results))
            self.progress.console.print(f"run directory: {self.recorder.rundir.path}  (figures and a page: sgl report {self.recorder.rundir.path})")
        return [r for r in results if not r["passed"]]

    def _fingerprints(self) -> tuple[str, str]:
        """Digests of every learner's architecture and of its network weights (BatchNorm statistics,
        which each process gathers from its own data, left out): equal on every process."""
        arch, weights = hashlib.sha256(), hashlib.sha256()
        for name in sorted(self.runtime.learners):
            learner = self.runtime.learners[name]
            if learner.space is not None:
                for param in learner.space.arch_parameters():
                    arch.update(param.detach().cpu().contiguous().numpy().tobytes())
            for net in learner.nets.values():
                for param in net.module.parameters():
                    weights.update(param.detach().cpu().contiguous().numpy().tobytes())
        return arch.hexdigest()[:16], weights.hexdigest()[:16]
