"""Crash-only runs (issue #11): a kill anywhere loses nothing, corrupt files are refused or skipped,
run directories belong to one run, and every way a run can end has its exit code and message."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sgl.engine.cli.main import main
from sgl.engine.run.executor import RunOptions
from sgl.engine.rundir.session import run_spec
from test_execute import TINY, _cli, assert_same_run, write

#: The many runs these tests make: TINY without its fixed learner (2 supernets, 4 iterations an epoch, 3 epochs).
SMALL = TINY.replace("name: tiny", "name: small").replace("  carol: {kind: genotype, genotype: DARTS_V2, channels: 4, layers: 2}\n", "")

#: A checkpoint after every iteration (time-based, 3 ms apart), for mid-epoch kills.
EVERY = ("run.checkpoint_every=0.00005",)


def sgl(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    process = _cli(*args, cwd=cwd, env=env)
    out, _ = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("reliability")
    spec = write(tmp, SMALL)
    return spec, run_spec(spec, EVERY, RunOptions(run_dir=tmp / "straight", progress=False))


# --------------------------------------------------------------------------- kill -9 anywhere

KILLS = [
    ("iteration", 2),    # inside the first epoch: only the start and time checkpoints exist
    ("write", 8),        # inside an atomic write (a temporary file left behind)
    ("checkpoint", 9),   # just after a checkpoint in the search stage
    ("write", 7),        # inside the first checkpoint's write (after the set-up's six): resuming starts from the beginning
    ("summary", 1),      # after the last checkpoint, before summary.json
]


@pytest.mark.parametrize(("point", "nth"), KILLS, ids=[f"{p}:{n}" for p, n in KILLS])
def test_kill_9_anywhere_then_resume_is_bit_identical(reference, tmp_path, point, nth):
    spec, straight = reference
    run_dir = tmp_path / "killed"
    killed = sgl("run", str(spec), *EVERY, "--run-dir", str(run_dir), "-q", cwd=tmp_path, env={"SGL_CRASH_AT": f"{point}:{nth}"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    resumed = sgl("resume", str(run_dir), "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_same_run(straight, run_dir)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert not list(run_dir.rglob(".*.tmp")), "a killed write's temporary file was left behind"


def test_a_kill_during_a_resumed_run_resumes_again(reference, tmp_path):
    spec, straight = reference
    run_dir = tmp_path / "twice"
    assert sgl("run", str(spec), *EVERY, "--run-dir", str(run_dir), "-q", cwd=tmp_path,
               env={"SGL_CRASH_AT": "iteration:3"}).returncode == -signal.SIGKILL
    assert sgl("resume", str(run_dir), "-q", cwd=tmp_path, env={"SGL_CRASH_AT": "iteration:5"}).returncode == -signal.SIGKILL
    resumed = sgl("resume", str(run_dir), "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_same_run(straight, run_dir)


def test_a_kill_while_the_directory_is_set_up_says_to_start_again(reference, tmp_path):
    spec, _ = reference
    run_dir = tmp_path / "setup"
    # write:1 is run.json's own write (the first of the set-up: later ones resume by themselves, #20)
    killed = sgl("run", str(spec), "--run-dir", str(run_dir), "-q", cwd=tmp_path, env={"SGL_CRASH_AT": "write:1"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout
    result = CliRunner().invoke(main, ["resume", str(run_dir)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "was stopped while it was being set up, before anything ran" in result.output
    assert f"--run-dir {run_dir} --overwrite" in result.output


def test_a_completed_run_resumed_writes_nothing_new(reference, tmp_path):
    _, straight = reference
    before = (straight / "metrics.jsonl").read_text()
    result = CliRunner().invoke(main, ["resume", str(straight)])
    assert result.exit_code == 0 and "already complete" in result.output
    assert (straight / "metrics.jsonl").read_text() == before


# --------------------------------------------------------------------------- corrupt checkpoints


@pytest.fixture(scope="module")
def stopped_once(reference, tmp_path_factory) -> Path:
    """A run stopped after its first epoch: last.pt and previous.pt are both valid."""
    spec, _ = reference
    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    result = CliRunner().invoke(main, ["run", str(spec), *EVERY, "--run-dir", str(run_dir), "--stop-after", "1", "-q"])
    assert result.exit_code == 0, result.output
    return run_dir


def _stopped(tmp_path: Path, original: Path) -> Path:
    """A copy of the stopped run to spoil."""
    import shutil

    run_dir = tmp_path / "stopped"
    shutil.copytree(original, run_dir, ignore=shutil.ignore_patterns(".lock"))
    return run_dir


def _foreign_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data.txt", "not a checkpoint")


class _Foreign:
    pass


def _with_state(change):
    def corrupt(path: Path) -> None:
        state = torch.load(path, weights_only=True)
        change(state)
        torch.save(state, path)

    return corrupt


def _wrong_shape(state) -> None:
    module = state["learners"]["alice"]["nets"]["W"]["module"]
    key = next(k for k, v in module.items() if v.dim() == 4)
    module[key] = torch.zeros(1, 1, 1, 1)


CORRUPTIONS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "random_bytes": lambda p: p.write_bytes(os.urandom(4096)),
    "empty": lambda p: p.write_bytes(b""),
    "directory": lambda p: (p.unlink(), p.mkdir()),
    "foreign_zip": _foreign_zip,
    "missing_learner": _with_state(lambda s: s["learners"].pop("bob")),
    "wrong_shapes": _with_state(_wrong_shape),
    "code_pickle": lambda p: torch.save({"format": 2, "x": _Foreign()}, p),
    "other_format": _with_state(lambda s: s.update(format=99)),
}


#: Kinds whose fallback resume runs to the end (the rest stop where the spoiled checkpoint was).
REPLAYED = ("truncated", "wrong_shapes", "code_pickle")


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_an_unusable_last_checkpoint_falls_back_to_the_previous(reference, stopped_once, tmp_path, kind):
    spec, straight = reference
    run_dir = _stopped(tmp_path, stopped_once)
    CORRUPTIONS[kind](run_dir / "checkpoints" / "last.pt")
    replayed = kind in REPLAYED
    result = CliRunner().invoke(main, ["resume", str(run_dir), *(() if replayed else ("--stop-after", "1"))])
    assert result.exit_code == 0, result.output
    assert "resumed from" in result.output and "previous.pt instead" in result.output
    # a resume from further back replays the same run: to its end, or to where last.pt was spoiled
    assert_same_run(straight if replayed else stopped_once, run_dir)


@pytest.mark.parametrize("kind", ["truncated", "empty", "code_pickle", "wrong_shapes"])
def test_no_usable_checkpoint_is_a_clean_error(stopped_once, tmp_path, kind):
    run_dir = _stopped(tmp_path, stopped_once)
    for name in ("last.pt", "previous.pt"):
        CORRUPTIONS[kind](run_dir / "checkpoints" / name)
    result = CliRunner().invoke(main, ["resume", str(run_dir)])
    assert result.exit_code == 2 and result.exception.__class__ is SystemExit, result.output
    assert result.output.startswith("error: no usable checkpoint: ") and "Traceback" not in result.output
    assert "weights_only=False" not in result.output  # never advise loading code
    exported = CliRunner().invoke(main, ["export", str(run_dir), "--learner", "alice", "--format", "pt", "--network", "W"])
    assert exported.exit_code == 2 and "Traceback" not in exported.output, exported.output


def test_a_broken_run_json_is_a_clean_error(stopped_once, tmp_path):
    run_dir = _stopped(tmp_path, stopped_once)
    (run_dir / "run.json").write_text("{not json")
    result = CliRunner().invoke(main, ["resume", str(run_dir)])
    assert result.exit_code == 2 and "run.json is not readable JSON" in result.output


# --------------------------------------------------------------------------- run directories


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


def test_a_run_directory_in_use_is_refused(reference, tmp_path):
    from sgl.engine.rundir.claim import RunLock

    spec, _ = reference
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


# --------------------------------------------------------------------------- exit codes and messages


def test_a_full_disk_keeps_the_checkpoints_and_exits_1(reference, tmp_path, monkeypatch):
    import sgl.engine.rundir.layout as rundir

    spec, straight = reference
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


def test_a_read_only_output_is_bad_input(reference, tmp_path, monkeypatch):
    import sgl.engine.rundir.layout as rundir

    spec, straight = reference

    def read_only(path, data):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(rundir, "atomic_write_bytes", read_only)
    result = CliRunner().invoke(main, ["run", str(spec), "--run-dir", str(tmp_path / "ro"), "-q"])
    assert result.exit_code == 2 and result.output.startswith("error: cannot write") and "Read-only" in result.output


def test_ctrl_c_before_the_run_begins_exits_130(tmp_path, monkeypatch):
    import sgl.engine.rundir.session as session

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "build_runtime", interrupted)
    result = CliRunner().invoke(main, ["run", str(write(tmp_path, SMALL)), "-q"])
    assert result.exit_code == 130 and "interrupted" in result.output


def test_two_ctrl_c_exit_130_and_the_run_resumes(tmp_path):
    spec = write(tmp_path, SMALL)
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


def test_a_non_finite_loss_says_which_checkpoint_is_kept_even_when_quiet(tmp_path, monkeypatch):
    monkeypatch.setenv("SGL_NAN_AT", "0:2")
    run_dir = tmp_path / "nan"
    result = CliRunner().invoke(main, ["run", str(write(tmp_path, SMALL)), "--run-dir", str(run_dir), "-q"])
    assert result.exit_code == 1, result.output
    assert "non-finite W loss" in result.output and "the start of stage warmup" in result.output
    assert (run_dir / "checkpoints" / "last.pt").exists()


def test_metrics_lines_stay_json_for_non_finite_values(tmp_path):
    from sgl.engine.rundir.layout import RunDir

    run = RunDir(tmp_path)
    run.log({"kind": "iter", "W/loss": float("inf"), "V/loss": float("nan"), "W/acc": 0.5})
    run.close()
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"kind": "iter", "W/loss": None, "V/loss": None, "W/acc": 0.5}


# --------------------------------------------------------------------------- several processes


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


def test_torchrun_on_cpu_forms_one_run_without_run_cpu(tmp_path):
    spec = write(tmp_path, TINY.replace("run: {output: runs, log_every: 3, cpu: true}", "run: {output: runs, log_every: 3}"))
    process = _torchrun(spec, "stages.1.epochs=1", "-q", cwd=tmp_path)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out
    runs = list((tmp_path / "runs" / "tiny").iterdir())
    assert len(runs) == 1
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["distributed"]["processes"] == 2 and summary["distributed"]["ranks_agree"]


def test_ctrl_c_on_one_process_stops_every_process_with_a_checkpoint(tmp_path):
    spec = write(tmp_path)
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


def test_a_non_finite_loss_on_one_process_stops_every_process(tmp_path):
    process = _torchrun(write(tmp_path), "--run-dir", str(tmp_path / "run"), "-q", cwd=tmp_path, env={"SGL_NAN_AT": "1:3"})
    out, _ = process.communicate(timeout=300)
    assert process.returncode != 0
    assert "non-finite loss on another process" in out or "non-finite W loss" in out, out
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"


def test_a_stopped_peer_fails_the_run_after_the_timeout(tmp_path):
    process = _torchrun(write(tmp_path), "--run-dir", str(tmp_path / "run"), "run.dist_timeout=8", "-q", cwd=tmp_path)
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
