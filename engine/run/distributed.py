"""What the engine needs from several processes, in one place: the gradient mean, sums, objects.

Accelerate owns the processes; these are thin wrappers over its collectives so that every part of
the engine reduces gradients the same way (once, after the step's own computation) and runs as one
process without any collective call.
"""

from __future__ import annotations

from typing import Any

import torch


class Collectives:
    def __init__(self, accelerator: Any) -> None:
        self.accelerator = accelerator
        self._buffers: dict[tuple, torch.Tensor] = {}
        self._control: Any = None  # the CPU group of any_of_later

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def mean_(self, tensors: list[torch.Tensor]) -> None:
        """Replace each tensor by its mean over the processes, one collective per device and dtype
        (no-op alone).

        The tensors of a dtype are packed into a buffer kept between calls (one per set of sizes: a
        network's gradients come back every step), reduced in place, and unpacked with one fused copy.
        """
        tensors = [t for t in tensors if t is not None]
        if self.world == 1 or not tensors:
            return
        import torch.distributed as dist

        buckets: dict[tuple, list[torch.Tensor]] = {}
        for t in tensors:
            buckets.setdefault((t.device, t.dtype), []).append(t)
        for (device, dtype), bucket in buckets.items():
            key = (device, dtype, tuple(t.numel() for t in bucket))
            flat = self._buffers.get(key)
            if flat is None:
                flat = self._buffers[key] = torch.empty(sum(key[2]), device=device, dtype=dtype)
            torch.cat([t.reshape(-1) for t in bucket], out=flat)
            dist.all_reduce(flat)
            flat.div_(self.world)
            torch._foreach_copy_(bucket, [chunk.view_as(t) for chunk, t in zip(flat.split(key[2]), bucket)])

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        return values if self.world == 1 else self.accelerator.reduce(values, reduction="sum")

    def any_of(self, flags: list[bool]) -> list[bool]:
        """Each flag set on any process (one small collective; the flags alone on one process)."""
        if self.world == 1:
            return list(flags)
        values = torch.tensor([float(f) for f in flags], device=self.device)
        return [bool(v) for v in (self.accelerator.reduce(values, reduction="sum") > 0).tolist()]

    def any_of_later(self, flags: list[bool]) -> "Pending":
        """``any_of`` started now and read later (``Pending.result``): the flags travel on a group of
        CPU (gloo) connections, so neither the device nor the other processes are waited for now."""
        values = torch.tensor([float(f) for f in flags])
        if self.world == 1:
            return Pending(None, values)
        import torch.distributed as dist

        if self._control is None:  # made by every process at the same call: the first one
            self._control = dist.new_group(backend="gloo")
        return Pending(dist.all_reduce(values, group=self._control, async_op=True), values)

    def mean_buffers_(self, module: torch.nn.Module) -> None:
        """Average floating-point buffers (BatchNorm statistics), so every rank holds the same model."""
        self.mean_([buffer for buffer in module.buffers() if buffer.is_floating_point()])

    def gather_objects(self, value: Any) -> list[Any]:
        if self.world == 1:
            return [value]
        from accelerate.utils import gather_object

        return gather_object([value])

    def broadcast_object(self, value: Any) -> Any:
        """The main process's ``value`` on every process."""
        if self.world == 1:
            return value
        from accelerate.utils import broadcast_object_list

        box = [value]
        broadcast_object_list(box)
        return box[0]


class Pending:
    """Flags being reduced over the processes; ``result()`` waits for them (on the CPU only)."""

    def __init__(self, work: Any, values: torch.Tensor) -> None:
        self.work = work
        self.values = values

    def result(self) -> list[bool]:
        if self.work is not None:
            self.work.wait()
        return [bool(v > 0) for v in self.values.tolist()]


def peer_failure(exc: BaseException) -> bool:
    """Whether an error is a collective that failed: a peer died, or did not answer in time."""
    import torch.distributed as dist

    backend_error = getattr(dist, "DistBackendError", ())
    if backend_error and isinstance(exc, backend_error):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        marker in text for marker in ("timed out", "timeout", "connection closed by peer", "connection reset", "gloo", "nccl")
    )
