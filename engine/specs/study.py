"""The ``study:`` section: seeds × variants of one spec, run as ordinary runs and summarised as a table.

A study varies dotted keys of the spec (``vary:``); its trials are the product of the lists, each
trial being exactly ``sgl run spec.yaml <its overrides>``. A vary entry is a list of values, or a
mapping of names to values (``learners: {K2: {...}, K3: {...}}``) when the values are too big to
label a table row. ``sgl run`` ignores the section (a trial *is* such a run); ``sgl study`` runs it.

Here: the section's model, its checks that need only the document (rows, metrics), ``--vary`` from
the command line, and the expansion into trials. The study wing (``engine/study/``) compiles each
trial's spec and runs them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PositiveInt, field_validator, model_validator

from ..errors import Pos, Problem, SpecError, did_you_mean
from ..summary import SUMMARY_KEYS
from .reader import Document, _Reader
from .sections import Section

#: Metrics a study table knows by name (anything else is a dotted path into summary.json).
NAMED_METRICS = {
    "test_error": "test error (%): an evaluation stage's final one, else 100 − the best search network's test accuracy",
    "test_error_best": "lowest test error (%) over an evaluation stage's epochs",
    "params": "parameters (M): the evaluated network's, else the best search network's",
    "search_cost": "search cost: CPU-hours on CPUs, GPU-days on GPUs",
    "wall_time": "wall-clock minutes of the whole run",
}
#: The vary key that replicates a trial rather than making a new variant (left out of rows by default).
SEED_KEY = "seed"
MAX_TRIALS = 10_000


def _has_values(values: list[Any] | dict[str, Any]) -> list[Any] | dict[str, Any]:
    if len(values) == 0:
        raise ValueError("no values: the study would have no trials")
    return values


class TableSpec(Section):
    rows: list[str] | None = Field(
        None, description="Varied keys whose values make a row of the table (null: every varied key but seed); "
        "trials that differ only in the other varied keys (the seeds) are averaged.",
    )
    metrics: list[str] = Field(
        default_factory=lambda: ["test_error", "params", "search_cost"], min_length=1,
        description="Columns: " + "; ".join(f"{k}: {v}" for k, v in NAMED_METRICS.items())
        + "; or a dotted path into summary.json (learners.alice.test_acc.V).",
    )


class StudySpec(Section):
    """Run the spec once per combination of the varied values, and tabulate the results."""

    vary: dict[str, Annotated[list[Any] | dict[str, Any], AfterValidator(_has_values)]] = Field(
        description="Dotted key of the spec -> its values: a list, or a mapping of names to values (the names "
        "label the table's rows). The trials are the product of all of them.",
    )
    table: TableSpec = Field(default_factory=TableSpec, description="What `sgl report STUDY_DIR` tabulates.")
    executor: Literal["local", "ray"] = Field(
        "local", description="local: trials as processes on this machine; ray: as Ray tasks on a cluster "
        "(`pip install 'sgl[ray]'`).",
    )
    address: str | None = Field(None, description="Ray cluster address (HOST:PORT, or 'auto'); null: a local Ray "
                                "instance started for the study.")
    parallel: PositiveInt | None = Field(None, le=4096, description="Trials at once (null: as many as cores, or GPUs, "
                                         "allow, never more than the trials; at most 4,096).")
    threads: PositiveInt | None = Field(None, le=1024, description="CPU threads of each trial (null: the cores divided "
                                        "by the trials at once); trials × threads never exceed the cores (at most 1,024).")

    @field_validator("vary")
    @classmethod
    def _not_empty(cls, vary: dict[str, Any]) -> dict[str, Any]:
        if not vary:
            raise ValueError("nothing to vary: give at least one key and its values")
        for key in vary:
            if not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", key):
                raise ValueError(f"{key!r} is not a dotted key of the spec (like loss_weights.pseudo)")
        return vary

    @model_validator(mode="after")
    def _size(self) -> "StudySpec":
        count = 1
        for values in self.vary.values():
            count *= len(values)
        if count > MAX_TRIALS:
            raise ValueError(f"{count:,} trials: more than {MAX_TRIALS:,}")
        return self


# --------------------------------------------------------------------------- trials


@dataclass(frozen=True)
class Choice:
    """One value of one varied key: its override text and its label in tables and directory names."""

    key: str
    index: int
    label: str
    override: str
    value: Any


@dataclass(frozen=True)
class TrialSpec:
    index: int
    choices: tuple[Choice, ...]

    @property
    def overrides(self) -> list[str]:
        return [c.override for c in self.choices]

    @property
    def labels(self) -> dict[str, str]:
        return {c.key: c.label for c in self.choices}

    @property
    def name(self) -> str:
        """The trial's directory name: its number and its values, file-safe."""
        parts = [f"{c.key.rsplit('.', 1)[-1]}-{c.label}" for c in self.choices]
        slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", "_".join(parts)).strip("_")[:60]
        return f"t{self.index:03d}_{slug}" if slug else f"t{self.index:03d}"


def flow_yaml(value: Any) -> str:
    """``value`` as one line of YAML that reads back to the same value (an override's right side)."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = True
    yaml.width = 1 << 30
    yaml.sort_base_mapping_type_on_output = False  # keys as written
    buffer = io.StringIO()
    yaml.dump([value], buffer)
    text = buffer.getvalue().strip()
    assert text.startswith("[") and text.endswith("]"), text
    return text[1:-1]


def _reads_back(text: str, value: Any) -> bool:
    reader = _Reader("<value>")
    try:
        return reader.read(text) == value and not reader.problems
    except SpecError:
        return False


def choices(doc: Document, study: StudySpec) -> tuple[list[list[Choice]], list[Problem]]:
    """Each varied key's choices, in the order written; values that cannot be overrides are problems."""
    out, problems = [], []
    for key, values in study.vary.items():
        named = isinstance(values, dict)
        items = list(values.items()) if named else list(enumerate(values))
        row = []
        for i, (name, value) in enumerate(items):
            text = flow_yaml(value)
            if not _reads_back(text, value):
                problems.append(Problem(doc.pos(("study", "vary", key, name)), f"study.vary.{key}",
                                        f"value {value!r} cannot be written as an override"))
                continue
            label = str(name) if named else (text if len(text) <= 24 else f"{i}")
            row.append(Choice(key, i, label, f"{key}={text}", value))
        out.append(row)
    return out, problems


def trials(doc: Document, study: StudySpec) -> list[TrialSpec]:
    """The product of the varied values, the first key varying slowest."""
    lists, problems = choices(doc, study)
    if problems:
        raise SpecError(problems)
    return [TrialSpec(i, tuple(combo)) for i, combo in enumerate(itertools.product(*lists))]


def row_keys(study: StudySpec) -> list[str]:
    if study.table.rows is not None:
        return list(study.table.rows)
    return [k for k in study.vary if k != SEED_KEY]


def table_problems(doc: Document, study: StudySpec) -> list[Problem]:
    """Rows that are not varied keys, metrics that are neither named nor paths into summary.json."""
    problems = []
    for i, key in enumerate(study.table.rows or []):
        if key not in study.vary:
            problems.append(Problem(doc.pos(("study", "table", "rows", i)), f"study.table.rows.{i}",
                                    f"{key!r} is not a varied key{did_you_mean(key, study.vary)}; varied: "
                                    f"{', '.join(study.vary)}"))
    for i, metric in enumerate(study.table.metrics):
        head = metric.split(".", 1)[0]
        if metric in NAMED_METRICS or ("." in metric and head in SUMMARY_KEYS):
            continue
        known = [*NAMED_METRICS, *SUMMARY_KEYS]
        problems.append(Problem(doc.pos(("study", "table", "metrics", i)), f"study.table.metrics.{i}",
                                f"unknown metric {metric!r}{did_you_mean(metric, known)}: one of "
                                f"{', '.join(NAMED_METRICS)}, or a dotted path into summary.json starting with one "
                                f"of {', '.join(SUMMARY_KEYS)}"))
    return problems


# --------------------------------------------------------------------------- the command line


def apply_vary(doc: Document, text: str, number: int = 1) -> None:
    """``--vary 'KEY=VALUES'`` (VALUES: a YAML list, or a mapping of names to values): set or replace
    ``study.vary.KEY`` in the document, positioned at the option."""
    origin = Pos(f"<--vary {number}: {text}>", 0, 0)
    key, sep, values_text = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError([Problem(origin, "", "--vary must look like KEY=[value, ...] (or KEY={name: value, ...})")])
    reader = _Reader(origin.file)
    values = reader.read(values_text) if values_text.strip() else None
    if reader.problems:
        raise SpecError(reader.problems)
    if not isinstance(values, (list, dict)):
        raise SpecError([Problem(origin, f"study.vary.{key}", f"expected a list of values, e.g. {key}=[0, 1, 2]")])
    study = doc.data.get("study")
    if not isinstance(study, dict):
        study = doc.data["study"] = {}
        doc.keys[("study",)] = doc.values[("study",)] = origin
    vary = study.get("vary")
    if not isinstance(vary, dict):
        vary = study["vary"] = {}
        doc.keys[("study", "vary")] = doc.values[("study", "vary")] = origin
    vary[key] = values
    path = ("study", "vary", key)
    for table in (doc.keys, doc.values):
        for stale in [p for p in table if p[: len(path)] == path]:
            del table[stale]
    doc.keys[path] = doc.values[path] = origin
