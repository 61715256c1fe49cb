"""Several processes form one run (torchrun, two processes on the CPU): they agree and write once,
and they stop together, on Ctrl-C, a non-finite loss or a peer that stops answering."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import TINY


def test_two_processes_agree_and_write_once(make_spec, tmp_path):
    spec = make_spec(base=TINY)
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


def _torchrun(spec: Path, *args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "sgl.engine.cli.main", "run", str(spec), *args], cwd=cwd, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _workers(process: subprocess.Popen, timeout: float = 120) -> list:
    """torchrun's two workers, by rank: its direct children that carry a RANK (a worker's own
    short-lived children, forked with the same command line, are not workers)."""
    import psutil

    deadline = time.time() + timeout
    while time.time() < deadline:
        ranked = {}
        for child in psutil.Process(process.pid).children(recursive=False):
            try:
                rank = child.environ().get("RANK")
            except psutil.Error:  # gone, or not yet readable
                continue
            if rank is not None:
                ranked[int(rank)] = child
        if sorted(ranked) == [0, 1]:
            return [ranked[0], ranked[1]]
        time.sleep(0.2)
    raise AssertionError("the two workers did not start")


def test_torchrun_on_cpu_forms_one_run_without_run_cpu(make_spec, tmp_path):
    spec = make_spec(base=TINY, run={"cpu": None})
    process = _torchrun(spec, "stages.1.epochs=1", "-q", cwd=tmp_path)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out
    runs = list((tmp_path / "runs" / "tiny").iterdir())
    assert len(runs) == 1
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["distributed"]["processes"] == 2 and summary["distributed"]["ranks_agree"]


def test_ctrl_c_on_one_process_stops_every_process_with_a_checkpoint(make_spec, tmp_path):
    spec = make_spec(base=TINY)
    process = _torchrun(spec, "--run-dir", str(tmp_path / "run"), "-q", cwd=tmp_path)
    workers = _workers(process)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "run" / "metrics.jsonl").exists():
        time.sleep(0.1)
    workers[1].send_signal(signal.SIGINT)
    started = time.time()
    out, _ = process.communicate(timeout=120)
    assert time.time() - started < 60, out
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "interrupted"
    resumed = _torchrun_resume(tmp_path / "run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"


def _torchrun_resume(run_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "sgl.engine.cli.main", "resume", str(run_dir), "-q"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_non_finite_loss_on_one_process_stops_every_process(make_spec, tmp_path):
    process = _torchrun(make_spec(base=TINY), "--run-dir", str(tmp_path / "run"), "-q", cwd=tmp_path, env={"SGL_NAN_AT": "1:3"})
    out, _ = process.communicate(timeout=300)
    assert process.returncode != 0
    assert "non-finite loss on another process" in out or "non-finite W loss" in out, out
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"


def test_a_stopped_peer_fails_the_run_after_the_timeout(make_spec, tmp_path):
    process = _torchrun(make_spec(base=TINY), "--run-dir", str(tmp_path / "run"), "run.dist_timeout=8", "-q", cwd=tmp_path)
    workers = _workers(process)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "run" / "metrics.jsonl").exists():
        time.sleep(0.1)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    workers[1].send_signal(signal.SIGSTOP)
    try:
        # once rank 0 has said so, the stopped worker is killed: torchrun would otherwise give the
        # SIGTERM it cannot receive 30 s before its SIGKILL
        deadline = time.time() + 150
        while time.time() < deadline and process.poll() is None and not any("stopped answering" in l for l in lines):
            time.sleep(0.2)
        workers[1].kill()
        process.wait(timeout=120)
        reader.join(timeout=30)
    finally:
        for worker in workers:
            try:
                worker.kill()
            except Exception:  # noqa: BLE001 - already gone
                pass
    out = "".join(lines)
    assert process.returncode != 0
    assert "stopped answering or failed" in out and "dist_timeout is 8 s" in out, out
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()
