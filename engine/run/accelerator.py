"""Accelerate for a plan: the device, the processes and the precision a run uses.

Accelerate owns devices, processes and precision; this is the one place that makes its
``Accelerator`` from a plan, for runs, the public runner and estimates alike.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Callable, Iterator

from ..errors import Problem, SpecError
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
    if plan.run.mixed_precision == "bf16" and not cpu:
        check_bf16()
    timeout = InitProcessGroupKwargs(timeout=timedelta(seconds=plan.run.dist_timeout))
    accelerator = Accelerator(cpu=cpu, mixed_precision=plan.run.mixed_precision, kwargs_handlers=[timeout])
    if plan.run.mixed_precision == "fp16" and not accelerator.native_amp and accelerator.is_main_process:
        # Accelerate quietly computes in float32 where it has no fp16 autocast (the CPU): say so, so that
        # a recipe written for a GPU still runs here and nobody reads its figures as fp16 ones.
        print(f"note: run.mixed_precision is fp16, which Accelerate does not apply on the {accelerator.device.type}: "
              "this run computes in float32 (bf16 is the CPU's mixed precision: run.mixed_precision=bf16)",
              file=sys.stderr)
    return accelerator


def check_bf16() -> None:
    """Refuse bf16 on a GPU without bfloat16 arithmetic (V100, T4): torch emulates it there, so the
    check Accelerate makes passes, and the run would be slower than in float32."""
    import torch

    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise SpecError([Problem(None, "run.mixed_precision", (
            f"bf16 needs a GPU with bfloat16 arithmetic; this {torch.cuda.get_device_name()} only emulates it "
            "(slower than float32): use fp16 (run.mixed_precision=fp16), or no"))])


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def distributed() -> bool:
    """Whether this process is one of several (torchrun or accelerate launch)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextmanager
def bootstrap(timeout_s: float = 900.0) -> Iterator[Callable[[Callable[[], Any]], Any]]:
    """Before a run's processes form their group (how is in its plan, which one process reads),
    the main process's word to the others: yields ``share(read)``, which runs ``read`` on the main
    process and returns its value on every process. The word travels on a temporary group of CPU
    connections, gone on exit; with one process, ``share(read)`` is ``read()``."""
    import torch.distributed as dist

    made = distributed() and not dist.is_initialized()
    if made:
        # Its own key prefix in the launcher's store: the run's group, formed after this one is gone,
        # would otherwise find this group's addresses under the same keys and try to connect to
        # them (a hang or "connection refused" in gloo's connectFullMesh).
        store, rank, world = next(dist.rendezvous("env://", timeout=timedelta(seconds=timeout_s)))
        dist.init_process_group("gloo", store=dist.PrefixStore("sgl-bootstrap/", store), rank=rank, world_size=world,
                                timeout=timedelta(seconds=timeout_s))

    def share(read: Callable[[], Any]) -> Any:
        if not distributed():
            return read()
        box = [read() if dist.get_rank() == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    try:
        yield share
    finally:
        if made:
            dist.destroy_process_group()
