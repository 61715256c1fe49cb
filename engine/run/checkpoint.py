"""What a checkpoint holds: where the run is (the cursor) and the RNG states to continue exactly.

A checkpoint's state is plain tensors and containers: the cursor, every learner's networks,
optimizers, schedulers and architecture, the batch streams' positions, the running stage's own
state (metric sums, an evaluation's network), every process's RNG states, the loss scaler and the
positions of the append-only files. The executor assembles it; the run directory writes it
(``rundir.checkpoints``) and reads it back with ``weights_only=True``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

#: Bumped when the layout changes; a checkpoint of another format is refused, not misread.
CHECKPOINT_FORMAT = 2


@dataclass
class Cursor:
    """Where the run is: the next stage, the epoch within it and the iteration within that epoch."""

    stage: int = 0
    epoch: int = 0
    iteration: int = 0
    trained_epochs: int = 0       # epochs trained over all stages, search and evaluation (--stop-after)
    elapsed: float = 0.0          # seconds run before this process started (resumed runs)
    search_elapsed: float = 0.0   # of which in search stages: the search cost
    completed: list[dict[str, Any]] = field(default_factory=list)  # results of finished evaluate stages
    early_stopped: dict[str, int] = field(default_factory=dict)    # stage -> epochs it ran before its early stop

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cursor":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "epochs_done" in data and "trained_epochs" not in data:  # the name in earlier checkpoints
            known["trained_epochs"] = data["epochs_done"]
        return cls(**known)


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


def local_statistics(networks: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """This process's floating-point buffers (BatchNorm statistics) of ``networks``, by name.

    Each process normalises with its own batches, so inside an epoch (before the epoch's end averages
    them) every process holds its own statistics: a checkpoint keeps every process's, and a resumed
    process takes its own back — the main process's alone would make a resumed run differ.
    """
    return {f"{key}/{name}": buffer.detach().cpu().clone()
            for key, module in networks.items() for name, buffer in module.named_buffers() if buffer.is_floating_point()}


def set_local_statistics(networks: dict[str, torch.nn.Module], saved: list[dict[str, torch.Tensor]],
                         rank: int, world: int) -> None:
    """Take back this process's statistics from ``saved`` (one entry per process of the saved run);
    their mean when the run had another number of processes."""
    if not saved:
        return
    if len(saved) == world:
        mine = saved[rank]
    else:
        mine = {k: torch.stack([s[k] for s in saved]).mean(0) for k in saved[0]}
    with torch.no_grad():
        for key, module in networks.items():
            for name, buffer in module.named_buffers():
                value = mine.get(f"{key}/{name}")
                if value is not None:
                    buffer.copy_(value)
