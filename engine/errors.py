"""The engine's error types, and the one helper that words a suggestion.

Every layer raises these; only the CLI maps them to exit codes (2 bad input, 1 a failed run, 130
interrupted). Keeping them here, below every other engine module, is what lets any module raise
any of them without importing another layer.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable

KeyPath = tuple[Any, ...]


def did_you_mean(word: Any, candidates: Iterable[str], cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path)


# --------------------------------------------------------------------------- bad input (exit 2)


@dataclass(frozen=True)
class Pos:
    file: str
    line: int  # 1-based; 0: the whole file (or a command-line override)
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file


@dataclass(frozen=True)
class Problem:
    pos: Pos | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.pos}: " if self.pos else ""
        key = f"{self.key}: " if self.key else ""
        return one_line(f"{where}{key}{self.message}")


def one_line(text: str) -> str:
    """Escape what a spec's own keys and values could smuggle into a message: line breaks (one
    problem, one line) and control characters (ESC sequences would reach the user's terminal)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class SpecError(Exception):
    """Everything wrong with a spec, each problem with its position: reported all at once."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


@dataclass(frozen=True)
class PlanIssue:
    """A planner check that failed, at a key path of the spec (the loader maps it to a position)."""

    path: KeyPath
    message: str


class PlanError(Exception):
    def __init__(self, issues: list[PlanIssue]):
        self.issues = issues
        super().__init__("\n".join(f"{dotted(i.path)}: {i.message}" for i in issues))


class RunDirError(Exception):
    """A run directory that cannot be used as asked (exists, missing, incomplete, unreadable)."""


class StudyError(RunDirError):
    """A study that cannot be started, resumed or read as asked (its directory, its executor, its
    storage); a bad input like a run directory's (exit 2)."""


class ExportError(Exception):
    """An export that cannot be made: unknown learner or format, a missing file or package."""


class ReportError(Exception):
    """A path that is not a run directory, or nothing to report."""


# --------------------------------------------------------------------------- runs that stop


class NonFiniteLoss(RuntimeError):
    """A loss became NaN or infinite: the run stops (exit 1), keeping its last good checkpoint."""


class ExpectationFailed(RuntimeError):
    """The run finished, but a number it produced is outside what its spec's ``expect:`` allows (exit 1)."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("\n".join(lines))


class PeerLost(RuntimeError):
    """A process of the run failed, or stopped answering (run.dist_timeout): every process ends
    (exit 1) with that process's message, and the run resumes from its last checkpoint."""


class Interrupted(RuntimeError):
    """The run was stopped (Ctrl-C, SIGTERM or --stop-after) after writing a checkpoint."""


def os_error(exc: OSError) -> str:
    """An OSError as one line: what went wrong, and on which path (shortened when very long)."""
    if not exc.strerror:
        return str(exc)
    name = str(exc.filename) if exc.filename is not None else ""
    if len(name) > 160:
        name = f"{name[:80]}…{name[-60:]} ({len(name):,} characters)"
    return f"{exc.strerror}: {name!r}" if name else exc.strerror
