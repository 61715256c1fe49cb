"""One call from a spec file to a checked run plan, with every problem mapped to file:line:col."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pydantic import BaseModel

from ..errors import PlanError, Problem, SpecError, dotted
from ..specs.load import Document, load_spec
from .build import plan
from .types import RunPlan


@dataclass(frozen=True)
class Compiled:
    spec: BaseModel   # the validated spec (what spec.resolved.yaml records)
    plan: RunPlan     # what execution runs
    base_dir: Path    # relative paths in the spec resolve against this (the spec file's folder)


def compile_spec(path: str | Path, overrides: Iterable[str] = (), base_dir: Path | None = None,
                 require_data: bool = False) -> Compiled:
    """Load, validate and plan. ``base_dir`` overrides the spec's folder (a resumed run's resolved
    spec lives in the run directory but its paths are relative to the original spec). With
    ``require_data`` a dataset whose files are not there is a problem (to run), not a warning (to plan)."""
    spec, doc = load_spec(path, overrides)
    base_dir = base_dir if base_dir is not None else doc.path.parent
    try:
        run_plan = plan(spec, base_dir=base_dir, stated_in=_stated_in(doc, len(spec.expect)), spec_file=str(doc.path))
    except PlanError as exc:
        raise SpecError(Problem(doc.pos(i.path), dotted(i.path), i.message) for i in exc.issues) from None
    missing = spec.data.dataset.missing(base_dir) if require_data else None
    if missing:
        where = ("data", "dataset", "root") if "root" in type(spec.data.dataset).model_fields else ("data", "dataset")
        raise SpecError([Problem(doc.pos(where), dotted(where), f"{missing} (nothing was started)")])
    return Compiled(spec, run_plan, base_dir)


def _stated_in(doc: Document, count: int) -> dict[int, str]:
    """The file that states each ``expect:`` entry (a base spec's when inherited through extends)."""
    out = {}
    for i in range(count):
        pos = doc.values.get(("expect", i))
        if pos is not None and not pos.file.startswith("<override"):
            out[i] = pos.file
    return out
