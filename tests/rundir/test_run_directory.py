"""The run directory: what a run leaves in it, resuming from it, and claiming it (never overwritten
silently, one per run even when runs start together, refused while another run holds it)."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner

from conftest import assert_same_run, run_in, run_metrics
from sgl.engine.cli.main import main
from sgl.engine.errors import Interrupted
from sgl.engine.run.executor import RunOptions
from sgl.engine.rundir.session import resume_run


def test_run_directory_holds_everything(tiny_run):
    _, run_dir = tiny_run
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
    records = run_metrics(run_dir)
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert {(r["learner"], r["epoch"]) for r in epochs} == {(k, e) for k in ("alice", "bob", "carol") for e in range(3)}
    search = [r for r in epochs if r["phase"] == "search"]
    assert all("val/V/acc" in r and "train/V/loss" in r for r in search)
    assert all("entropy/normal" in r for r in search if r["learner"] != "carol")
    assert "plan tiny" in (run_dir / "plan.txt").read_text()


def test_resume_after_epoch_one_ends_identical(tiny_run, tmp_path):
    spec, first = tiny_run
    stopped = tmp_path / "stopped"
    with pytest.raises(Interrupted):
        run_in(spec, stopped, stop_after_epochs=1)
    assert json.loads((stopped / "summary.json").read_text())["status"] == "interrupted"
    resume_run(stopped, RunOptions(progress=False))
    assert_same_run(first, stopped)


def test_existing_run_directory_is_never_overwritten_silently(tiny_run, tmp_path):
    from sgl.engine.errors import RunDirError

    spec, _ = tiny_run
    target = tmp_path / "taken"
    target.mkdir()
    (target / "precious.txt").write_text("mine")
    with pytest.raises(RunDirError, match="--overwrite"):
        run_in(spec, target)
    assert (target / "precious.txt").read_text() == "mine"


def test_runs_started_together_get_their_own_directories(tmp_path):
    from sgl.engine.rundir.claim import new_run_dir

    made, locks, errors = [], [], []

    def start():
        try:
            path, lock = new_run_dir(tmp_path, "same")
            made.append(path)
            locks.append(lock)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(made) == 200 and len(set(made)) == 200


def test_a_run_directory_in_use_is_refused(small_run, tmp_path):
    from sgl.engine.rundir.claim import RunLock

    spec, _ = small_run
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with RunLock.take(busy):
        result = CliRunner().invoke(main, ["run", str(spec), "--run-dir", str(busy), "-q"])
        assert result.exit_code == 2 and "exists and is not empty" in result.output, result.output
        result = CliRunner().invoke(main, ["run", str(spec), "--run-dir", str(busy), "--overwrite", "-q"])
        assert result.exit_code == 2 and "in use by another run (pid" in result.output, result.output
        assert (busy / "keep.txt").exists()  # --overwrite never deletes a directory in use
        (busy / "run.json").write_text("{}")
        result = CliRunner().invoke(main, ["resume", str(busy)])
        assert result.exit_code == 2


def test_metrics_lines_stay_json_for_non_finite_values(tmp_path):
    from sgl.engine.rundir.layout import RunDir

    run = RunDir(tmp_path)
    run.log({"kind": "iter", "W/loss": float("inf"), "V/loss": float("nan"), "W/acc": 0.5})
    run.close()
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"kind": "iter", "W/loss": None, "V/loss": None, "W/acc": 0.5}
