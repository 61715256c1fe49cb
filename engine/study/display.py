"""Progress of a study: one live line per trial (state, stage, epoch, ETA) in a terminal, plain
lines elsewhere (a log file): one per event, and the running trials every minute.

Where a trial stands is read from its run directory (plan.json, the tail of metrics.jsonl): the
trials run quietly, and the driver never parses their output.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from .. import records as R
from .manifest import Manifest, StudyDir, TrialRecord

PLAIN_EVERY = 60.0  # seconds between status lines of the running trials, when not on a terminal


@dataclass
class Where:
    stage: str = ""
    epoch: int = 0      # epochs done (search and evaluation)
    epochs: int = 0     # epochs in all

    @property
    def fraction(self) -> float:
        return self.epoch / self.epochs if self.epochs else 0.0


def where(run_dir: Path) -> Where:
    """The trial's stage and epochs done, from its plan and the last lines of its metrics."""
    found = Where()
    try:
        plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
        stages = [s for s in plan.get("stages", []) if isinstance(s.get("epochs"), int)]
        found.epochs = sum(s["epochs"] for s in stages)
        with open(run_dir / "metrics.jsonl", "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 8192))
            lines = handle.read().decode("utf-8", errors="replace").splitlines()[1:]
    except (OSError, ValueError):
        return found
    search = sum(s["epochs"] for s in stages if s.get("type") == "train")
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        kind = record.get(R.KIND)
        if kind == R.EPOCH:
            found.stage, found.epoch = str(record.get(R.SEARCH_STAGE, "")), int(record.get(R.EPOCH_INDEX, 0)) + 1
            return found
        if kind == R.EVAL_EPOCH:
            evals_before = _evaluation_epochs_before(stages, str(record.get(R.EVAL_STAGE)))
            found.stage = str(record.get(R.EVAL_STAGE, ""))
            found.epoch = search + evals_before + int(record.get(R.EPOCH_INDEX, 0)) + 1
            return found
        if kind == R.ITER and not found.stage:
            found.stage = str(record.get(R.SEARCH_STAGE, ""))
    return found


def _evaluation_epochs_before(stages: list[dict], name: str) -> int:
    done = 0
    for stage in stages:
        if stage.get("type") != "train":
            if stage.get("name") == name:
                return done
            done += stage["epochs"]
    return done


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class StudyProgress:
    def __init__(self, study: StudyDir, manifest: Manifest, enabled: bool = True, console: Console | None = None):
        from ..run.progress import make_console

        self.study, self.manifest, self.enabled = study, manifest, enabled
        self.console = console or make_console()
        self._live: Live | None = None
        self._began: dict[str, tuple[float, float]] = {}  # trial -> (time, fraction) when this attempt began
        self._moved: dict[str, tuple[float, float]] = {}  # trial -> (time, fraction) when its fraction last grew
        self._plain_at = time.monotonic()

    def __enter__(self) -> "StudyProgress":
        if self.enabled and self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)
            self._live = None

    def event(self, line: str) -> None:
        """A trial started or ended, or the study did something: study.log always, the screen unless live."""
        self.study.note(line)
        if self.enabled and self._live is None:
            self.console.print(escape(line), soft_wrap=True)

    def started(self, trial: TrialRecord) -> None:
        self._began[trial.id] = (time.monotonic(), where(self.study.trial(trial.id)).fraction)

    def refresh(self) -> None:
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self._render())
        elif time.monotonic() - self._plain_at >= PLAIN_EVERY:
            self._plain_at = time.monotonic()
            for trial in self.manifest.trials:
                if trial.state == "running":
                    self.console.print(escape(f"{trial.id}: {self._line(trial)}"), soft_wrap=True)

    def _line(self, trial: TrialRecord) -> str:
        at = where(self.study.trial(trial.id))
        parts = ["running"]
        if at.stage:
            parts.append(f"{at.stage}, epoch {at.epoch}/{at.epochs}")
        began, moved = self._began.get(trial.id), self._moved.get(trial.id)
        if moved is None or at.fraction > moved[1]:
            moved = self._moved[trial.id] = (time.monotonic(), at.fraction)
        if began is not None and at.fraction > began[1]:
            # the pace up to the last finished epoch, less the time since: it counts down between epochs
            pace = (moved[0] - began[0]) / (at.fraction - began[1])
            parts.append(f"ETA {_clock(pace * (1 - at.fraction) - (time.monotonic() - moved[0]))}")
        return " · ".join(parts)

    def _render(self) -> Table:
        counts = {s: sum(t.state == s for t in self.manifest.trials) for s in ("completed", "failed", "running")}
        table = Table(box=None, padding=(0, 2), title_justify="left",
                      title=f"study {self.study.path}: {counts['completed']} done, {counts['running']} running, "
                      f"{counts['failed']} failed, {len(self.manifest.trials)} trials")
        for column in ("trial", "values", "state"):
            table.add_column(column)
        for trial in self.manifest.trials:
            state = self._line(trial) if trial.state == "running" else trial.state
            if trial.state == "failed" and trial.reason:
                state += f": {trial.reason[:80]}"
            table.add_row(escape(trial.id), escape(trial.label()), escape(state))
        return table
