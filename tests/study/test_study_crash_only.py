"""Crash-only studies: kill -9 the driver before any trial, with trials running, and after the last
trial before the table; `sgl study --resume` then ends with the same trials, bit for bit, and the
same table. A trial that fails is recorded with its reason and the study goes on."""

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

from conftest import REPO, build_spec, checkpoint_weights, run_metrics

#: Two seeds of conftest's small spec, with a checkpoint after every iteration (time-based) so a
#: trial killed mid-epoch resumes from inside it.
STUDY = {"vary": {"seed": [0, 1]}, "table": {"metrics": ["test_error", "params"]}}
RUN = {"cpu": True, "log_every": 4, "checkpoint_every": 0.00005}


def driver(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sgl.engine.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO, env={**os.environ, **(env or {})})


def finish(process: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out


def manifest(study: Path) -> dict:
    return json.loads((study / "study.json").read_text())


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("straight")
    spec = build_spec(tmp / "spec.yaml", study=STUDY, run=RUN)
    code, out = finish(driver("study", str(spec), "--study-dir", str(tmp / "study"), "-q"))
    assert code == 0, out
    return spec, tmp / "study"


def _kill_with_trials_running(process: subprocess.Popen, study: Path) -> None:
    """SIGKILL the driver once a trial has checkpointed inside its run and not finished."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        for trial in (study / "trials").glob("*") if (study / "trials").is_dir() else ():
            metrics_file = trial / "metrics.jsonl"
            if metrics_file.is_file() and metrics_file.stat().st_size and not (trial / "summary.json").exists():
                process.send_signal(signal.SIGKILL)
                process.communicate()
                return
        time.sleep(0.05)
    raise AssertionError("no trial was caught running")


@pytest.mark.parametrize("point", ["study_start", "running", "study_end"])
def test_kill_9_the_driver_then_resume_gives_the_same_trials_and_table(straight, tmp_path, point):
    spec, reference = straight
    study = tmp_path / "study"
    env = {"SGL_CRASH_AT": point} if point != "running" else None
    process = driver("study", str(spec), "--study-dir", str(study), "-q", env=env)
    if point == "running":
        _kill_with_trials_running(process, study)
    else:
        code, out = finish(process)
        assert code == -signal.SIGKILL, out
    assert not (study / "table.md").exists()
    time.sleep(0.5)  # the kernel ends the orphaned trials (their parent-death signal)
    code, out = finish(driver("study", "--resume", str(study), "-q"))
    assert code == 0, out
    trials = manifest(study)["trials"]
    assert [t["state"] for t in trials] == ["completed", "completed"]
    for trial in trials:
        assert run_metrics(study / "trials" / trial["id"]) == run_metrics(reference / "trials" / trial["id"])
        a, b = checkpoint_weights(study / "trials" / trial["id"]), checkpoint_weights(reference / "trials" / trial["id"])
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (study / "table.md").read_text() == (reference / "table.md").read_text()
    attempts = [t["attempts"] for t in trials]
    if point == "study_end":
        assert attempts == [1, 1]  # finished trials are kept
    if point == "running":
        logs = [(study / "logs" / f"{t['id']}.log").read_text() for t in trials]
        assert any(f"sgl resume {study / 'trials' / t['id']}" in log for t, log in zip(trials, logs)), logs


def test_a_failing_trial_is_recorded_and_the_study_completes(tmp_path):
    # a learning rate of 1e30 makes the loss non-finite in the first iterations: that trial fails
    spec = build_spec(tmp_path / "spec.yaml", study={"vary": {"optim.weights.lr": [0.05, 1.0e30]},
                                                     "table": {"metrics": ["test_error"]}},
                      stages=[{"name": "warmup", "epochs": 1, "steps": ["W"]}], run=RUN)
    code, out = finish(driver("study", str(spec), "--study-dir", str(tmp_path / "study"), "-q"))
    assert code == 1, out
    trials = manifest(tmp_path / "study")["trials"]
    assert [t["state"] for t in trials] == ["completed", "failed"]
    assert all(t["cpu_seconds"] > 0 for t in trials)  # what each cost, whatever the load
    assert "non-finite" in trials[1]["reason"] or "NaN" in trials[1]["reason"], trials[1]["reason"]
    table = (tmp_path / "study" / "table.md").read_text()
    assert "| – (0) | 0/1 (1 failed) |" in table and "(1) | 1/1 |" in table
    assert f"{trials[1]['id']}: {trials[1]['reason']}" in out


def test_a_trial_not_yet_started_never_runs_an_edited_spec(tmp_path):
    spec = build_spec(tmp_path / "spec.yaml", study=STUDY, run=RUN)
    code, out = finish(driver("study", str(spec), "--study-dir", str(tmp_path / "study"), "-q",
                              env={"SGL_CRASH_AT": "study_start"}))
    assert code == -signal.SIGKILL, out
    spec.write_text(spec.read_text().replace("batch_size: 16", "batch_size: 8"))
    code, out = finish(driver("study", "--resume", str(tmp_path / "study"), "-q"))
    assert code == 2
    assert out.strip().startswith(f"error: trial t000_seed-0 cannot start: {spec.resolve()} changed since the study "
                                  "began"), out
    assert not (tmp_path / "study" / "trials").exists()
    assert "study.log" not in {p.name for p in (tmp_path / "study").iterdir()}  # nothing ran
