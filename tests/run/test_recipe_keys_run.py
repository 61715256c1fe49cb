"""The keys paper recipes need (issue #10): α-gradient clipping, BatchNorm statistics in the A-step,
growing phases that span stages, data subsets, early stopping and ``expect:``."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import SPECS, problems, where, write_spec
from sgl.engine.plan.compile import compile_spec
from sgl.engine.run.executor import RunOptions
from sgl.engine.run.runner import build_runner
from sgl.engine.rundir.session import run_spec

TWO = """
name: keys
seed: 4
data: {dataset: digits, batch_size: 16, split: {train: 0.05, val: 0.05}}
learners:
  alice: {kind: darts, channels: 4, layers: 3, nodes: 2}
  bob: {kind: darts, channels: 4, layers: 3, nodes: 2}
stages:
  - {name: search, epochs: 2, steps: [A, W, PL, V]}
run: {cpu: true, log_every: 4}
"""


# --------------------------------------------------------------------------- α-gradient clipping


class _Fixed:
    """A hypergradient method that returns the given gradients (to watch what the step does with them)."""

    def __init__(self, learners, scale: float):
        self.learners, self.scale = learners, scale

    def compute(self, ctx):
        return {k: [torch.full_like(p, self.scale) for p in learner.space.arch_parameters()] for k, learner in self.learners.items()}


@pytest.mark.parametrize(("clip", "scale", "clipped"), [(1.0, 1.0, True), (1e6, 1.0, False), (None, 1.0, False)])
def test_arch_gradient_is_clipped_to_its_norm_only_when_above_it(tmp_path, clip, scale, clipped):
    from sgl.engine.run.steps import a_step

    overrides = [] if clip is None else [f"optim.arch_grad_clip={clip}"]
    runner = build_runner(write_spec(tmp_path, TWO), overrides)
    learners = runner.learners
    params = learners["alice"].space.arch_parameters()
    raw = torch.sqrt(sum(torch.full_like(p, scale).pow(2).sum() for p in params))
    a_step(learners, ["alice"], _Fixed({"alice": learners["alice"]}, scale), None, runner.runtime.step_ctx)
    norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in params))
    if clipped:
        assert raw > clip and norm == pytest.approx(clip, rel=1e-5)
    else:
        assert norm == pytest.approx(float(raw), rel=1e-6)


def test_arch_grad_clip_same_as_grad_clip(tmp_path):
    plan = compile_spec(write_spec(tmp_path, TWO), ["optim.arch_grad_clip=grad_clip", "optim.grad_clip=3.5"]).plan
    assert {lp.arch_grad_clip for lp in plan.learners.values()} == {3.5}
    assert {lp.arch_grad_clip for lp in compile_spec(write_spec(tmp_path, TWO)).plan.learners.values()} == {None}


# --------------------------------------------------------------------------- BatchNorm statistics in the A-step


@pytest.mark.parametrize(("running_stats", "moves"), [("keep", 2), ("update", 3)])
def test_a_step_moves_v_statistics_only_when_asked(tmp_path, running_stats, moves):
    runner = build_runner(write_spec(tmp_path, TWO), [f"hypergradient.running_stats={running_stats}"])
    v = runner.learners["alice"].nets["V"].module
    tracked = lambda: max(int(b) for n, b in v.named_buffers() if n.endswith("num_batches_tracked"))  # noqa: E731
    before = tracked()
    runner.search_iteration()
    # the V-step runs V on x_train and x_u; with update the A-step's forward on x_val counts too
    assert tracked() - before == moves


# --------------------------------------------------------------------------- growing phases across stages

GROWING = """
name: grow
seed: 2
data: {dataset: digits, batch_size: 16, split: {train: 0.1, val: 0.1}}
learners:
  pat: {kind: p_darts, channels: 4, nodes: 2, on_grow: ON_GROW,
        phases: [{layers: 3, ops: 8, skip_dropout: 0.2}, {layers: 4, ops: 3, skip_dropout: 0.4}]}
  sam: {kind: darts, channels: 4, layers: 3, nodes: 2}
stages:
  - {name: p1_warmup, epochs: 1, steps: [W], growing_phase: 1}
  - {name: p1_search, epochs: 2, steps: [A, W, PL, V], arch_start: 1, growing_phase: 1}
  - {name: p2_warmup, epochs: 1, steps: [W], growing_phase: 2}
  - {name: p2_search, epochs: 2, steps: [A, W, PL, V], growing_phase: 2}
run: {cpu: true}
"""


def test_growing_phases_span_stages_in_the_plan(tmp_path):
    plan = compile_spec(write_spec(tmp_path, GROWING.replace("ON_GROW", "reinit"))).plan
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


def test_growing_phases_must_run_in_order(tmp_path):
    path = write_spec(tmp_path, GROWING.replace("ON_GROW", "reinit").replace("growing_phase: 2}\n  - {name: p2_search",
                                                                             "growing_phase: 3}\n  - {name: p2_search"))
    found = problems(path)
    assert found[0] == (f"{where(path, 'growing_phase: 3', offset=15)}: stages.2.growing_phase: growing phases run in order "
                        "from 1: after phase 1 comes 1 or 2, not 3")


@pytest.mark.parametrize("on_grow", ["reinit", "carry"])
def test_entering_a_phase_reinitialises_or_carries_alpha(tmp_path, on_grow):
    runner = build_runner(write_spec(tmp_path, GROWING.replace("ON_GROW", on_grow)))
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
    assert len(pat.nets["W"].module.cells) == 4
    assert pat.nets["W"].scheduler.T_max == 3 and pat.nets["V"].scheduler.T_max == 2


def test_phase_networks_do_not_depend_on_the_run_rng(tmp_path):
    spec = write_spec(tmp_path, GROWING.replace("ON_GROW", "reinit"))
    weights = []
    for noise in (0, 5):
        runner = build_runner(spec)
        torch.randn(noise)  # another process may have drawn different randomness (uneven shards)
        runner.learners["pat"].enter_growing_phase(1)
        net = runner.learners["pat"].nets["W"].module
        weights.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert torch.equal(*weights)


def test_shipped_p_darts_and_pc_darts_recipes_plan_as_the_authors_ran_them():
    pdarts = compile_spec(SPECS / "paper" / "sgl_pdarts_cifar10.yaml").plan
    for lp in pdarts.learners.values():
        assert lp.networks["W"].horizons == (25, 25, 25) and lp.networks["V"].horizons == (20, 20, 20)
        assert lp.arch_grad_clip == 5.0
    searches = [s for s in pdarts.train_stages if s.arch_from_epoch is not None]
    assert [s.arch_from_epoch - s.first_epoch + 5 for s in searches] == [15, 15, 15]  # A from phase-epoch 15
    assert [s.epochs for s in pdarts.train_stages] == [5, 20] * 3
    assert pdarts.hypergradient.running_stats == "update"
    pcdarts = compile_spec(SPECS / "paper" / "sgl_pcdarts_cifar10.yaml").plan
    (warmup, search) = pcdarts.train_stages
    assert (warmup.epochs, search.epochs, search.arch_from_epoch) == (15, 45, 30)
    for lp in pcdarts.learners.values():
        assert lp.networks["W"].horizons == (60,) and lp.networks["V"].horizons == (45,)
    # all 50,000 CIFAR training images, 25,000 / 25,000: 500 iterations of batch 50 per epoch
    assert pcdarts.data.subset is None and pcdarts.data.examples == {"train": 25000, "val": 25000}
    assert [s.iterations_per_epoch for s in pcdarts.train_stages] == [500, 500]
    ablation = compile_spec(SPECS / "paper" / "ablation_no_warmup.yaml").plan
    assert ablation.total_epochs == 45


# --------------------------------------------------------------------------- data subset


def test_subset_searches_on_the_first_images_deterministically(tmp_path):
    spec = write_spec(tmp_path, TWO.replace("split: {train: 0.05, val: 0.05}", "split: {train: 0.5, val: 0.5}, subset: 100"))
    plan = compile_spec(spec).plan
    assert plan.data.examples == {"train": 50, "val": 50}
    first, again = build_runner(spec), build_runner(spec)
    streams = first.streams
    assert streams["train"].indices.tolist() == list(range(50)) and streams["val"].indices.tolist() == list(range(50, 100))
    assert torch.equal(streams["train"].next()[0], again.streams["train"].next()[0])


# --------------------------------------------------------------------------- early stopping


def test_early_stop_ends_the_stage_when_validation_worsens(tmp_path, monkeypatch):
    from sgl.engine.run.runtime import Runtime

    accuracies = iter([0.9, 0.8, 0.7, 0.6] * 100)
    real = Runtime.val_accuracy

    def falling(self, learner, net, with_loss=False):
        acc, loss = real(self, learner, net, with_loss)
        return (next(accuracies) if net == "V" else acc), loss

    monkeypatch.setattr(Runtime, "val_accuracy", falling)
    text = TWO.replace("{name: search, epochs: 2, steps: [A, W, PL, V]}",
                       "{name: search, epochs: 6, steps: [A, W, PL, V], early_stop: {metric: val_acc, patience: 1}}\n  - {name: derive}")
    run_dir = run_spec(write_spec(tmp_path, text), (), RunOptions(run_dir=tmp_path / "run", progress=False))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["early_stopped"] == {"search": 2}
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"epoch"' in line]
    assert {r["epoch"] for r in epochs if r["kind"] == "epoch"} == {0, 1}
    assert all("val/V/loss" in r for r in epochs if r["kind"] == "epoch")
    assert (run_dir / "genotypes" / "alice.json").exists()  # the stages after it still ran


# --------------------------------------------------------------------------- expect


def _expect(low: float, high: float) -> str:
    """TWO with one expectation, and one search epoch: what is checked is the run's end."""
    text = TWO.replace("{name: search, epochs: 2,", "{name: search, epochs: 1,")
    return text.replace("stages:", f"expect:\n  - {{metric: learners.alice.test_acc.V, range: [{low}, {high}], source: measured}}\nstages:")


def test_expectations_that_hold_are_recorded(tmp_path):
    run_dir = run_spec(write_spec(tmp_path, _expect(0.0, 1.0)), (), RunOptions(run_dir=tmp_path / "run", progress=False))
    (result,) = json.loads((run_dir / "summary.json").read_text())["expectations"]
    assert result["passed"] and result["metric"] == "learners.alice.test_acc.V" and 0 <= result["value"] <= 1


def test_a_failed_expectation_exits_1_with_metric_value_and_range(tmp_path):
    from click.testing import CliRunner

    from sgl.engine.cli.main import main
    from sgl.engine.results.report import write_report

    spec = write_spec(tmp_path, _expect(1.5, 2.0))
    result = CliRunner().invoke(main, ["run", str(spec), "--run-dir", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 1, result.output
    assert "FAILED: learners.alice.test_acc.V = " in result.output and "expected 1.5 – 2 (measured)" in result.output
    (failed,) = json.loads((tmp_path / "run" / "summary.json").read_text())["expectations"]
    assert not failed["passed"]
    report = write_report([tmp_path / "run"], tmp_path / "report")
    assert len(report["failed_expectations"]) == 1 and "FAILED" in report["markdown"].read_text()


def test_expectation_paths_are_checked_before_running(tmp_path):
    text = TWO.replace("stages:", "expect:\n  - {metric: learners.alise.test_acc.V, value: 1}\n"
                                  "  - {metric: evaluatons.x, value: 1}\nstages:")
    path = write_spec(tmp_path, text)
    assert problems(path) == [
        f"{where(path, 'learners.alise')}: expect.0.metric: no learner 'alise' (did you mean 'alice'?)",
        f"{where(path, 'evaluatons')}: expect.1.metric: summary.json has no 'evaluatons' (did you mean 'evaluations'?); "
        "it has name, status, dataset, hypergradient, seed, epochs_done, learners, search_cost, evaluations, "
        "early_stopped, distributed, expectations",
    ]


def test_expectation_needs_a_range_or_a_value(tmp_path):
    path = write_spec(tmp_path, TWO.replace("stages:", "expect:\n  - {metric: seed}\nstages:"))
    assert "give exactly one of 'range' or 'value'" in problems(path)[0]
