"""One call from a spec file to a checked plan, with every problem mapped to file:line:col."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pydantic import BaseModel

from .load import Document, Problem, SpecError, dotted, load_spec
from .plan import PlanError, StageGraph, plan


@dataclass(frozen=True)
class Compiled:
    spec: BaseModel
    doc: Document
    graph: StageGraph

    @property
    def base_dir(self) -> Path:
        return self.doc.path.parent


def compile_spec(path: str | Path, overrides: Iterable[str] = ()) -> Compiled:
    spec, doc = load_spec(path, overrides)
    try:
        graph = plan(spec, base_dir=doc.path.parent)
    except PlanError as exc:
        raise SpecError(Problem(doc.pos(i.path), dotted(i.path), i.message) for i in exc.issues) from None
    return Compiled(spec, doc, graph)
