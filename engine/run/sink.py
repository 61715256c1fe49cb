"""Where a run's products go: the one interface between training and the run directory.

The run wing computes what a run produces — metric lines, architectures, trained networks, the
summary, checkpoint states — and hands each to a ``RunSink``; it never opens a file. The run
directory's recorder (``rundir.recorder.Recorder``) is the sink of ``sgl run``; code that trains
without a directory (the public runner, ``sgl plan --estimate``) runs iterations and needs none.
"""

from __future__ import annotations

from typing import Any, Protocol

from sgl.registry import Architecture

from ..summary import Summary


class RunSink(Protocol):
    #: Where the products go, for messages ("resume with: sgl resume <location>").
    location: str

    def start(self) -> None:
        """The run begins (or resumes) in this process."""

    def finish(self) -> None:
        """The run ends, however it ends: flush and close."""

    def log(self, record: dict[str, Any]) -> None:
        """One metrics line (``records`` names its keys)."""

    def last_epoch(self, learner: str) -> dict[str, Any]:
        """The learner's latest epoch line (empty before its first)."""

    def architecture(self, learner: str, architecture: Architecture) -> str:
        """A learner's current architecture; returns how the summary names its file."""

    def architecture_history(self, learner: str, epoch: int, architecture: Architecture,
                             weights: dict[str, Any], entropy: dict[str, float]) -> None:
        """One epoch of a learner's search: its architecture and the weights behind it."""

    def diagrams(self, learner: str, architecture: Architecture) -> None:
        """Drawings of a derived architecture."""

    def model(self, stage: str, package: dict[str, Any]) -> str:
        """A trained network (an evaluate stage's); returns how the summary names its file."""

    def architecture_file(self, learner: str) -> str:
        """How the summary names a learner's architecture file."""

    def summary(self, summary: Summary) -> None:
        """The run's summary (also of a failed or interrupted run)."""

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Everything needed to continue exactly from here (written atomically; the main process's)."""

    def positions(self) -> dict[str, int]:
        """Sizes of what was appended so far: stored in a checkpoint, to cut back to on resume."""

    def rewind(self, positions: dict[str, int]) -> None:
        """Drop what was appended after a checkpoint's ``positions``."""
