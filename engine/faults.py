"""Crash points: where tests kill a run to prove nothing is lost (no effect unless asked).

``SGL_CRASH_AT=<point>[:<n>]`` in the environment makes the n-th passage (default 1) through that
point kill the process with SIGKILL — no handler runs, no file is closed, as with ``kill -9`` or a
power cut. Points: ``iteration`` (after an iteration's steps), ``checkpoint`` (just after a
checkpoint is written), ``write`` (inside an atomic write, before the rename), ``summary`` (before
summary.json is written).

``SGL_NAN_AT=<rank>:<n>`` makes the n-th W-step loss recorded by the process of that rank NaN (the
step itself is unchanged): how tests make one process alone see a non-finite loss.

``SGL_FAIL_AT=<rank>:<n>`` makes the process of that rank raise an out-of-memory error before its
n-th W-step: how tests make one process alone fail while the others wait for it in a collective.
"""

from __future__ import annotations

import os
import signal
from typing import Any

_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    wanted = os.environ.get("SGL_CRASH_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def poisoned(result: Any) -> Any:
    """A step result, its loss made NaN at the point ``SGL_NAN_AT`` names (else unchanged)."""
    wanted = os.environ.get("SGL_NAN_AT")
    if not wanted:
        return result
    rank, _, nth = wanted.partition(":")
    if int(os.environ.get("RANK", "0")) != int(rank):
        return result
    _counts["nan"] = _counts.get("nan", 0) + 1
    if _counts["nan"] == int(nth or 1):
        import torch

        result.loss = result.loss * float("nan")
        result.finite = torch.isfinite(result.loss)
    return result


def failure_point() -> None:
    """Raise where ``SGL_FAIL_AT`` says (else nothing)."""
    wanted = os.environ.get("SGL_FAIL_AT")
    if not wanted:
        return
    rank, _, nth = wanted.partition(":")
    if int(os.environ.get("RANK", "0")) != int(rank):
        return
    _counts["fail"] = _counts.get("fail", 0) + 1
    if _counts["fail"] == int(nth or 1):
        import torch

        raise torch.OutOfMemoryError(f"CUDA out of memory (injected by SGL_FAIL_AT on rank {rank})")
