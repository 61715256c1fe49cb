"""The executor end to end on tiny digits runs: run directory, determinism, resume, guards, processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY, assert_same_run, build_spec, merged, run_metrics as metrics, sgl_process as _cli
from sgl.engine.errors import Interrupted, NonFiniteLoss
from sgl.engine.run.executor import RunOptions
from sgl.engine.rundir.session import resume_run, run_spec

def write(tmp_path: Path, text: str | None = None, name: str = "spec.yaml") -> Path:
    if text is None:
        return build_spec(tmp_path / name, TINY)
    path = tmp_path / name
    path.write_text(text.lstrip(), encoding="utf-8")
    return path


def run(spec: Path, run_dir: Path, *overrides: str, **options) -> Path:
    return run_spec(spec, overrides, RunOptions(run_dir=run_dir, progress=False, **options))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """One uninterrupted run that several tests compare against."""
    tmp = tmp_path_factory.mktemp("reference")
    spec = write(tmp)
    return spec, run(spec, tmp / "run")


def test_run_directory_holds_everything(reference):
    _, run_dir = reference
    for name in ("spec.yaml", "spec.resolved.yaml", "plan.txt", "env.json", "run.json", "metrics.jsonl",
                 "checkpoints/last.pt", "genotypes/alice.json", "genotypes/bob.json",
                 "genotypes/alice.history.jsonl", "summary.json", "figures/cell_alice_normal.png"):
        assert (run_dir / name).exists(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert set(summary["learners"]) == {"alice", "bob", "carol"}
    assert summary["learners"]["carol"]["genotype"] is None
    assert 0 <= summary["learners"]["alice"]["test_acc"]["V"] <= 1
    history = (run_dir / "genotypes/alice.history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in history] == [0, 1, 2]
    records = metrics(run_dir)
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert {(r["learner"], r["epoch"]) for r in epochs} == {(k, e) for k in ("alice", "bob", "carol") for e in range(3)}
    search = [r for r in epochs if r["phase"] == "search"]
    assert all("val/V/acc" in r and "train/V/loss" in r for r in search)
    assert all("entropy/normal" in r for r in search if r["learner"] != "carol")
    assert "plan tiny" in (run_dir / "plan.txt").read_text()


def test_same_spec_and_seed_reproduce_bit_identically(reference, tmp_path):
    spec, first = reference
    assert_same_run(first, run(spec, tmp_path / "again"))


def test_a_different_seed_changes_the_run(reference, tmp_path):
    spec, first = reference
    with pytest.raises(Interrupted):
        run(spec, tmp_path / "other", "seed=6", stop_after_epochs=1)  # the warm-up is enough to tell
    warmup = [r for r in metrics(first) if r["phase"] == "warmup"]
    assert warmup and warmup != [r for r in metrics(tmp_path / "other") if r["phase"] == "warmup"]


def test_resume_after_epoch_one_ends_identical(reference, tmp_path):
    spec, first = reference
    stopped = tmp_path / "stopped"
    with pytest.raises(Interrupted):
        run(spec, stopped, stop_after_epochs=1)
    assert json.loads((stopped / "summary.json").read_text())["status"] == "interrupted"
    resume_run(stopped, RunOptions(progress=False))
    assert_same_run(first, stopped)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
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
        run(write(tmp_path), tmp_path / "nan")
    state = torch.load(tmp_path / "nan/checkpoints/last.pt", weights_only=True)
    # the last checkpoint: the warm-up stage done, the search stage not yet begun
    assert (state["cursor"]["stage"], state["cursor"]["epoch"], state["cursor"]["iteration"]) == (1, 0, 0)
    assert json.loads((tmp_path / "nan/summary.json").read_text())["status"] == "failed"


def test_existing_run_directory_is_never_overwritten_silently(reference, tmp_path):
    from sgl.engine.errors import RunDirError

    spec, _ = reference
    target = tmp_path / "taken"
    target.mkdir()
    (target / "precious.txt").write_text("mine")
    with pytest.raises(RunDirError, match="--overwrite"):
        run(spec, target)
    assert (target / "precious.txt").read_text() == "mine"


def test_plain_darts_is_one_learner_without_stage_two(tmp_path):
    spec = write(tmp_path, """
name: darts
data: {dataset: digits, batch_size: 16, split: {train: 0.1, val: 0.1}}
learners:
  solo: {kind: darts, channels: 4, layers: 3, nodes: 2}
loss_weights: {pseudo: 0}
stages:
  - {epochs: 2, steps: [A, W], arch_start: 1}
run: {cpu: true}
""")
    run_dir = run(spec, tmp_path / "run")
    history = [json.loads(line) for line in (run_dir / "genotypes/solo.history.jsonl").read_text().splitlines()]
    # arch_start: 1 -> the architecture does not move during the first epoch, then it does.
    assert history[0]["alpha"] == json.loads(json.dumps(history[0]["alpha"]))
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert set(state["learners"]["solo"]["nets"]) == {"W"}


def test_growing_space_enters_its_phases(tmp_path):
    spec = write(tmp_path, """
name: pdarts
data: {dataset: digits, batch_size: 16, split: {train: 0.1, val: 0.1}}
learners:
  pat: {kind: p_darts, channels: 4, nodes: 2, phases: [{layers: 3, ops: 8}, {layers: 4, ops: 3, skip_dropout: 0.2}]}
  sam: {kind: darts, channels: 4, layers: 3, nodes: 2}
stages:
  - {name: phase1, epochs: 1, steps: [A, W, PL, V]}
  - {name: phase2, epochs: 1, steps: [A, W, PL, V]}
run: {cpu: true}
""")
    run_dir = run(spec, tmp_path / "run")
    history = [json.loads(line) for line in (run_dir / "genotypes/pat.history.jsonl").read_text().splitlines()]
    pruned = history[-1]["alpha"]["normal"]
    assert all(sum(1 for w in row if w > 0) == 3 for row in pruned)  # 3 ops kept per edge in phase 2
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert int(state["learners"]["pat"]["space"]["phase_index"]) == 1


def test_bf16_autocast_runs_on_cpu(tmp_path):
    run_dir = run(write(tmp_path), tmp_path / "bf16", "run.mixed_precision=bf16", "stages.1.epochs=1")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_hard_pseudo_labels_with_threshold(tmp_path):
    run_dir = run(write(tmp_path), tmp_path / "hard", "pseudo_labels={name: hard, threshold: 0.5}", "stages.1.epochs=1")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_two_processes_agree_and_write_once(tmp_path):
    spec = write(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "sgl.engine.cli.main", "run", str(spec), "stages.1.epochs=1", "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    runs = list((tmp_path / "runs/tiny").iterdir())
    assert len(runs) == 1, runs  # only the main process made a run directory
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["distributed"]["processes"] == 2
    fingerprints = summary["distributed"]["architecture_fingerprints"]
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]
    lines = [json.loads(line) for line in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    keys = [(r["kind"], r["learner"], r.get("step"), r["epoch"]) for r in lines]
    assert len(keys) == len(set(keys))  # every record written once


def test_plain_progress_lines_and_summary_when_not_a_terminal(tmp_path):
    spec = write(tmp_path)
    process = _cli("run", str(spec), "stages.1.epochs=1", "--run-dir", str(tmp_path / "cli"), cwd=tmp_path)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out
    assert "[warmup] epoch 1/2 · iteration 3/4" in out
    assert "ETA" in out
    assert "summary" in out and "alice" in out and "genotypes/alice.json" in out


def test_interrupt_checkpoints_and_resume_completes(tmp_path):
    spec = write(tmp_path)
    run_dir = tmp_path / "sigint"
    process = _cli("run", str(spec), "--run-dir", str(run_dir), cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "metrics.jsonl").exists():
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 130, out
    assert "sgl resume" in out
    assert (run_dir / "checkpoints/last.pt").exists()
    resumed = _cli("resume", str(run_dir), "-q", cwd=tmp_path)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


RECIPE = merged(TINY, {"stages": [*TINY["stages"], {"name": "evaluate", "learner": "alice", "epochs": 1, "channels": 4, "layers": 3,
                                                    "batch_size": 32, "cutout": 0}]})


def test_one_spec_searches_derives_evaluates_reports_and_exports(tmp_path):
    from sgl.engine.results.export import export_model
    from sgl.engine.results.report import write_report

    run_dir = run(build_spec(tmp_path / "spec.yaml", RECIPE), tmp_path / "recipe", "stages.1.epochs=1")
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


def test_tensorboard_events_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    run_dir = run(write(tmp_path), tmp_path / "tb", "run.tensorboard=on", "stages.1.epochs=1")
    events = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
