"""The training loop — the one loop of the codebase — and what may stop it.

It walks a stage's epochs and iterations from the cursor, and owns the cadence: logging
intervals, epoch ends, checkpoints, progress, and stopping (a signal stops after the current
iteration, ``--stop-after`` at an epoch boundary). What an iteration does, and what is recorded,
is the stage's work (``search.SearchStage``, ``evaluation.EvaluationStage``):

    work.begin()                  entering the stage
    work.begin_epoch(epoch)       before an epoch
    work.iteration(epoch)         one iteration
    work.flush(epoch, iteration)  at the end of a logging interval (may raise NonFiniteLoss)
    work.end_epoch(epoch)         after an epoch (may raise NonFiniteLoss); True ends the stage early
    work.display(epoch)           (epoch shown, of how many) for progress
    work.state_dict() / load_state_dict(state): the stage's own part of a checkpoint
"""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from .checkpoint import Cursor
from ..errors import Interrupted
from ..faults import crash_point


class StopControl:
    """When a run should stop or checkpoint: a signal (Ctrl-C, SIGTERM), ``--stop-after`` epochs in
    total, or ``run.checkpoint_every`` minutes since the last checkpoint.

    With several processes every decision is collective (``poll``): a signal that reaches one
    process, or a clock that runs ahead on one, stops or checkpoints all of them at the same
    iteration — a process that decided alone would wait forever in the next collective. Inside an
    epoch (``poll_soon``) the flags of one iteration are reduced while the next one runs and acted
    on after it: no process waits for the others, nor for the device, to check them.
    """

    def __init__(self, stop_after_epochs: int | None = None, checkpoint_every: float | None = None,
                 collectives: Any = None) -> None:
        self.stop_after_epochs = stop_after_epochs
        self.checkpoint_every = None if checkpoint_every is None else checkpoint_every * 60.0
        self.collectives = collectives
        self.signalled = False
        self.last_checkpoint = time.monotonic()
        self.on_request: Callable[[int], None] | None = None  # told of the first signal at once (the answer to Ctrl-C)
        self._pending: Any = None  # the flags poll_soon sent, not yet read

    def checkpointed(self) -> None:
        self.last_checkpoint = time.monotonic()

    def _due(self) -> bool:
        return self.checkpoint_every is not None and time.monotonic() - self.last_checkpoint >= self.checkpoint_every

    def _several(self) -> bool:
        return self.collectives is not None and self.collectives.world > 1

    def poll(self) -> tuple[bool, bool]:
        """``(stop now, checkpoint now)``, agreed by every process (they all wait for it)."""
        if self._pending is not None:  # what the last poll_soon sent: a signal there counts here
            self.signalled = self._pending.result()[0] or self.signalled
            self._pending = None
        flags = [self.signalled, self._due()]
        if self._several():
            flags = self.collectives.any_of(flags)
        self.signalled = flags[0]
        return flags[0], flags[1]

    def poll_soon(self) -> tuple[bool, bool]:
        """``poll`` for every iteration: the answer every process agreed on to the flags sent by the
        previous call, with this call's flags sent on their way (one process alone: ``poll``)."""
        if not self._several():
            return self.poll()
        stop = checkpoint = False
        if self._pending is not None:
            stop, checkpoint = self._pending.result()
            self.signalled = stop or self.signalled
        # a checkpoint agreed on now is taken now: the clock is not due again for the next answer
        self._pending = self.collectives.any_of_later([self.signalled, not checkpoint and self._due()])
        return stop, checkpoint

    @contextmanager
    def watching_signals(self) -> Iterator[None]:
        """The first Ctrl-C or SIGTERM asks to stop at the next safe point; a second one aborts."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def request(signum, frame):
            if self.signalled:
                signal.signal(signum, previous[signum])
                raise KeyboardInterrupt
            self.signalled = True
            if self.on_request is not None:
                self.on_request(signum)

        for sig in previous:
            signal.signal(sig, request)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def at_epoch_end(self, trained_epochs: int) -> bool:
        return self.signalled or (self.stop_after_epochs is not None and trained_epochs >= self.stop_after_epochs)


class TrainingLoop:
    def __init__(self, *, log_every: int, stop: StopControl, progress: Any, save: Callable[[Cursor, Any], None]) -> None:
        self.log_every = log_every
        self.stop = stop
        self.progress = progress
        self.save = save  # checkpoint the run at this cursor, with this work's state

    def run(self, work: Any, cursor: Cursor) -> None:
        """Train ``work`` from ``cursor`` to the end of its stage. Raises Interrupted after a
        checkpoint when asked to stop before the stage's last epoch has ended."""
        while cursor.epoch < work.epochs:
            epoch = cursor.epoch
            work.begin_epoch(epoch)
            for it in range(cursor.iteration, work.iterations):
                work.iteration(epoch)
                crash_point("iteration")
                cursor.iteration = it + 1
                shown, of = work.display(epoch)
                self.progress.advance(work.name, shown, of, it, work.iterations)
                if (it + 1) % self.log_every == 0 or it + 1 == work.iterations:
                    work.flush(epoch, it + 1)
                if it + 1 == work.iterations:
                    break  # the epoch's end checkpoints (and honours a stop) below
                stop, checkpoint = self.stop.poll_soon()
                if stop or checkpoint:
                    # Mid-epoch: the interval's metric sums are saved, not flushed, so a resumed
                    # run writes the very lines an uninterrupted one would.
                    self.save(cursor, work)
                if stop:
                    raise Interrupted(f"stopped at epoch {shown + 1}, iteration {it + 1}")
            ends_early = work.end_epoch(epoch)
            cursor.epoch, cursor.iteration = epoch + 1, 0
            cursor.trained_epochs += 1
            if ends_early:
                cursor.early_stopped[work.name] = cursor.epoch
            if cursor.epoch == work.epochs or ends_early:
                return  # the executor moves the cursor past the stage, checkpoints, then honours a stop
            self.save(cursor, work)
            self.stop.poll()  # a signal on any process stops every process here
            if self.stop.at_epoch_end(cursor.trained_epochs):
                raise Interrupted(f"stopped after epoch {work.display(epoch)[0] + 1}")
