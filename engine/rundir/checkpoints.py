"""Checkpoint files: ``checkpoints/last.pt``, the one before it, written atomically and read safely.

A checkpoint's state is assembled by the executor (``run.checkpoint`` says what it holds). The main
process writes it atomically; the one before stays as ``previous.pt``, so when the last cannot be
read or restored a resume falls back to it. Files are read with ``weights_only=True`` (plain tensors
and containers, never code).
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import RunDirError
from ..faults import crash_point
from ..run.checkpoint import CHECKPOINT_FORMAT
from .layout import RunDir


class CheckpointFiles:
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
    return load_checkpoint(path, checkpoint_bytes(path))


def checkpoint_bytes(path: Path) -> bytes:
    """A checkpoint file's bytes (CheckpointUnreadable when it is missing, not a file, or empty)."""
    if not path.exists():
        raise CheckpointUnreadable(f"{path}: missing")
    if not path.is_file():
        raise CheckpointUnreadable(f"{path}: not a file")
    data = path.read_bytes()
    if not data:
        raise CheckpointUnreadable(f"{path}: empty (a write that never finished)")
    return data


def load_checkpoint(path: Path, data: bytes) -> dict[str, Any]:
    """The state in ``data``, the bytes of the checkpoint ``path`` (named in messages)."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
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
