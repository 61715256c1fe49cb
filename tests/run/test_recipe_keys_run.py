"""The keys paper recipes need, at run time: α-gradient clipping, BatchNorm statistics in the A-step,
entering growing phases that span stages, data subsets, early stopping and ``expect:``. How the planner
reads them: tests/plan/test_recipe_keys_plan.py."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import BASE_SPEC, GROWING, merged, run_in
from sgl.engine.plan.compile import compile_spec
from sgl.engine.run.runner import build_runner

#: Two DARTS learners on a twentieth of digits, one search stage of two epochs.
TWO = merged(BASE_SPEC, {"name": "keys", "seed": 4, "data": {"split": {"train": 0.05, "val": 0.05}},
                         "stages": [{"name": "search", "epochs": 2, "steps": ["A", "W", "PL", "V"]}]})


# --------------------------------------------------------------------------- α-gradient clipping


class _Fixed:
    """A hypergradient method that returns the given gradients (to watch what the step does with them)."""

    def __init__(self, learners, scale: float):
        self.learners, self.scale = learners, scale

    def compute(self, ctx):
        return {k: [torch.full_like(p, self.scale) for p in learner.space.arch_parameters()] for k, learner in self.learners.items()}


@pytest.mark.parametrize(("clip", "scale", "clipped"), [(1.0, 1.0, True), (1e6, 1.0, False), (None, 1.0, False)])
def test_arch_gradient_is_clipped_to_its_norm_only_when_above_it(make_spec, clip, scale, clipped):
    from sgl.engine.run.steps import a_step

    overrides = [] if clip is None else [f"optim.arch_grad_clip={clip}"]
    runner = build_runner(make_spec(base=TWO), overrides)
    learners = runner.learners
    params = learners["alice"].space.arch_parameters()
    raw = torch.sqrt(sum(torch.full_like(p, scale).pow(2).sum() for p in params))
    a_step(learners, ["alice"], _Fixed({"alice": learners["alice"]}, scale), None, runner.runtime.step_ctx)
    norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in params))
    if clipped:
        assert raw > clip and norm == pytest.approx(clip, rel=1e-5)
    else:
        assert norm == pytest.approx(float(raw), rel=1e-6)


# --------------------------------------------------------------------------- BatchNorm statistics in the A-step


@pytest.mark.parametrize(("running_stats", "moves"), [("keep", 2), ("update", 3)])
def test_a_step_moves_v_statistics_only_when_asked(make_spec, running_stats, moves):
    runner = build_runner(make_spec(base=TWO), [f"hypergradient.running_stats={running_stats}"])
    v = runner.learners["alice"].nets["V"].module
    # through the plain network's state_dict, which the fused network (the default) also speaks
    tracked = lambda: max(int(b) for n, b in v.state_dict().items() if n.endswith("num_batches_tracked"))  # noqa: E731
    before = tracked()
    runner.search_iteration()
    # the V-step runs V on x_train and x_u; with update the A-step's forward on x_val counts too
    assert tracked() - before == moves


# --------------------------------------------------------------------------- growing phases across stages


@pytest.mark.parametrize("on_grow", ["reinit", "carry"])
def test_entering_a_phase_reinitialises_or_carries_alpha(make_spec, on_grow):
    runner = build_runner(make_spec(base=GROWING, learners={"pat": {"on_grow": on_grow}}))
    pat = runner.learners["pat"]
    with torch.no_grad():
        pat.space.alphas_normal.normal_()  # a searched α, far from its initial scale
    old = pat.space.alphas_normal.detach().clone()
    kept = torch.tensor([sorted(row.topk(3).indices.tolist()) for row in torch.softmax(old, -1)])
    runner.search_iteration("p2_search", arch=False)
    new = pat.space.alphas_normal.detach()
    assert new.shape == (5, 3) and torch.equal(pat.space.kept_normal, kept)
    if on_grow == "carry":
        assert torch.equal(new, old.gather(1, kept))
    else:
        assert new.abs().max() < 0.01  # fresh 1e-3·N(0, 1)
    # the new phase's networks: deeper, scheduled over the phase (W: 3 epochs, V: 2)
    cells = {key.split(".")[1] for key in pat.nets["W"].module.state_dict() if key.startswith("cells.")}  # plain or fused
    assert len(cells) == 4
    assert pat.nets["W"].scheduler.T_max == 3 and pat.nets["V"].scheduler.T_max == 2


def test_phase_networks_do_not_depend_on_the_run_rng(make_spec):
    spec = make_spec(base=GROWING)
    weights = []
    for noise in (0, 5):
        runner = build_runner(spec)
        torch.randn(noise)  # another process may have drawn different randomness (uneven shards)
        runner.learners["pat"].enter_growing_phase(1)
        net = runner.learners["pat"].nets["W"].module
        weights.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert torch.equal(*weights)


# --------------------------------------------------------------------------- data subset


def test_subset_searches_on_the_first_images_deterministically(make_spec):
    spec = make_spec(base=TWO, data={"split": {"train": 0.5, "val": 0.5}, "subset": 100})
    plan = compile_spec(spec).plan
    assert plan.data.examples == {"train": 50, "val": 50}
    first, again = build_runner(spec), build_runner(spec)
    streams = first.streams
    assert streams["train"].indices.tolist() == list(range(50)) and streams["val"].indices.tolist() == list(range(50, 100))
    assert torch.equal(streams["train"].next()[0], again.streams["train"].next()[0])


# --------------------------------------------------------------------------- early stopping


def test_early_stop_ends_the_stage_when_validation_worsens(make_spec, tmp_path, monkeypatch):
    from sgl.engine.run.runtime import Runtime

    accuracies = iter([0.9, 0.8, 0.7, 0.6] * 100)
    real = Runtime.val_accuracy

    def falling(self, learner, net, with_loss=False):
        acc, loss = real(self, learner, net, with_loss)
        return (next(accuracies) if net == "V" else acc), loss

    monkeypatch.setattr(Runtime, "val_accuracy", falling)
    stages = [{"name": "search", "epochs": 6, "steps": ["A", "W", "PL", "V"], "early_stop": {"metric": "val_acc", "patience": 1}},
              {"name": "derive"}]
    run_dir = run_in(make_spec(base=TWO, stages=stages), tmp_path / "run")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["early_stopped"] == {"search": 2}
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"epoch"' in line]
    assert {r["epoch"] for r in epochs if r["kind"] == "epoch"} == {0, 1}
    assert all("val/V/loss" in r for r in epochs if r["kind"] == "epoch")
    assert (run_dir / "genotypes" / "alice.json").exists()  # the stages after it still ran


# --------------------------------------------------------------------------- expect


def test_expectations_that_hold_are_recorded(make_spec, tmp_path):
    # one search epoch: what is checked is the run's end
    expect = [{"metric": "learners.alice.test_acc.V", "range": [0.0, 1.0], "source": "measured"}]
    spec = make_spec(base=TWO, expect=expect, stages=[{"name": "search", "epochs": 1, "steps": ["A", "W", "PL", "V"]}])
    run_dir = run_in(spec, tmp_path / "run")
    (result,) = json.loads((run_dir / "summary.json").read_text())["expectations"]
    assert result["passed"] and result["metric"] == "learners.alice.test_acc.V" and 0 <= result["value"] <= 1
