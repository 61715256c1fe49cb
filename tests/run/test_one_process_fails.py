"""An error on one process stops every process within seconds (issue #19, fault 2).

Rank 1 of two gloo processes runs out of memory (injected, ``SGL_FAIL_AT``) while rank 0 waits for
it in a gradient all-reduce. Both stop at once — not after ``run.dist_timeout`` — each saying that
process 1 failed and why (not that a peer "stopped answering"); the summary says the run failed, and
the run resumes from its last checkpoint to the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

SPEC = """
name: fails
seed: 5
data: {dataset: digits, batch_size: 16, split: {train: 0.05, val: 0.05}}
learners:
  alice: {kind: darts, channels: 4, layers: 3, nodes: 2}
  bob: {kind: pc_darts, channels: 4, layers: 3, nodes: 2, partial_channels: 2}
stages:
  - {name: warmup, epochs: 1, steps: [W]}
  - {name: search, epochs: 1, steps: [A, W, PL, V]}
  - {name: derive}
run: {output: runs, log_every: 3, dist_timeout: 600}
"""


def _torchrun(*args: str, cwd, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "sgl.engine.cli.main", *args], cwd=cwd, capture_output=True, text=True, timeout=500,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})})
    return result, time.monotonic() - started


def test_an_error_on_one_process_stops_every_process_with_its_message(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC.lstrip())
    failed, seconds = _torchrun("run", "spec.yaml", "--run-dir", "run", "-q", cwd=tmp_path, env={"SGL_FAIL_AT": "1:3"})
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert seconds < 300, f"{seconds:.0f} s: the processes waited for each other (run.dist_timeout is 600 s)"
    told = [line for line in out.splitlines() if line.startswith("stopped: process 1 failed: OutOfMemoryError: CUDA out of memory")]
    assert len(told) == 2, out  # each process says so: the failing one and the one that waited for it
    assert "stopped answering" not in out
    assert "The last checkpoint is kept (the start of stage search)" in told[0]  # W-step 3: the search's first
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
    resumed, _ = _torchrun("resume", "run", "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"
