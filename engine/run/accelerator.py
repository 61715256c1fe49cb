"""Accelerate for a plan: the device, the processes and the precision a run uses.

Accelerate owns devices, processes and precision; this is the one place that makes its
``Accelerator`` from a plan, for runs, the public runner and estimates alike.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Any

from ..plan.types import RunPlan


def make_accelerator(plan: RunPlan) -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import InitProcessGroupKwargs

    if plan.deterministic:
        # cuBLAS needs this before its first use to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if launched and launched != plan.run.mixed_precision:
        print(f"note: `accelerate launch` asked for mixed precision {launched!r}; the spec's run.mixed_precision "
              f"({plan.run.mixed_precision!r}) is used (override it: run.mixed_precision={launched})", file=sys.stderr)
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, plan.run.mixed_precision) and not distributed():
        # A second run in one process (tests, notebooks) with another precision: start afresh.
        AcceleratorState._reset_state(reset_partial_state=True)
    # Several processes and no GPU (torchrun on a CPU machine): Accelerate forms a group of CPU
    # processes only when told cpu=True; otherwise each would start its own single-process run.
    cpu = plan.run.cpu or (distributed() and not _has_accelerator())
    timeout = InitProcessGroupKwargs(timeout=timedelta(seconds=plan.run.dist_timeout))
    return Accelerator(cpu=cpu, mixed_precision=plan.run.mixed_precision, kwargs_handlers=[timeout])


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def distributed() -> bool:
    """Whether this process is one of several (torchrun or accelerate launch)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1
