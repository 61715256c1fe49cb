"""Resuming a run of several machines that do not share a disk (issue #19, faults 4 and 10).

Two ``torchrun --nnodes 2`` invocations on this machine, each in its own folder, are two machines
with their own disks: only the main process's folder holds the run directory. A run killed there
(kill -9, mid-epoch) resumes on both — the main process reads the directory and decides, the other
process gets the checkpoint from it — and ends bit for bit as a run never stopped, BatchNorm
statistics included: a checkpoint keeps every process's own, and a measured accuracy (here through
running statistics, ``run.eval_bn: running``) depends on both processes' statistics.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

SPEC = """
name: nodes
seed: 5
data: {dataset: digits, batch_size: 16, split: {train: 0.1, val: 0.1}}
learners:
  alice: {kind: darts, channels: 4, layers: 3, nodes: 2}
  bob: {kind: pc_darts, channels: 4, layers: 3, nodes: 2, partial_channels: 2}
stages:
  - {name: warmup, epochs: 1, steps: [W]}
  - {name: search, epochs: 1, steps: [A, W, PL, V], early_stop: {metric: val_loss, patience: 5}}
  - {name: derive}
run: {output: runs, log_every: 3, eval_bn: running}
"""

#: A checkpoint at every iteration (time-based), so a kill lands inside an epoch: with 4 iterations an
#: epoch, the 7th iteration is the search's 3rd, after the checkpoint of its 2nd.
EVERY = "run.checkpoint_every=0.00005"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


def _two_machines(folders: list[Path], *args: str, env: dict | None = None) -> list[subprocess.CompletedProcess]:
    """``sgl ARGS`` as a run of two machines of one process each, machine r working in folders[r]."""
    port = str(_free_port())
    processes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(rank), "--nproc_per_node", "1",
         "--master_addr", "127.0.0.1", "--master_port", port, "-m", "sgl.engine.cli.main", *args],
        cwd=folder, env=_env(**(env or {})), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank, folder in enumerate(folders)]
    outputs = [p.communicate(timeout=400)[0] for p in processes]
    return [subprocess.CompletedProcess(p.args, p.returncode, out) for p, out in zip(processes, outputs)]


def _metrics(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    flat = {}
    for name, learner in state["learners"].items():
        for net, net_state in learner["nets"].items():
            flat.update({f"{name}.{net}.{k}": v for k, v in net_state["module"].items()})
        flat.update({f"{name}.space.{k}": v for k, v in learner["space"].items()})
    for rank, statistics in enumerate(state["statistics"]):
        flat.update({f"rank{rank}/{k}": v for k, v in statistics.items()})
    return flat


def test_a_run_of_two_machines_without_a_shared_disk_resumes_bit_identically(tmp_path):
    machines = [tmp_path / "machine0", tmp_path / "machine1"]
    for folder in machines:
        folder.mkdir()
        (folder / "spec.yaml").write_text(SPEC.lstrip())
    straight = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "sgl.engine.cli.main",
         "run", "spec.yaml", EVERY, "--run-dir", "straight", "-q"],
        cwd=machines[0], env=_env(), capture_output=True, text=True, timeout=400)
    assert straight.returncode == 0, straight.stdout + straight.stderr

    killed = _two_machines(machines, "run", "spec.yaml", EVERY, "--run-dir", "run", "-q", env={"SGL_CRASH_AT": "iteration:7"})
    assert all(k.returncode != 0 for k in killed), [k.stdout for k in killed]
    assert (machines[0] / "run" / "checkpoints" / "last.pt").exists() and not (machines[1] / "run").exists()
    saved = torch.load(machines[0] / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["stage"] is not None, "the kill should land inside a stage (a mid-epoch checkpoint)"

    resumed = _two_machines(machines, "resume", "run", "-q")
    assert all(r.returncode == 0 for r in resumed), "\n".join(r.stdout[-3000:] for r in resumed)
    assert not (machines[1] / "run").exists()  # the second machine never needed the directory
    run_dir, reference = machines[0] / "run", machines[0] / "straight"
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert _metrics(run_dir) == _metrics(reference)
    assert (run_dir / "genotypes" / "alice.json").read_text() == (reference / "genotypes" / "alice.json").read_text()
    ours, theirs = _final_state(run_dir), _final_state(reference)
    assert ours.keys() == theirs.keys() and any(k.startswith("rank1/") for k in ours)
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
