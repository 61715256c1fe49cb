"""Every registered component can be named in a spec that then validates and plans."""

from __future__ import annotations

import pytest

from conftest import DARTS, only
from sgl import registry
from sgl.engine.plan.compile import compile_spec

#: Two DARTS learners on digits: a warm-up, a search, derive. Each case names one component over it.
EVERY = {
    "name": "every",
    "data": {"dataset": "digits", "batch_size": 16},
    "learners": {"a": DARTS, "b": DARTS},
    "stages": [{"epochs": 1, "steps": ["W"]}, {"epochs": 1, "steps": ["A", "W", "PL", "V"]}, {"name": "derive"}],
}


def _cases():
    for entry in registry.entries():
        key = registry.KINDS[entry.kind].key
        if entry.kind in ("search_space", "model"):
            config = entry.config()
            phases = config.growing_phases() if type(config).searchable else 1
            sections = dict(learners=only(a={"kind": entry.name}, b=DARTS),
                            stages=[{"epochs": 1, "steps": ["A", "W", "PL", "V"]}] * phases)
        elif entry.kind == "dataset":
            sections = dict(data={"dataset": {key: entry.name}})
        elif entry.kind == "optimizer":
            # min_lr 0: whatever the optimizer's default lr, the schedule must not end above it
            sections = dict(optim={"weights": {"name": entry.name}, "arch": {"name": entry.name}, "schedule": {"min_lr": 0}})
        elif entry.kind == "scheduler":
            sections = dict(optim={"schedule": {"name": entry.name}})
        elif entry.kind == "pseudo_labeler":
            sections = dict(pseudo_labels={"name": entry.name})
        elif entry.kind == "hypergradient":
            sections = dict(hypergradient={"method": entry.name})
        elif entry.kind == "protocol":
            sections = dict(stages=[{"epochs": 1, "steps": ["A", "W", "PL", "V"]}, {"name": "derive"},
                                    {"name": "evaluate", "learner": "a", key: entry.name}])
        else:  # a new kind must get a case here
            raise AssertionError(f"no spec case for kind {entry.kind!r}")
        yield pytest.param(entry, sections, id=f"{entry.kind}:{entry.name}")


@pytest.mark.parametrize(("entry", "sections"), list(_cases()))
def test_a_spec_naming_the_component_validates(make_spec, entry, sections):
    compiled = compile_spec(make_spec(base=EVERY, **sections))
    spec = compiled.spec
    chosen = {
        "search_space": lambda: spec.learners["a"],
        "model": lambda: spec.learners["a"],
        "dataset": lambda: spec.data.dataset,
        "optimizer": lambda: spec.optim.weights,
        "scheduler": lambda: spec.optim.schedule,
        "pseudo_labeler": lambda: spec.pseudo_labels,
        "hypergradient": lambda: spec.hypergradient,
        "protocol": lambda: spec.stages[-1],
    }[entry.kind]()
    assert isinstance(chosen, entry.config)
    assert compiled.plan.learners
