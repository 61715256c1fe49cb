"""`sgl run` and `sgl resume` on the command line: plain progress when not a terminal, and every way a
run can end has its exit code and message (1: the run failed, 2: bad input, 130: interrupted)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

from click.testing import CliRunner

from conftest import EVERY, SMALL, TINY, assert_same_run, sgl_process
from sgl.engine.cli.main import main


def test_plain_progress_lines_and_summary_when_not_a_terminal(make_spec, tmp_path):
    spec = make_spec(base=TINY)
    process = sgl_process("run", str(spec), "stages.1.epochs=1", "--run-dir", str(tmp_path / "cli"), cwd=tmp_path)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out
    assert "[warmup] epoch 1/2 · iteration 3/4" in out
    assert "ETA" in out
    assert "summary" in out and "alice" in out and "genotypes/alice.json" in out


def test_interrupt_checkpoints_and_resume_completes(make_spec, tmp_path):
    spec = make_spec(base=TINY)
    run_dir = tmp_path / "sigint"
    process = sgl_process("run", str(spec), "--run-dir", str(run_dir), cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "metrics.jsonl").exists():
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 130, out
    assert "sgl resume" in out
    assert (run_dir / "checkpoints/last.pt").exists()
    resumed = sgl_process("resume", str(run_dir), "-q", cwd=tmp_path)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_a_full_disk_keeps_the_checkpoints_and_exits_1(small_run, tmp_path, monkeypatch):
    import sgl.engine.rundir.layout as rundir

    spec, straight = small_run
    real, calls = rundir.atomic_write_bytes, {"n": 0}

    def full(path, data):
        if path.name == "incoming.pt":
            calls["n"] += 1
            if calls["n"] == 6:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(rundir, "atomic_write_bytes", full)
    run_dir = tmp_path / "full"
    result = CliRunner().invoke(main, ["run", str(spec), *EVERY, "--run-dir", str(run_dir), "-q"])
    assert result.exit_code == 1 and "No space left on device" in result.output and "sgl resume" in result.output
    assert "Traceback" not in result.output
    monkeypatch.setattr(rundir, "atomic_write_bytes", real)
    assert CliRunner().invoke(main, ["resume", str(run_dir), "-q"]).exit_code == 0
    assert_same_run(straight, run_dir)


def test_a_read_only_output_is_bad_input(small_run, tmp_path, monkeypatch):
    import sgl.engine.rundir.layout as rundir

    spec, straight = small_run

    def read_only(path, data):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(rundir, "atomic_write_bytes", read_only)
    result = CliRunner().invoke(main, ["run", str(spec), "--run-dir", str(tmp_path / "ro"), "-q"])
    assert result.exit_code == 2 and result.output.startswith("error: cannot write") and "Read-only" in result.output


def test_ctrl_c_before_the_run_begins_exits_130(make_spec, tmp_path, monkeypatch):
    import sgl.engine.rundir.session as session

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "build_runtime", interrupted)
    result = CliRunner().invoke(main, ["run", str(make_spec(base=SMALL)), "-q"])
    assert result.exit_code == 130 and "interrupted" in result.output


def test_two_ctrl_c_exit_130_and_the_run_resumes(make_spec, tmp_path):
    spec = make_spec(base=SMALL)
    run_dir = tmp_path / "twice"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "sgl.engine.cli.main", "run", str(spec), "--run-dir", str(run_dir), "-q"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "metrics.jsonl").exists():
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 130, out
    assert "Traceback" not in out and "Aborted" not in out
    assert CliRunner().invoke(main, ["resume", str(run_dir), "-q"]).exit_code == 0


def test_a_non_finite_loss_says_which_checkpoint_is_kept_even_when_quiet(make_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("SGL_NAN_AT", "0:2")
    run_dir = tmp_path / "nan"
    result = CliRunner().invoke(main, ["run", str(make_spec(base=SMALL)), "--run-dir", str(run_dir), "-q"])
    assert result.exit_code == 1, result.output
    assert "non-finite W loss" in result.output and "the start of stage warmup" in result.output
    assert (run_dir / "checkpoints" / "last.pt").exists()


def test_a_failed_expectation_exits_1_with_metric_value_and_range(make_spec, tmp_path):
    from sgl.engine.results.report import write_report

    # one search epoch on a twentieth of digits: what is checked is the run's end
    spec = make_spec(seed=4, data={"split": {"train": 0.05, "val": 0.05}},
                     stages=[{"name": "search", "epochs": 1, "steps": ["A", "W", "PL", "V"]}],
                     expect=[{"metric": "learners.alice.test_acc.V", "range": [1.5, 2.0], "source": "measured"}])
    result = CliRunner().invoke(main, ["run", str(spec), "--run-dir", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 1, result.output
    assert "FAILED: learners.alice.test_acc.V = " in result.output and "expected 1.5 – 2 (measured)" in result.output
    (failed,) = json.loads((tmp_path / "run" / "summary.json").read_text())["expectations"]
    assert not failed["passed"]
    report = write_report([tmp_path / "run"], tmp_path / "report")
    assert len(report["failed_expectations"]) == 1 and "FAILED" in report["markdown"].read_text()
