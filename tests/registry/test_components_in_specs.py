"""Every registered component can be named in a spec that then validates and plans."""

from __future__ import annotations

import pytest

from sgl import registry
from sgl.engine.plan.compile import compile_spec

from conftest import write_spec


def _spec(**sections: str) -> str:
    base = {
        "data": "{dataset: digits, batch_size: 16}",
        "learners": "{a: {kind: darts, channels: 4, layers: 3, nodes: 2}, b: {kind: darts, channels: 4, layers: 3, nodes: 2}}",
        "stages": "[{epochs: 1, steps: [W]}, {epochs: 1, steps: [A, W, PL, V]}, {name: derive}]",
    }
    base.update(sections)
    return "name: every\n" + "".join(f"{key}: {value}\n" for key, value in base.items())


def _cases():
    for entry in registry.entries():
        key = registry.KINDS[entry.kind].key
        if entry.kind in ("search_space", "model"):
            config = entry.config()
            phases = config.growing_phases() if type(config).searchable else 1
            stages = ", ".join(["{epochs: 1, steps: [A, W, PL, V]}"] * phases)
            text = _spec(
                learners=f"{{a: {{kind: {entry.name}}}, b: {{kind: darts, channels: 4, layers: 3, nodes: 2}}}}",
                stages=f"[{stages}]",
            )
        elif entry.kind == "dataset":
            text = _spec(data=f"{{dataset: {{{key}: {entry.name}}}, batch_size: 16}}")
        elif entry.kind == "optimizer":
            # min_lr 0: whatever the optimizer's default lr, the schedule must not end above it
            text = _spec(optim=f"{{weights: {{name: {entry.name}}}, arch: {{name: {entry.name}}}, schedule: {{min_lr: 0}}}}")
        elif entry.kind == "scheduler":
            text = _spec(optim=f"{{schedule: {{name: {entry.name}}}}}")
        elif entry.kind == "pseudo_labeler":
            text = _spec(pseudo_labels=f"{{name: {entry.name}}}")
        elif entry.kind == "hypergradient":
            text = _spec(hypergradient=f"{{method: {entry.name}}}")
        elif entry.kind == "protocol":
            text = _spec(stages=f"[{{epochs: 1, steps: [A, W, PL, V]}}, {{name: derive}}, "
                                f"{{name: evaluate, learner: a, {key}: {entry.name}}}]")
        else:  # a new kind must get a case here
            raise AssertionError(f"no spec case for kind {entry.kind!r}")
        yield pytest.param(entry, text, id=f"{entry.kind}:{entry.name}")


@pytest.mark.parametrize(("entry", "text"), list(_cases()))
def test_a_spec_naming_the_component_validates(tmp_path, entry, text):
    compiled = compile_spec(write_spec(tmp_path, text))
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
