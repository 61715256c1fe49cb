"""A finished (or running, or stopped) run as Python objects: what ``sgl.open_run`` and ``sgl.run`` return.

    run = sgl.open_run("runs/quickstart/20261207-101500")
    run.summary.learners["alice"].test_acc      # summary.json, typed
    run.metrics("epoch")                        # metrics.jsonl's lines (run.metrics(frame=True): pandas)
    run.genotypes["alice"].describe()           # each searchable learner's architecture
    run.model("alice")(images)                  # its trained network, ready to use
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from sgl.registry import Architecture

from ..plan.types import RunPlan
from ..rundir.reader import RunFiles, open_run_dir
from ..summary import Summary


class Run:
    def __init__(self, files: RunFiles) -> None:
        self.files = files

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """The run in ``path`` (RunDirError when it is none)."""
        return cls(open_run_dir(path))

    def __repr__(self) -> str:
        summary = self._summary_or_none()
        status = summary.status_text if summary is not None else "no summary yet"
        return f"<sgl run {self.dir} ({status})>"

    @property
    def dir(self) -> Path:
        return self.files.path

    @property
    def summary(self) -> Summary | None:
        """summary.json (None while the run has none: still running, or stopped before writing it)."""
        return self.files.summary

    @cached_property
    def plan(self) -> RunPlan:
        """The plan the run executes (compiled again from its resolved spec)."""
        return self.files.plan

    @property
    def spec(self) -> str:
        """The spec as run: defaults filled, overrides applied (spec.resolved.yaml)."""
        return self.files.dir.resolved_spec.read_text(encoding="utf-8")

    def metrics(self, kind: str | None = None, *, frame: bool = False) -> Any:
        """metrics.jsonl's lines, of one ``kind`` (``iter``, ``epoch``, ``eval_epoch``) or all; with
        ``frame``, as a pandas DataFrame (pandas must be installed)."""
        records = self.files.metrics(kind)
        if not frame:
            return records
        try:
            import pandas
        except ImportError:
            raise ImportError("metrics(frame=True) needs pandas: pip install pandas") from None
        return pandas.DataFrame.from_records(records)

    @property
    def genotypes(self) -> dict[str, Architecture]:
        """Each searchable learner's architecture, as the run last wrote it."""
        return dict(self.files.architectures)

    def model(self, name: str, network: str | None = None) -> Any:
        """The trained network of learner (or evaluate stage) ``name`` as a module in eval mode:
        the evaluated network when an evaluate stage trained one, else the search's (``network``:
        ``"eval"``, ``"W"`` or ``"V"`` picks)."""
        from .models import exportable

        return exportable(self.dir, name, network).module

    def _summary_or_none(self) -> Summary | None:
        try:
            return self.summary
        except ValueError:
            return None
