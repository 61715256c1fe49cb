"""Issue #20, what a person sees when a run starts, stops and is interrupted — in a real process whose
output goes to a pipe, as to a log file: the run directory first (11), the exact `sgl resume`
command wherever one is advised (11), an answer to the first Ctrl-C at once (12), and a run stopped
by Ctrl-C or a signal shown as interrupted and resumable, not failed (13)."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import sgl_cli as sgl, sgl_process as start, tiny_spec_text

SPEC = tiny_spec_text("seen", 3, search_epochs=2)


def when_training(run_dir: Path, process: subprocess.Popen) -> None:
    deadline = time.time() + 300
    while time.time() < deadline and not (run_dir / "metrics.jsonl").exists() and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()[0]


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def test_the_run_directory_is_the_first_line(spec, tmp_path):
    result = sgl("run", str(spec), "--stop-after", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"run directory: {tmp_path}/runs/seen/"), result.stdout
    run_dir = Path(first.removeprefix("run directory: "))
    assert (run_dir / "run.json").is_file()
    assert f"resume with: sgl resume {run_dir}" in result.stdout


def test_a_failed_write_says_the_exact_resume_command(spec, tmp_path):
    run_dir = tmp_path / "run"
    limit = 40 * 1024  # the set-up's files fit, a checkpoint does not (ulimit -f)

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = sgl("run", str(spec), "--run-dir", str(run_dir), "-q", cwd=tmp_path, preexec_fn=small_files)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "RUN_DIR" not in result.stderr, result.stderr
    assert result.stderr.startswith("failed: File too large") and f"continue with `sgl resume {run_dir}`" in result.stderr
    resumed = sgl("resume", str(run_dir), "-q", "--stop-after", "1", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr


def test_a_failure_before_the_run_directory_advises_no_resume(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("output: runs", "output: /proc/no_runs_here"), encoding="utf-8")
    result = sgl("run", str(spec), "-q", cwd=tmp_path)
    assert result.returncode == 2 and "cannot make a run directory" in result.stderr, result.stderr
    assert "sgl resume" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_first_signal_is_answered_at_once_and_the_run_is_interrupted_not_failed(spec, tmp_path, sig):
    run_dir = tmp_path / "run"
    process = start("run", str(spec), "--run-dir", str(run_dir), cwd=tmp_path)
    when_training(run_dir, process)
    process.send_signal(sig)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 130, out
    name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    answer = f"{name}: stopping after this iteration, with a checkpoint…; {name} again to stop now"
    assert answer in out, out
    assert out.index(answer) < out.index("stopped: "), out  # before the iteration's end, not after it
    assert f"resume with: sgl resume {run_dir}" in out
    _interrupted_and_resumable(run_dir, tmp_path)


def test_a_second_ctrl_c_stops_at_once_and_the_run_is_interrupted_not_failed(spec, tmp_path):
    run_dir = tmp_path / "run"
    process = start("run", str(spec), "--run-dir", str(run_dir), "-q", cwd=tmp_path)
    when_training(run_dir, process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 130, out
    assert "Ctrl-C: stopping after this iteration" in out, out  # answered even with -q
    assert f"continue with `sgl resume {run_dir}`" in out and "Traceback" not in out, out
    _interrupted_and_resumable(run_dir, tmp_path)


def _interrupted_and_resumable(run_dir: Path, cwd: Path) -> None:
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    report = sgl("report", str(run_dir), cwd=cwd)
    assert report.returncode == 0, report.stderr
    assert "status interrupted (resumable)" in (run_dir / "report.md").read_text()
    resumed = sgl("resume", str(run_dir), "-q", cwd=cwd)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
