"""Checkpoints: where a run is (the cursor), what is saved, and how it is written and read back.

One file, ``checkpoints/last.pt``, holds everything needed to continue exactly: the cursor, every
learner's networks, optimizers, schedulers and architecture, the batch streams' positions, the
running stage's own state (metric sums, an evaluation's network), every process's RNG states, the
loss scaler and the sizes of the append-only files. It is written atomically by the main process
and read with ``weights_only=True`` (plain tensors and containers, never code). The one before it
stays as ``previous.pt``: when the last cannot be read or restored, a resume falls back to it.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import RunDirError
from ..faults import crash_point
from ..rundir.layout import RunDir

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
    """Writes ``checkpoints/last.pt`` (the previous one kept as ``previous.pt``) and reads them back."""

    def __init__(self, rundir: RunDir) -> None:
        self.rundir = rundir

    def save(self, state: dict[str, Any]) -> None:
        if not self.rundir.writer:
            return
        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
        last, previous = self.rundir.checkpoint, self.rundir.previous_checkpoint
        incoming = last.with_name("incoming.pt")
        # The new file is complete on disk before anything is renamed: a full disk or a kill while
        # writing leaves last.pt and previous.pt as they were.
        self.rundir.write_bytes(incoming, buffer.getvalue())
        if last.is_file():
            os.replace(last, previous)
        os.replace(incoming, last)  # a kill between the renames: previous.pt is the last one
        crash_point("checkpoint")

    def paths(self) -> tuple[Path, Path]:
        """Where checkpoints are, newest first."""
        return self.rundir.checkpoint, self.rundir.previous_checkpoint

    def load(self) -> dict[str, Any]:
        """The last checkpoint, or the previous one when the last cannot be read."""
        reasons = []
        for path in self.paths():
            try:
                return read_checkpoint(path)
            except CheckpointUnreadable as exc:
                reasons.append(str(exc))
        raise no_usable_checkpoint(self.rundir, reasons)


def no_usable_checkpoint(rundir: RunDir, reasons: list[str]) -> RunDirError:
    if not any(p.exists() for p in (rundir.checkpoint, rundir.previous_checkpoint)):
        return RunDirError(f"{str(rundir.path)!r} has no checkpoint (checkpoints/last.pt) to resume from")
    return RunDirError("no usable checkpoint: " + "; ".join(reasons))


class CheckpointUnreadable(RunDirError):
    """A checkpoint file that is missing, torn, foreign or of another format."""


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's state, read with ``weights_only=True``; any problem is a CheckpointUnreadable
    that says what is wrong with the file (never a traceback, never advice to load code)."""
    if not path.exists():
        raise CheckpointUnreadable(f"{path}: missing")
    if not path.is_file():
        raise CheckpointUnreadable(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise CheckpointUnreadable(f"{path}: empty (a write that never finished)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointUnreadable(f"{path}: holds Python objects that are not tensors or plain data; "
                                   "sgl never loads such files") from None
    except Exception as exc:  # noqa: BLE001 - torn zips, random bytes, foreign formats: all unreadable
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointUnreadable(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointUnreadable(f"{path}: not an sgl checkpoint")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointUnreadable(f"{path}: checkpoint format {state['format']} is not {CHECKPOINT_FORMAT} "
                                   "(written by another sgl version)")
    return state
