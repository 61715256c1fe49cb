"""How many trials run at once and with how many threads: never more busy threads than cores.

On a CPU, N trials of T threads each share the cores (N × T ≤ cores). By default N is as many trials
as there are cores (at most the trials) and T the cores left to each: small trials scale poorly
with threads (measured on quickstart-size trials: two trials of one thread each finish sooner than
the same two one after the other with two threads; bench/study.py), so running them side by side
uses the cores best. With GPUs, each trial gets one device (CUDA_VISIBLE_DEVICES) and the cores
are divided among the trials at once.

The thread count is part of each trial (``run.threads``: float sums can differ with the threads
that compute them), fixed when the study starts and kept on resume, whichever executor runs it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import StudyError

#: The variables through which OpenMP, MKL and OpenBLAS size their thread pools.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")


@dataclass(frozen=True)
class Slots:
    parallel: int                 # trials at once
    threads: int                  # CPU threads of each
    gpus: tuple[str, ...] = ()    # devices handed one per running trial (empty: CPU trials)


def cpu_count() -> int:
    """The cores this process may use (its affinity, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def visible_gpus() -> tuple[str, ...]:
    """The CUDA devices this process sees, as CUDA_VISIBLE_DEVICES would name them."""
    try:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken driver means no GPU for the study, not a crash
        count = 0
    if count == 0:
        return ()
    named = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return tuple(named[:count]) if len(named) >= count else tuple(str(i) for i in range(count))


def choose(trials: int, cores: int, gpus: tuple[str, ...] = (), parallel: int | None = None,
           threads: int | None = None) -> Slots:
    """Trials at once and threads per trial for ``trials`` trials on ``cores`` cores (and ``gpus``)."""
    trials = max(1, trials)
    if gpus:
        n = min(parallel or len(gpus), len(gpus), trials)
    elif parallel is not None:
        n = min(parallel, trials)
    elif threads is not None:
        n = min(max(1, cores // threads), trials)
    else:
        n = min(cores, trials)
    t = threads or max(1, cores // n)
    if n * t > cores:
        raise StudyError(f"{n} trial(s) at once × {t} thread(s) each = {n * t} busy threads on {cores} core(s): "
                         "more threads than cores slow every trial down many times over; lower study.parallel "
                         "(--parallel) or study.threads (--threads)")
    return Slots(n, t, gpus[:n] if gpus else ())


def trial_env(base: dict[str, str], threads: int, gpu: str | None) -> dict[str, str]:
    """The environment of a trial process: its thread pools sized, its GPU (if any) the only one it sees."""
    env = dict(base)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
