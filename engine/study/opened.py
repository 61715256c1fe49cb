"""A study directory as Python objects: what ``sgl.open_study`` returns.

    study = sgl.open_study("runs/quickstart/study-20261207-101500")
    study.trials                      # the manifest's trials: id, values, overrides, state, reason
    study.table().rows[0].cells       # mean ± std (n) per metric, with the per-seed values
    print(study.render("latex"))      # the table as Markdown, LaTeX or CSV
    study.run("t000_seed-0").summary  # any trial is an ordinary run
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import StudyError
from ..results.run import Run
from .manifest import Manifest, StudyDir, TrialRecord
from .table import StudyTable, read_table


class Study:
    def __init__(self, path: str | Path) -> None:
        self._dir = StudyDir(path)
        self.manifest: Manifest = self._dir.read()

    def __repr__(self) -> str:
        done = sum(t.state == "completed" for t in self.trials)
        return f"<sgl study {self.dir} ({done}/{len(self.trials)} trials completed, {self.manifest.state})>"

    @property
    def dir(self) -> Path:
        return self._dir.path

    @property
    def trials(self) -> list[TrialRecord]:
        return self.manifest.trials

    def trial_dir(self, trial_id: str) -> Path:
        return self._dir.trial(trial_id)

    def run(self, trial_id: str) -> Run:
        """The trial's run (RunDirError while it has not been set up)."""
        if trial_id not in {t.id for t in self.trials}:
            raise StudyError(f"no trial {trial_id!r} in {self.dir}; trials: {', '.join(t.id for t in self.trials)}")
        return Run.open(self._dir.trial(trial_id))

    def table(self) -> StudyTable:
        return read_table(self.dir)

    def render(self, fmt: str = "md") -> str:
        from .report import render

        return render(self.table(), fmt)

    def report(self, out_dir: str | Path | None = None) -> dict[str, Any]:
        from .report import write_study_report

        return write_study_report(self.dir, out_dir)
