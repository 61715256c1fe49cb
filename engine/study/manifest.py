"""A study directory and its manifest, ``study.json``: the trials (overrides, state, run directory).

Layout (``runs/<name>/study-<time>/``)::

    study.json          the manifest: the spec, the overrides of every trial, how they run, each one's state
    study.log           what the driver did, one plain line per event
    trials/<trial>/     one ordinary run directory per trial (sgl report / export / resume work on it)
    logs/<trial>.log    the trial process's output (every attempt appended)
    table.md, table.tex, table.csv, figures/, report.html, report.md   written by `sgl report STUDY_DIR`

The manifest is written atomically by the driver alone; the state it records is what the driver
last knew. A trial's run directory is the truth: on resume, a trial whose summary says completed
is done, one with a run.json continues from its checkpoint, any other starts (again) from the top.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StudyError
from ..rundir.files import read_json, write_json

FORMAT = 1
MANIFEST = "study.json"
#: A trial's states: not begun, started by the driver, done, failed (kept, with its reason), and
#: stopped by an interrupt or by the driver's end (continued on resume).
STATES = ("pending", "running", "completed", "failed", "interrupted")


def now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


@dataclass
class TrialRecord:
    id: str
    index: int
    values: dict[str, str]        # varied key -> label of its value
    overrides: list[str]          # the variant's overrides (key=value), as given to `sgl run`
    digest: str                   # sha256 of the trial's resolved spec, checked before a trial starts late
    state: str = "pending"
    attempts: int = 0
    exit_code: int | None = None
    reason: str | None = None     # why it failed
    device: str | None = None     # the GPU it was handed, if any
    cpu_seconds: float | None = None  # CPU time of its processes, all attempts (local executor): load-proof cost
    started: str | None = None
    ended: str | None = None

    def label(self, keys: list[str] | None = None) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items() if keys is None or k in keys)


@dataclass
class Manifest:
    name: str
    spec: str                     # the spec file, absolute
    base_overrides: list[str]     # overrides of every trial (`sgl study spec.yaml key=value`)
    vary: dict[str, list[str]]    # varied key -> labels of its values, in order
    rows: list[str]
    metrics: list[str]
    executor: str
    address: str | None
    parallel: int
    threads: int
    trials: list[TrialRecord]
    gpus: list[str] = field(default_factory=list)    # local GPUs handed one per running trial
    uses_gpu: bool = False                             # whether the trials run on GPUs where there are some
    plugins: list[str] = field(default_factory=list)   # `sgl --plugin` modules every trial imports
    created: str = field(default_factory=now)
    state: str = "running"        # running | complete
    format: int = FORMAT

    def overrides(self, trial: TrialRecord) -> list[str]:
        """Everything `sgl run spec.yaml` gets for this trial: exactly what run.json records."""
        return [*self.base_overrides, *trial.overrides, f"run.threads={self.threads}"]

    def trial(self, trial_id: str) -> TrialRecord:
        return next(t for t in self.trials if t.id == trial_id)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Manifest":
        trials = [TrialRecord(**t) for t in data["trials"]]
        return cls(**{**data, "trials": trials})


class StudyDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @property
    def log(self) -> Path:
        return self.path / "study.log"

    @property
    def trials(self) -> Path:
        return self.path / "trials"

    def trial(self, trial_id: str) -> Path:
        return self.trials / trial_id

    def trial_log(self, trial_id: str) -> Path:
        return self.path / "logs" / f"{trial_id}.log"

    def table(self, suffix: str) -> Path:
        return self.path / f"table.{suffix}"

    def is_study(self) -> bool:
        return self.manifest.is_file()

    def read(self) -> Manifest:
        if not self.path.is_dir():
            raise StudyError(f"no such study directory: {str(self.path)!r}")
        if not self.manifest.is_file():
            if self.path.name.startswith("study-") and not any(self.trials.glob("*")):
                raise StudyError(f"{str(self.path)!r} was stopped while it was being set up, before any trial ran "
                                 f"(it has no {MANIFEST}); start the study again with sgl study")
            raise StudyError(f"{str(self.path)!r} is not an sgl study directory (no {MANIFEST})")
        data = read_json(self.manifest)
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, this sgl reads {FORMAT}")
            return Manifest.from_json(data)
        except (TypeError, KeyError, ValueError) as exc:
            raise StudyError(f"{self.manifest} is not a readable study manifest ({exc})") from None

    def write(self, manifest: Manifest) -> None:
        write_json(self.manifest, manifest.to_json())

    def note(self, line: str) -> None:
        """One plain line in study.log (appended and flushed: a kill loses at most this line)."""
        with open(self.log, "a", encoding="utf-8") as handle:
            handle.write(f"{now()} {line}\n")


def is_study_dir(path: str | Path) -> bool:
    try:
        return StudyDir(path).is_study()
    except OSError:  # a name too long, a link loop: no study; the run's own checks say what is wrong
        return False
