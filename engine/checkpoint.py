"""Checkpoints: where a run is (the cursor), what is saved, and how it is written and read back.

One file, ``checkpoints/last.pt``, holds everything needed to continue exactly: the cursor, every
learner's networks, optimizers, schedulers and architecture, the batch streams' positions, the
running stage's own state (metric sums, an evaluation's network), torch's RNG states and the sizes
of the append-only files. It is written atomically by the main process and read with
``weights_only=True`` (plain tensors and containers, never code).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .errors import RunDirError
from .rundir import RunDir

#: Bumped when the layout changes; a checkpoint of another format is refused, not misread.
CHECKPOINT_FORMAT = 2


@dataclass
class Cursor:
    """Where the run is: the next stage, the epoch within it and the iteration within that epoch."""

    stage: int = 0
    epoch: int = 0
    iteration: int = 0
    epochs_done: int = 0          # training epochs completed over all stages (for --stop-after)
    elapsed: float = 0.0          # seconds run before this process started (resumed runs)
    search_elapsed: float = 0.0   # of which in search stages: the search cost
    completed: list[dict[str, Any]] = field(default_factory=list)  # results of finished evaluate stages
    early_stopped: dict[str, int] = field(default_factory=dict)    # stage -> epochs it ran before its early stop

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cursor":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def rng_state(device: torch.device) -> dict[str, Any]:
    """torch's global RNG states: the CPU generator, and the device's when it is a CUDA device."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


class Checkpointer:
    def __init__(self, rundir: RunDir) -> None:
        self.rundir = rundir

    def save(self, state: dict[str, Any]) -> None:
        if not self.rundir.writer:
            return
        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
        self.rundir.write_bytes(self.rundir.checkpoint, buffer.getvalue())

    def load(self) -> dict[str, Any]:
        path = self.rundir.checkpoint
        if not path.exists():
            raise RunDirError(f"{str(self.rundir.path)!r} has no checkpoint ({path.relative_to(self.rundir.path)}) to resume from")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            found = state.get("format") if isinstance(state, dict) else None
            raise RunDirError(f"{path}: checkpoint format {found} is not {CHECKPOINT_FORMAT} (written by another sgl version)")
        return state
