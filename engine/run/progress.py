"""Progress of a run: a rich live display on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from ..summary import ExpectationResult


def make_console() -> Console:
    """Wide enough when output goes to a file or a pipe, so lines and tables are not cut."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=max(console.width, 140))


def _eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total_iterations: int, enabled: bool = True, console: Console | None = None) -> None:
        self.console = console or make_console()
        self.enabled = enabled
        self.total = max(1, total_iterations)
        self.done = 0
        self.started = time.perf_counter()
        self._done_at_start = 0
        self._live: Live | None = None
        self._header = ""
        self._learners: dict[str, dict[str, float]] = {}

    def __enter__(self) -> Progress:
        if self.enabled and self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def resume_at(self, done: int) -> None:
        self.done = self._done_at_start = done
        self.started = time.perf_counter()

    def eta(self) -> float:
        ran = self.done - self._done_at_start
        if ran <= 0:
            return float("nan")
        return (time.perf_counter() - self.started) / ran * (self.total - self.done)

    def advance(self, phase: str, epoch: int, epochs: int, iteration: int, iterations: int) -> None:
        self.done += 1
        self._header = f"[{phase}] epoch {epoch + 1}/{epochs} · iteration {iteration + 1}/{iterations}"
        if self._live is not None:
            self._live.update(self._render())

    def report(self, learners: dict[str, dict[str, float]]) -> None:
        """New numbers (at a logging interval): refresh the display or print a line."""
        self._learners = learners
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self._render())
            return
        parts = [f"{name} " + " ".join(f"{k} {v:.3f}" for k, v in values.items()) for name, values in learners.items()]
        eta = self.eta()
        eta_text = "" if eta != eta else f" | ETA {_eta(eta)}"
        self.console.print(escape(f"{self._header} | " + " | ".join(parts) + eta_text), soft_wrap=True)

    def message(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, soft_wrap=True)

    def notice(self, text: str) -> None:
        """A message the user must see even with --quiet (the answer to Ctrl-C): on stderr then."""
        if self.enabled:
            self.console.print(escape(text), soft_wrap=True)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def _render(self) -> Group:
        fraction = self.done / self.total
        width = 30
        bar = "█" * int(fraction * width) + "░" * (width - int(fraction * width))
        eta = self.eta()
        header = f"{escape(self._header)}  {bar} {fraction:5.1%}" + ("" if eta != eta else f"  ETA {_eta(eta)}")
        table = Table(box=None, padding=(0, 2))
        keys = sorted({k for values in self._learners.values() for k in values})
        table.add_column("learner")
        for key in keys:
            table.add_column(key, justify="right")
        for name, values in self._learners.items():
            table.add_row(name, *(f"{values[k]:.4g}" if k in values else "" for k in keys))
        return Group(header, table)


def summary_table(rows: list[dict[str, Any]]) -> Table:
    """The learners at the end of a run; the columns are metrics.jsonl's keys (``val/W/acc``, ...)."""
    accuracies = [key for key in rows[0] if "/acc" in key] if rows else []
    table = Table(title="summary", title_justify="left")
    for column in ("learner", "kind", "result net", *accuracies, "genotype"):
        table.add_column(column, justify="right" if "/acc" in column else "left")
    for row in rows:
        table.add_row(
            row["learner"], row["kind"], row["result"],
            *(f"{row[k]:.2%}" if isinstance(row.get(k), float) else "–" for k in accuracies),
            row.get("genotype") or "–",
        )
    return table


def expectations_table(results: list[ExpectationResult]) -> Table:
    """The spec's ``expect:`` against what the run produced."""
    table = Table(title="expectations", title_justify="left")
    for column in ("metric", "value", "expected", "", "source"):
        table.add_column(column, justify="right" if column in ("value", "expected") else "left")
    for r in results:
        value = "missing" if r.value is None else f"{r.value:.4g}"
        table.add_row(r.metric, value, f"{r.low:.4g} – {r.high:.4g}", "ok" if r.passed else "[red]FAILED[/red]",
                      escape(r.source or ""))
    return table
