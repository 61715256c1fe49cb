"""The keys paper recipes need, as the planner reads them: α-gradient clipping, growing phases that
span stages, and ``expect:`` checked before anything runs."""

from __future__ import annotations

from conftest import GROWING, MINI_SPEC, problems, where
from sgl.engine.plan.compile import compile_spec


def test_arch_grad_clip_same_as_grad_clip(make_spec):
    plan = compile_spec(make_spec(), ["optim.arch_grad_clip=grad_clip", "optim.grad_clip=3.5"]).plan
    assert {lp.arch_grad_clip for lp in plan.learners.values()} == {3.5}
    assert {lp.arch_grad_clip for lp in compile_spec(make_spec()).plan.learners.values()} == {None}


def test_growing_phases_span_stages_in_the_plan(make_spec):
    plan = compile_spec(make_spec(base=GROWING)).plan
    pat, sam = plan.learners["pat"], plan.learners["sam"]
    assert pat.networks["W"].horizons == (3, 3) and pat.networks["V"].horizons == (2, 2)
    assert sam.networks["W"].horizons == (6,) and sam.networks["V"].horizons == (4,)
    stages = plan.train_stages
    assert [s.growing_phase["pat"] for s in stages] == [0, 0, 1, 1]
    assert [s.growing_phase["sam"] for s in stages] == [0, 0, 0, 0]
    # where each network stands in its phase: (epochs before, span, epochs before the first A-step)
    assert stages[0].ramps["pat"] == {"W": (0, 3, 2), "V": (0, 2, 1)}
    assert stages[1].ramps["pat"] == {"W": (1, 3, 2), "V": (0, 2, 1)}
    assert stages[3].ramps["pat"] == {"W": (1, 3, 1), "V": (0, 2, 0)}
    assert "sam" not in stages[0].ramps


def test_growing_phases_must_run_in_order(spec_file):
    path = spec_file("""
        name: grow
        seed: 2
        data: {dataset: digits, batch_size: 16, split: {train: 0.1, val: 0.1}}
        learners:
          pat: {kind: p_darts, channels: 4, nodes: 2, on_grow: reinit,
                phases: [{layers: 3, ops: 8, skip_dropout: 0.2}, {layers: 4, ops: 3, skip_dropout: 0.4}]}
          sam: {kind: darts, channels: 4, layers: 3, nodes: 2}
        stages:
          - {name: p1_warmup, epochs: 1, steps: [W], growing_phase: 1}
          - {name: p1_search, epochs: 2, steps: [A, W, PL, V], arch_start: 1, growing_phase: 1}
          - {name: p2_warmup, epochs: 1, steps: [W], growing_phase: 3}
          - {name: p2_search, epochs: 2, steps: [A, W, PL, V], growing_phase: 2}
        run: {cpu: true}
        """)
    found = problems(path)
    assert found[0] == (f"{where(path, 'growing_phase: 3', offset=15)}: stages.2.growing_phase: growing phases run in order "
                        "from 1: after phase 1 comes 1 or 2, not 3")


def test_expectation_paths_are_checked_before_running(spec_file):
    path = spec_file(MINI_SPEC.replace("stages:", "expect:\n  - {metric: learners.alise.test_acc.V, value: 1}\n"
                                                  "  - {metric: evaluatons.x, value: 1}\nstages:"))
    assert problems(path) == [
        f"{where(path, 'learners.alise')}: expect.0.metric: no learner 'alise' (did you mean 'alice'?)",
        f"{where(path, 'evaluatons')}: expect.1.metric: summary.json has no 'evaluatons' (did you mean 'evaluations'?); "
        "it has name, status, dataset, hypergradient, seed, epochs_done, learners, search_cost, evaluations, "
        "early_stopped, distributed, expectations",
    ]


def test_expectation_needs_a_range_or_a_value(make_spec):
    assert "give exactly one of 'range' or 'value'" in problems(make_spec(expect=[{"metric": "seed"}]))[0]
