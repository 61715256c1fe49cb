"""The executor: runs a plan's stages in order with one loop, handing what they produce to a sink.

Search and evaluate stages are the loop's work; derive stages record architectures. The executor
owns the cursor and what a checkpoint holds, and ends every run with its summary — also when the
run failed or was interrupted. It reads nothing but the plan, and writes nothing itself.
"""

from __future__ import annotations

import shlex
import signal
import time
from dataclasses import dataclass
from typing import Any

from ..errors import ExpectationFailed, Interrupted, NonFiniteLoss, PeerLost
from ..expectations import check, describe
from ..faults import crash_point
from ..plan.types import DeriveStagePlan, EvaluateStagePlan, StagePlan, TrainStagePlan
from ..summary import Status
from .checkpoint import Cursor, local_statistics, rng_state, set_local_statistics, set_rng_state
from .distributed import peer_failure
from .evaluate import EvaluationStage
from .failures import FailureBoard
from .loop import StopControl, TrainingLoop
from .progress import Progress, expectations_table, summary_table
from .runtime import Runtime
from .search import SearchStage
from .sink import RunSink
from .summarize import summarize, summary_rows


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
    def __init__(self, runtime: Runtime, sink: RunSink, options: RunOptions) -> None:
        self.runtime = runtime
        self.plan = runtime.plan
        self.sink = sink
        self.options = options
        self.clock = Clock()
        self.stop = StopControl(options.stop_after_epochs, self.plan.run.checkpoint_every, runtime.collectives)
        self.progress = Progress(
            total_iterations=self.plan.total_epochs * runtime.iterations,
            enabled=options.progress and runtime.collectives.is_main,
        )
        self.stop.on_request = self._stop_requested
        self.loop = TrainingLoop(log_every=self.plan.run.log_every, stop=self.stop, progress=self.progress, save=self._save)
        self._resume: dict[str, Any] | None = None  # the running stage's saved state, until that stage starts
        self.cursor = Cursor()
        self.saved_at = (0, 0, 0)
        self.peers_answer = True
        self.board = FailureBoard(runtime.collectives.rank, runtime.collectives.world)
        self.failed_alone = False

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
            "statistics": self._statistics(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "offsets": self.sink.positions(),
        }

    def _statistics(self) -> list[dict[str, Any]]:
        """Every process's BatchNorm statistics of the learners (several processes only)."""
        collectives = self.runtime.collectives
        return collectives.gather_objects(local_statistics(self.runtime.networks())) if collectives.world > 1 else []

    def _save(self, cursor: Cursor, work: Any = None) -> None:
        self.sink.save_checkpoint(self._state(cursor, work))
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
        collectives = self.runtime.collectives
        set_local_statistics(self.runtime.networks(), state.get("statistics", []), collectives.rank, collectives.world)
        for name, stream in self.runtime.streams.items():
            stream.load_state_dict(state["streams"][name])
        self.sink.rewind(state["offsets"])
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
        done = self.plan.search_epochs_before(cursor.stage, cursor.epoch)
        self.progress.resume_at(done * self.runtime.iterations + cursor.iteration)
        current = self.plan.stages[min(cursor.stage, len(self.plan.stages) - 1)]
        self.progress.message(f"resuming {self.sink.location} at stage {current.name}, "
                              f"epoch {cursor.epoch + 1}, iteration {cursor.iteration + 1}")
        return cursor

    def _stop_requested(self, signum: int) -> None:
        """The answer to the first Ctrl-C (or SIGTERM), at once: an iteration can take minutes."""
        if not self.runtime.collectives.is_main:
            return
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self.progress.notice(f"{name}: stopping after this iteration, with a checkpoint…; {name} again to stop now "
                             "(the run then resumes from its last checkpoint)")

    def checkpoint_start(self) -> None:
        """A checkpoint before anything trains: a run killed in its first epoch can be resumed."""
        self._save(self.cursor)

    # -- the run
    def execute(self, cursor: Cursor) -> None:
        self.cursor = cursor
        self.sink.start()
        self.board.watch()
        status: Status = "failed"
        resume = f"resume with: sgl resume {shlex.quote(self.sink.location)}"
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
            self.progress.message(f"stopped: {exc}; {resume}")
            raise Interrupted(f"run stopped; {resume}") from None
        except KeyboardInterrupt:
            status = "interrupted"  # a second Ctrl-C: stopped at once, resumable from the last checkpoint
            raise
        except NonFiniteLoss as exc:
            raise NonFiniteLoss(f"{exc}. The last good checkpoint is kept ({self._where_saved()}); {resume}") from None
        except BaseException as exc:
            replacement = self._failure(exc, resume)
            if replacement is exc:
                raise
            raise replacement from None
        finally:
            failed = self._end(cursor, status)
            self.sink.finish()
            self._leave_together()
        if failed:
            raise ExpectationFailed(failed)

    def _failure(self, exc: BaseException, resume: str) -> BaseException:
        """What ends a run of several processes that ``exc`` stopped (one process: ``exc`` itself).

        Another process's announced failure, or a peer that stopped answering, ends it with that
        news. An error of this process alone (out of memory, a data error) is announced to the
        others, which stop at once, instead of this process waiting for them in the summary's
        collectives while they wait for it in the next step's: both would wait run.dist_timeout.
        """
        if self.runtime.collectives.world == 1:
            return exc
        self.peers_answer = False  # no more collectives: the summary is this process's alone
        kept = f"The last checkpoint is kept ({self._where_saved()}); {resume}"
        other = self.board.announced()
        if other is not None:
            return PeerLost(f"{other}. {kept}")
        if peer_failure(exc):
            return PeerLost(f"another process of the run stopped answering or failed ({str(exc).splitlines()[0]}); "
                            f"run.dist_timeout is {self.plan.run.dist_timeout:g} s. {kept}")
        message = self.board.announce(exc)
        self.failed_alone = True
        return exc if isinstance(exc, KeyboardInterrupt) else PeerLost(f"{message}. {kept}")

    def _leave_together(self) -> None:
        """The main process says its summary is written; a process that failed alone waits for that
        (launchers stop every process once one has left)."""
        if self.runtime.collectives.world == 1:
            return
        self.board.stop_watching()
        if self.runtime.collectives.is_main:
            self.board.summary_written()
        elif self.failed_alone:
            self.board.wait_for_summary()

    def _where_saved(self) -> str:
        stage, epoch, iteration = self.saved_at
        if stage >= len(self.plan.stages):
            return "the end of the run"
        name = self.plan.stages[stage].name
        if epoch == 0 and iteration == 0:
            return f"the start of stage {name}"
        return f"stage {name}, epoch {epoch + 1}, iteration {iteration + 1}"

    def _run_stage(self, stage: StagePlan, cursor: Cursor) -> None:
        if isinstance(stage, DeriveStagePlan):
            self._derive()
            return
        searching = isinstance(stage, TrainStagePlan)
        if searching:
            work: Any = SearchStage(self.runtime, stage, self.sink, self.progress, self.clock)
        else:
            work = EvaluationStage(self.runtime, stage, self.sink, self.progress)
        work.begin()
        if self._resume is not None:  # the stage this checkpoint was taken in: continue it exactly
            work.load_state_dict(self._resume["stage"])
            set_rng_state(self._resume["rng"], self.runtime.collectives.device)
            self._resume = None
        if searching:
            self.clock.search_started = time.perf_counter()
        try:
            self.loop.run(work, cursor)
        finally:
            if searching:
                cursor.search_elapsed += self.clock.search_seconds()
                self.clock.search_started = None
        if isinstance(stage, EvaluateStagePlan):
            cursor.completed.append(work.finish().model_dump(mode="json"))
        stop_after = self.stop.stop_after_epochs
        if stop_after is not None and cursor.trained_epochs >= stop_after and self._training_after(cursor.stage):
            cursor.stage, cursor.epoch, cursor.iteration = cursor.stage + 1, 0, 0
            self._save(cursor)
            raise Interrupted(f"stopped after epoch {cursor.trained_epochs}")

    def _training_after(self, index: int) -> bool:
        """Whether a stage after ``index`` trains (search or evaluation): worth stopping before."""
        return any(not isinstance(s, DeriveStagePlan) for s in self.plan.stages[index + 1 :])

    def _derive(self) -> None:
        for name, learner in self.runtime.learners.items():
            architecture = learner.architecture()
            if architecture is None:
                continue
            where = self.sink.architecture(name, architecture)
            self.sink.diagrams(name, architecture)
            self.progress.message(f"{name}: genotype written to {self.sink.location}/{where}")

    # -- the end
    def _end(self, cursor: Cursor, status: Status) -> list[str]:
        """Write the summary (checking the spec's expectations when the run completed); returns the
        expectations that failed, described."""
        elapsed = cursor.elapsed + time.perf_counter() - self.clock.started
        hours = (cursor.search_elapsed + self.clock.search_seconds()) / 3600
        summary = summarize(self.runtime, self.sink, cursor, status, search_hours=hours, wall_seconds=elapsed,
                            peers_answer=self.peers_answer)
        results = check(self.plan.expect, summary.to_json()) if status == "completed" else []
        if results:
            summary.expectations = results
        crash_point("summary")
        self.sink.summary(summary)
        if status == "completed" and self.runtime.collectives.is_main and self.options.progress:
            self.progress.console.print(summary_table(summary_rows(summary, self.runtime, self.sink)))
            if results:
                self.progress.console.print(expectations_table(results))
            self.progress.console.print(f"run directory: {self.sink.location}  (figures and a page: sgl report {self.sink.location})")
        return [describe(r) for r in results if not r.passed]
