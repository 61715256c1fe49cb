"""The Ray executor: each trial a Ray task with its CPUs (and a GPU) reserved, running the same
``sgl`` process as the local executor does, on a cluster (``address``) or a local Ray instance
started for the study and shut down after it.

What a cluster must provide: sgl (and the same Python packages) installed on every node, and the
study directory and the spec on storage that every node mounts at the same path — the trials write
their run directories into the study directory. That is checked before any trial starts: the
driver writes a file there and a task on every node must read it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from ..errors import StudyError
from .resources import THREAD_VARIABLES, Slots, choose, cpu_count

#: Variables passed to the remote trial: its thread pools, and the crash points tests set.
_PASSED = (*THREAD_VARIABLES, "PYTHONUNBUFFERED", "SGL_CRASH_AT", "SGL_NAN_AT")


def _ray():
    try:
        import ray
    except ImportError:
        raise StudyError("the ray executor needs Ray: pip install 'sgl[ray]' (or pip install 'ray>=2.9,<3')") from None
    return ray


def _run_trial(args: list[str], env: dict[str, str], log: str) -> int:
    """On a Ray worker: the trial's `sgl` process, to its end (a cancel asks it to checkpoint and stop)."""
    from .child import PARENT
    from .local import open_log, trial_command

    full = {**os.environ, **env, PARENT: str(os.getpid())}
    try:  # Ray runs its workers niced; a trial competes with the local executor's on equal terms
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:
        pass
    with open_log(Path(log), args) as handle:
        proc = subprocess.Popen(trial_command(args), env=full, stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        while True:
            try:
                # in short waits: ray.cancel raises KeyboardInterrupt between bytecodes, never inside a blocking wait
                return proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            except KeyboardInterrupt:  # ray.cancel: pass it on as a SIGTERM, then wait for the checkpoint
                proc.send_signal(signal.SIGTERM)


def _probe(path: str, token: str, spec: str) -> str | None:
    """On one node: whether it sees the driver's file and the spec (None: it does)."""
    import platform

    try:
        seen = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return f"{platform.node()} cannot read {path} ({exc.strerror or exc})"
    if seen != token:
        return f"{platform.node()} sees another file at {path}"
    if not Path(spec).is_file():
        return f"{platform.node()} does not see the spec {spec}"
    return None


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None) -> None:
        ray = self.ray = _ray()
        self._temp: str | None = None
        self._refs: dict[str, object] = {}
        self.capacity, self._threads, self._gpus = 1, 1, 0
        self.address = address
        if address:
            try:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            except Exception as exc:  # noqa: BLE001 - unreachable or not a Ray cluster: the user's address
                raise StudyError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
        else:
            self._temp = tempfile.mkdtemp(prefix="sgl-ray-")
            ray.init(num_cpus=cpu_count(), include_dashboard=False, _temp_dir=self._temp, log_to_driver=False,
                     logging_level="ERROR")
        self._remote = ray.remote(max_retries=0)(_run_trial)
        self._remote_probe = ray.remote(num_cpus=0, max_retries=0)(_probe)

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
        return f"ray executor on {where}: {self.capacity} trial(s) at once"

    def slots(self, trials: int, wants_gpu: bool, parallel: int | None, threads: int | None) -> Slots:
        resources = self.ray.cluster_resources()
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        biggest = max((int(n["Resources"].get("CPU", 0)) for n in nodes), default=1)
        cluster_gpus = int(resources.get("GPU", 0)) if wants_gpu else 0
        slots = choose(trials, int(resources.get("CPU", 1)), ("ray",) * cluster_gpus, parallel, threads)
        if slots.threads > biggest:
            raise StudyError(f"{slots.threads} threads per trial, but the largest Ray node has {biggest} CPUs: "
                             "set study.threads (--threads) to at most that")
        self.capacity, self._threads, self._gpus = slots.parallel, slots.threads, 1 if slots.gpus else 0
        return Slots(slots.parallel, slots.threads, ())  # Ray hands each trial its GPU

    def check_storage(self, study: Path, spec: Path) -> None:
        token = secrets.token_hex(8)
        probe = Path(study).resolve() / f".probe-{token}"
        probe.write_text(token, encoding="utf-8")
        try:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            nodes = [n for n in self.ray.nodes() if n.get("Alive")]
            refs = [self._remote_probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                    .remote(str(probe), token, str(spec)) for n in nodes]
            problems = [p for p in self.ray.get(refs, timeout=300) if p]
        finally:
            probe.unlink(missing_ok=True)
        if problems:
            raise StudyError("the trials cannot see the study: " + "; ".join(problems) + ". Trials write their run "
                             "directories into the study directory: put it (and the spec) on storage every Ray node "
                             "mounts at the same path, e.g. --study-dir /shared/studies/NAME")

    def start(self, trial_id: str, args: list[str], env: dict[str, str], log: Path) -> None:
        passed = {k: v for k, v in env.items() if k in _PASSED}
        self._refs[trial_id] = self._remote.options(num_cpus=self._threads, num_gpus=self._gpus).remote(
            args, passed, str(Path(log).resolve()))

    def running(self) -> list[str]:
        return list(self._refs)

    def wait(self, timeout: float) -> list[tuple[str, int]]:
        if not self._refs:
            return []
        ready, _ = self.ray.wait(list(self._refs.values()), num_returns=len(self._refs), timeout=timeout)
        ended = []
        for trial_id, ref in list(self._refs.items()):
            if ref in ready:
                del self._refs[trial_id]
                try:
                    code = int(self.ray.get(ref))
                except Exception:  # noqa: BLE001 - the worker or its node died: the trial was killed
                    code = -signal.SIGKILL
                ended.append((trial_id, code))
        return ended

    def interrupt(self) -> None:
        for ref in self._refs.values():
            self.ray.cancel(ref)

    def close(self) -> None:
        try:
            self.ray.shutdown()
        finally:
            if self._temp is not None:
                shutil.rmtree(self._temp, ignore_errors=True)
