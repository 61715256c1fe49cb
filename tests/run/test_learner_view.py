"""What a hypergradient method sees of each learner: W, and as V the network its stage-2 loss trains."""

from __future__ import annotations

from conftest import DARTS, FIXED

import sgl


def test_a_fixed_learners_v_is_its_stage_2_network(make_spec):
    # full_chain counts every learner's validation loss through V (its stage-2 network), fixed ones
    # included; before #17 a fixed learner handed the method its W network as V.
    path = make_spec(learners={"alice": DARTS, "carol": FIXED}, hypergradient={"method": "full_chain"})
    runner = sgl.build_runner(path)
    for name, learner in runner.learners.items():
        view = learner.view()
        assert view.w_net is learner.nets["W"].module
        assert view.v_net is learner.nets["V"].module, name
        assert view.v_opt is learner.nets["V"].optimizer, name


def test_without_stage_2_the_architecture_flows_through_w(make_spec):
    stages = [{"name": "search", "epochs": 1, "steps": ["A", "W"]}, {"name": "derive"}]
    runner = sgl.build_runner(make_spec(learners={"alice": DARTS}, stages=stages, loss_weights={"pseudo": 0.0}))
    view = runner.learners["alice"].view()
    assert runner.plan.learners["alice"].final_net == "W" and view.v_net is runner.learners["alice"].nets["W"].module
