"""summary.json: what a run produced, as one typed model — written by the executor, checked by the
planner (``expect:`` paths), read by reports, exports and the Python API.

Its keys are the file's keys; ``expect:`` metrics are dotted paths into it
(``learners.alice.test_acc.V``, ``evaluations.evaluate.test_error_final``, ``search_cost.hours``).
Reading is lenient where runs differ: a run that stopped early has no test accuracy, one that
failed before measuring has none on D_val (null). Nothing here imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Status = Literal["completed", "failed", "interrupted"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a summary written by a later version still reads


class LearnerResult(_Part):
    kind: str
    searchable: bool
    val_acc: dict[str, float | None] = Field(default_factory=dict, description="Last accuracy on D_val, per network.")
    test_acc: dict[str, float] = Field(default_factory=dict, description="Accuracy on the test set per network (completed runs).")
    genotype: str | None = Field(None, description="The learner's architecture file, relative to the run directory.")
    params_M: float = Field(description="Millions of parameters of its W network.")


class SearchCost(_Part):
    device: str
    hours: float = Field(description="Wall-clock hours of the search stages.")
    device_hours: float = Field(description="hours × processes.")
    wall_seconds: float = Field(description="Wall-clock seconds of the whole run.")


class EvaluationResult(BaseModel):
    """An evaluate stage's result; its protocol adds what it describes (``channels``, ``layers``, ...)."""

    model_config = ConfigDict(extra="allow")

    stage: str
    learner: str | None
    genotype: str = Field(description="What was trained: the learner's architecture file, or the spec's name or path.")
    genotype_json: dict[str, Any]
    dataset: str
    epochs: int
    test_error_final: float | None
    test_error_best: float | None
    test_acc_final: float | None
    test_acc_best: float | None
    params_M: float | None = None
    madds_M: float | None = None
    device: str
    num_processes: int
    hours: float
    device_hours: float
    wall_seconds: float
    model: str = Field(description="The trained network's file, relative to the run directory.")


class Distributed(_Part):
    processes: int
    architecture_fingerprints: list[str] | None = None
    weights_fingerprints: list[str] | None = None
    ranks_agree: bool | None = None


class ExpectationResult(_Part):
    metric: str
    value: float | None
    low: float
    high: float
    passed: bool
    source: str = ""


class Summary(_Part):
    name: str
    status: Status
    dataset: str
    hypergradient: str
    seed: int
    epochs_done: int = Field(description="Search epochs completed (evaluation epochs not counted).")
    learners: dict[str, LearnerResult] = Field(default_factory=dict)
    search_cost: SearchCost
    evaluations: list[EvaluationResult] = Field(default_factory=list)
    early_stopped: dict[str, int] = Field(default_factory=dict, description="Stage -> epochs it ran before its early stop.")
    distributed: Distributed
    expectations: list[ExpectationResult] | None = None

    def to_json(self) -> dict[str, Any]:
        """The file's content: what was given, in field order (absent parts stay absent)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @property
    def status_text(self) -> str:
        """The status as a person reads it: a run stopped by Ctrl-C or a signal can be resumed."""
        return "interrupted (resumable)" if self.status == "interrupted" else self.status

    def evaluation(self, name: str) -> EvaluationResult | None:
        return next((e for e in self.evaluations if e.stage == name), None)


#: The top-level keys of summary.json (what an ``expect:`` metric may start with).
SUMMARY_KEYS: tuple[str, ...] = tuple(Summary.model_fields)
LEARNER_KEYS: tuple[str, ...] = tuple(LearnerResult.model_fields)


class SummaryUnreadable(ValueError):
    """A summary.json that is not valid JSON or not a summary."""


def read_summary(path: Path) -> Summary | None:
    """The summary in ``path``; None when there is none (a run still going, or stopped before it
    wrote one). A damaged file raises SummaryUnreadable saying what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SummaryUnreadable(f"{path}: cannot be read ({exc})") from None
    try:
        return Summary.model_validate(json.loads(text))
    except ValueError as exc:  # JSONDecodeError and ValidationError
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = ".".join(str(p) for p in first["loc"]) + ": " + first["msg"] if first else str(exc).splitlines()[0]
        raise SummaryUnreadable(f"{path}: not an sgl summary ({where})") from None
