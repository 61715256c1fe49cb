"""Searches end to end on tiny digits runs: reproducible bit for bit, seeded, stopped by a non-finite
loss, one learner without stage 2, growing phases, bf16, hard pseudo-labels, TensorBoard, and one spec
that searches, derives, evaluates, reports and exports."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import DARTS, TINY, assert_same_run, merged, only, run_in, run_metrics
from sgl.engine.errors import Interrupted, NonFiniteLoss


def test_same_spec_and_seed_reproduce_bit_identically(tiny_run, tmp_path):
    spec, first = tiny_run
    assert_same_run(first, run_in(spec, tmp_path / "again"))


def test_a_different_seed_changes_the_run(tiny_run, tmp_path):
    spec, first = tiny_run
    with pytest.raises(Interrupted):
        run_in(spec, tmp_path / "other", "seed=6", stop_after_epochs=1)  # the warm-up is enough to tell
    warmup = [r for r in run_metrics(first) if r["phase"] == "warmup"]
    assert warmup and warmup != [r for r in run_metrics(tmp_path / "other") if r["phase"] == "warmup"]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(make_spec, tmp_path, monkeypatch):
    import sgl.engine.run.iteration as search

    real = search.w_step
    calls = {"n": 0}

    def poisoned(learner, x, y, ctx):
        calls["n"] += 1
        result = real(learner, x, y, ctx)
        if calls["n"] > 3 * 4 + 2:  # mid-way through the second epoch (3 learners, 4 iterations an epoch)
            result.loss = result.loss * float("nan")
            result.finite = torch.isfinite(result.loss)
        return result

    monkeypatch.setattr(search, "w_step", poisoned)
    with pytest.raises(NonFiniteLoss, match="non-finite W loss"):
        run_in(make_spec(base=TINY), tmp_path / "nan")
    state = torch.load(tmp_path / "nan/checkpoints/last.pt", weights_only=True)
    # the last checkpoint: the warm-up stage done, the search stage not yet begun
    assert (state["cursor"]["stage"], state["cursor"]["epoch"], state["cursor"]["iteration"]) == (1, 0, 0)
    assert json.loads((tmp_path / "nan/summary.json").read_text())["status"] == "failed"


def test_plain_darts_is_one_learner_without_stage_two(make_spec, tmp_path):
    spec = make_spec(learners=only(solo=DARTS), loss_weights={"pseudo": 0}, stages=[{"epochs": 2, "steps": ["A", "W"], "arch_start": 1}])
    run_dir = run_in(spec, tmp_path / "run")
    history = [json.loads(line) for line in (run_dir / "genotypes/solo.history.jsonl").read_text().splitlines()]
    # arch_start: 1 -> the architecture does not move during the first epoch, then it does.
    assert history[0]["alpha"] == json.loads(json.dumps(history[0]["alpha"]))
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert set(state["learners"]["solo"]["nets"]) == {"W"}


def test_growing_space_enters_its_phases(make_spec, tmp_path):
    pat = {"kind": "p_darts", "channels": 4, "nodes": 2, "phases": [{"layers": 3, "ops": 8}, {"layers": 4, "ops": 3, "skip_dropout": 0.2}]}
    stages = [{"name": "phase1", "epochs": 1, "steps": ["A", "W", "PL", "V"]}, {"name": "phase2", "epochs": 1, "steps": ["A", "W", "PL", "V"]}]
    run_dir = run_in(make_spec(learners=only(pat=pat, sam=DARTS), stages=stages), tmp_path / "run")
    history = [json.loads(line) for line in (run_dir / "genotypes/pat.history.jsonl").read_text().splitlines()]
    pruned = history[-1]["alpha"]["normal"]
    assert all(sum(1 for w in row if w > 0) == 3 for row in pruned)  # 3 ops kept per edge in phase 2
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert int(state["learners"]["pat"]["space"]["phase_index"]) == 1


def test_bf16_autocast_runs_on_cpu(make_spec, tmp_path):
    run_dir = run_in(make_spec(base=TINY), tmp_path / "bf16", "run.mixed_precision=bf16", "stages.1.epochs=1")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_hard_pseudo_labels_with_threshold(make_spec, tmp_path):
    run_dir = run_in(make_spec(base=TINY), tmp_path / "hard", "pseudo_labels={name: hard, threshold: 0.5}", "stages.1.epochs=1")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


RECIPE = merged(TINY, {"stages": [*TINY["stages"], {"name": "evaluate", "learner": "alice", "epochs": 1, "channels": 4, "layers": 3,
                                                    "batch_size": 32, "cutout": 0}]})


def test_one_spec_searches_derives_evaluates_reports_and_exports(make_spec, tmp_path):
    from sgl.engine.results.export import export_model
    from sgl.engine.results.report import write_report

    run_dir = run_in(make_spec(base=RECIPE), tmp_path / "recipe", "stages.1.epochs=1")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    (evaluation,) = summary["evaluations"]
    assert evaluation["genotype"] == "genotypes/alice.json"
    for key in ("test_error_final", "test_error_best", "params_M", "madds_M", "device_hours"):
        assert isinstance(evaluation[key], float), key
    assert [json.loads(l)["kind"] for l in (run_dir / "metrics.jsonl").read_text().splitlines()].count("eval_epoch") == 1
    # the search cost counts the search phases, not the evaluation
    assert 0 < summary["search_cost"]["hours"] * 3600 < summary["search_cost"]["wall_seconds"]

    report = write_report([run_dir], run_dir)
    assert report["html"].exists() and report["markdown"].exists()
    assert "tiny" in report["markdown"].read_text()

    scripted = torch.jit.load(str(export_model(run_dir, "alice", "torchscript")))
    x = torch.randn(2, 1, 8, 8)
    assert scripted(x).shape == (2, 10)
    assert json.loads(export_model(run_dir, "bob", "genotype").read_text())["space"] == "pc_darts"


def test_tensorboard_events_when_installed(make_spec, tmp_path):
    pytest.importorskip("tensorboard")
    run_dir = run_in(make_spec(base=TINY), tmp_path / "tb", "run.tensorboard=on", "stages.1.epochs=1")
    events = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
