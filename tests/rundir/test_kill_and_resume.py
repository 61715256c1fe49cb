"""Crash-only runs: `sgl run` killed with SIGKILL anywhere (SGL_CRASH_AT), then `sgl resume`, ends
bit-identical to a run never killed; a kill before the directory is set up says to start again.
A sweep over every kill point: tests/sweep_kills.py."""

from __future__ import annotations

import json
import signal

import pytest
from click.testing import CliRunner

from conftest import EVERY, assert_same_run, run_sgl as sgl
from sgl.engine.cli.main import main


KILLS = [
    ("iteration", 2),    # inside the first epoch: only the start and time checkpoints exist
    ("write", 8),        # inside an atomic write (a temporary file left behind)
    ("checkpoint", 9),   # just after a checkpoint in the search stage
    ("write", 7),        # inside the first checkpoint's write (after the set-up's six): resuming starts from the beginning
    ("summary", 1),      # after the last checkpoint, before summary.json
]


@pytest.mark.parametrize(("point", "nth"), KILLS, ids=[f"{p}:{n}" for p, n in KILLS])
def test_kill_9_anywhere_then_resume_is_bit_identical(small_run, tmp_path, point, nth):
    spec, straight = small_run
    run_dir = tmp_path / "killed"
    killed = sgl("run", str(spec), *EVERY, "--run-dir", str(run_dir), "-q", cwd=tmp_path, env={"SGL_CRASH_AT": f"{point}:{nth}"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    resumed = sgl("resume", str(run_dir), "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_same_run(straight, run_dir)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert not list(run_dir.rglob(".*.tmp")), "a killed write's temporary file was left behind"


def test_a_kill_during_a_resumed_run_resumes_again(small_run, tmp_path):
    spec, straight = small_run
    run_dir = tmp_path / "twice"
    assert sgl("run", str(spec), *EVERY, "--run-dir", str(run_dir), "-q", cwd=tmp_path,
               env={"SGL_CRASH_AT": "iteration:3"}).returncode == -signal.SIGKILL
    assert sgl("resume", str(run_dir), "-q", cwd=tmp_path, env={"SGL_CRASH_AT": "iteration:5"}).returncode == -signal.SIGKILL
    resumed = sgl("resume", str(run_dir), "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_same_run(straight, run_dir)


def test_a_kill_while_the_directory_is_set_up_says_to_start_again(small_run, tmp_path):
    spec, _ = small_run
    run_dir = tmp_path / "setup"
    # write:1 is run.json's own write (the first of the set-up: later ones resume by themselves, #20)
    killed = sgl("run", str(spec), "--run-dir", str(run_dir), "-q", cwd=tmp_path, env={"SGL_CRASH_AT": "write:1"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout
    result = CliRunner().invoke(main, ["resume", str(run_dir)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "was stopped while it was being set up, before anything ran" in result.output
    assert f"--run-dir {run_dir} --overwrite" in result.output


def test_a_completed_run_resumed_writes_nothing_new(small_run, tmp_path):
    _, straight = small_run
    before = (straight / "metrics.jsonl").read_text()
    result = CliRunner().invoke(main, ["resume", str(straight)])
    assert result.exit_code == 0 and "already complete" in result.output
    assert (straight / "metrics.jsonl").read_text() == before
