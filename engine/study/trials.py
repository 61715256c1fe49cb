"""A study's trials from its spec: each trial's spec compiled (validated and planned) at once, every
problem of every trial reported together, at the position in the study section that causes it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import Pos, Problem, SpecError
from ..plan.compile import Compiled, compile_spec
from ..rundir.setup import resolved_yaml
from ..specs.load import load_document, validate
from ..specs.reader import Document
from ..specs.study import StudySpec, TrialSpec, apply_vary, row_keys, table_problems, trials

_OVERRIDE = re.compile(r"^<override (\d+): ")


@dataclass
class StudyPlan:
    """A study as its spec states it: the document, the section, the trials and their compiled specs."""

    spec_path: Path
    base_overrides: list[str]
    doc: Document
    section: StudySpec
    trials: list[TrialSpec]
    compiled: list[Compiled]

    @property
    def name(self) -> str:
        return self.compiled[0].plan.name

    @property
    def rows(self) -> list[str]:
        return row_keys(self.section)


def load_study(spec_path: str | Path, overrides: Iterable[str] = (), vary: Iterable[str] = (),
               extra: Iterable[str] = ()) -> StudyPlan:
    """The study of the spec at ``spec_path`` (with ``overrides`` for every trial and ``--vary``
    entries), each trial compiled with ``extra`` overrides after its own; SpecError lists every
    problem of the section and of every trial."""
    spec_path, overrides, extra = Path(spec_path), list(overrides), list(extra)
    doc = load_document(spec_path, overrides)
    for number, text in enumerate(vary, 1):
        apply_vary(doc, text, number)
    spec = validate(doc)
    if spec.study is None:
        raise SpecError([Problem(Pos(str(spec_path), 1, 1), "study", "no study: section and no --vary: nothing to "
                                 "vary (add a study: section, or give --vary KEY=[value, ...])")])
    problems = table_problems(doc, spec.study)
    specs = trials(doc, spec.study)
    compiled, trial_problems = _compile_all(spec_path, overrides, doc, specs, extra)
    if problems or trial_problems:
        raise SpecError([*problems, *trial_problems])
    return StudyPlan(spec_path, overrides, doc, spec.study, specs, compiled)


def _compile_all(spec_path: Path, base: list[str], doc: Document, specs: list[TrialSpec],
                 extra: list[str]) -> tuple[list[Compiled], list[Problem]]:
    compiled: list[Compiled] = []
    found: dict[tuple[str, str, str], list[str]] = {}  # one line per problem, naming the trials it hits
    order: list[tuple[str, str, str]] = []
    for trial in specs:
        try:
            compiled.append(compile_spec(spec_path, [*base, *trial.overrides, *extra]))
        except SpecError as exc:
            for problem in exc.problems:
                problem = _at_study(problem, doc, trial, len(base))
                key = (str(problem.pos) if problem.pos else "", problem.key, problem.message)
                if key not in found:
                    found[key] = []
                    order.append(key)
                found[key].append(", ".join(f"{k}={v}" for k, v in trial.labels.items()))
    problems = []
    for key in order:
        pos_text, path, message = key
        names = found[key]
        listed = "; ".join(names[:3]) + (f"; and {len(names) - 3} more" if len(names) > 3 else "")
        which = "every trial" if len(names) == len(specs) and len(specs) > 1 else \
            f"trial{'s' if len(names) > 1 else ''} {listed}"
        problems.append(Problem(_pos_of(pos_text), path, f"{message} (in {which})"))
    return compiled, problems


def _at_study(problem: Problem, doc: Document, trial: TrialSpec, base: int) -> Problem:
    """A problem an override of the trial caused, moved to that value (or key) in the study section."""
    match = _OVERRIDE.match(problem.pos.file) if problem.pos else None
    if match is None:
        return problem
    number = int(match.group(1)) - base - 1
    if not 0 <= number < len(trial.choices):
        return problem
    choice = trial.choices[number]
    vary = doc.data["study"]["vary"][choice.key]
    name = list(vary)[choice.index] if isinstance(vary, dict) else choice.index
    about_key = problem.message.startswith(("unknown key", "no such key", "no such item", "extends"))
    path = ("study", "vary", choice.key) if about_key else ("study", "vary", choice.key, name)
    return Problem(doc.pos(path, key=about_key), problem.key, problem.message)


def _pos_of(text: str) -> Pos | None:
    if not text:
        return None
    head, _, col = text.rpartition(":")
    file, _, line = head.rpartition(":")
    if file and line.isdigit() and col.isdigit():
        return Pos(file, int(line), int(col))
    return Pos(text, 0, 0)


def digest(compiled: Compiled) -> str:
    """What a trial will run, as a digest: its resolved spec."""
    return hashlib.sha256(resolved_yaml(compiled).encode("utf-8")).hexdigest()[:16]


def describe(study: StudyPlan) -> list[dict[str, Any]]:
    """The trials as rows: name, values, overrides (`sgl plan` prints them)."""
    return [{"trial": t.name, "values": t.labels, "overrides": t.overrides} for t in study.trials]
