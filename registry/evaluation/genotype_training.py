"""Training a genotype network from scratch: its description, loss and cost (torch code)."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..models.genotype_net import count_parameters, genotype_network
from ..spaces.genotype import Genotype
from ..task import Task


def build_genotype_network_from_info(info: dict[str, Any]) -> nn.Module:
    return genotype_network(
        Genotype.from_json(info["genotype"]),
        Task(**info["task"]),
        channels=info["channels"],
        layers=info["layers"],
        auxiliary=info["auxiliary"],
        drop_path=info["drop_path"],
        variant=info["variant"],
    )


def loss_with_auxiliary(net: nn.Module, x: torch.Tensor, y: torch.Tensor, auxiliary_weight: float,
                        label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    logits, aux = net.forward_with_aux(x)
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    if aux is not None and auxiliary_weight > 0:
        loss = loss + auxiliary_weight * F.cross_entropy(aux, y, label_smoothing=label_smoothing)
    return loss, logits


def count_madds(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass (``torch.utils.flop_counter``: FLOPs / 2), in eval mode.

    Counted on a copy on the meta device: no memory for activations and no arithmetic. The
    counter covers convolutions and matrix products, as DARTS-era counts do.
    """
    from torch.utils.flop_counter import FlopCounterMode

    try:
        probe = copy.deepcopy(model).to("meta").eval()
        x = torch.zeros(input_shape, device="meta")
    except (RuntimeError, NotImplementedError):  # pragma: no cover - a module that refuses meta
        probe, x = copy.deepcopy(model).cpu().eval(), torch.zeros(input_shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        probe(x)
    return int(counter.get_total_flops()) // 2


def network_cost(model: nn.Module, task: Task) -> dict[str, float]:
    """``{"params_M", "madds_M"}``: parameters without the auxiliary head (as DARTS counts them),
    multiply-adds of one image (auxiliary head not run)."""
    shape = (1, task.in_channels, task.image_size, task.image_size)
    return {
        "params_M": count_parameters(model, exclude_auxiliary=True) / 1e6,
        "madds_M": count_madds(model, shape) / 1e6,
    }
