"""P-DARTS (Chen et al., 2019): the supernet deepens in phases while the candidate ops are pruned.

Phase i searches with ``phases[i].layers`` cells and, on every edge, only the ops that survived
the pruning before it ("switches" in the reference code, chenxin061/pdarts). Entering a phase keeps
each edge's strongest ops by the current softmax(α) and carries their α values. A dropout after
the parameter-free skip-connect fights its tendency to win early; and the final genotype allows at
most ``max_skip_connect`` skip-connects in the normal cell (``limit_skip_connect``).

The cells and the network are DARTS' (``supernet.DartsNetwork``); only the ops on each edge differ.
"""

from __future__ import annotations

import math

from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

from .darts import DartsSpace
from .supernet import MixedOp, SkipDropout
from .genotype import Genotype, derive_genotype, num_edges

if TYPE_CHECKING:
    from ..task import Task
    from . import PDartsConfig

NONE = "none"
SKIP = "skip_connect"


def prune_ops(weights: Sequence[Sequence[float]], names: Sequence[Sequence[str]], keep: int) -> list[list[int]]:
    """Per edge, the columns of its ``keep`` largest weights, in ascending column order.

    As in the reference, ``none`` competes like any other op; but an edge is never left with
    ``none`` alone (possible only when ``keep`` is 1), since the genotype needs a real op on every
    edge: the strongest other op takes its place. Equal weights favour the lower column.
    """
    kept: list[list[int]] = []
    for row, ops in zip(weights, names):
        order = sorted(range(len(row)), key=lambda c: (-row[c], c))
        top = order[:keep]
        if all(ops[c] == NONE for c in top):
            real = [c for c in order if ops[c] != NONE]
            if real:
                top = top[:-1] + real[:1]
        kept.append(sorted(top))
    return kept


def _darts_cell(weights: list[list[float]], primitives: Sequence[str], nodes: int) -> tuple[tuple[str, int], ...]:
    # The DARTS rule for one cell; derive_genotype derives two, so give it the same cell twice.
    return derive_genotype(weights, weights, primitives, nodes, space="p_darts").normal


def limit_skip_connect(
    weights: Sequence[Sequence[float]], primitives: Sequence[str], nodes: int, max_skip: int
) -> list[list[float]]:
    """Op weights ``[edges, ops]`` whose DARTS-rule cell has at most ``max_skip`` skip-connects.

    P-DARTS' rule (``check_sk_number`` / ``delete_min_sk_prob`` / ``keep_1_on`` /
    ``keep_2_branches`` in the reference): while the derived cell has too many skip-connects, zero
    the weight of the weakest *selected* skip-connect and derive again. That edge then offers its
    next best op, and, its strength having fallen, may lose its place to another input of the
    node. A skip-connect whose edge has no other real op (possible only with fewer than three ops
    kept) cannot be replaced and stays; so the limit may be unreachable, and the loop still ends.
    Returns a new matrix; derive the genotype from it.
    """
    if SKIP not in primitives:
        return [list(map(float, row)) for row in weights]
    skip = list(primitives).index(SKIP)
    others = [c for c, name in enumerate(primitives) if name not in (NONE, SKIP)]
    rows = [list(map(float, row)) for row in weights]
    while True:
        gene = _darts_cell(rows, primitives, nodes)
        # Edge index of each selected (op, input) pair: node i's edges start at sum_{n<i}(n + 2).
        selected = [num_edges(pos // 2) + state for pos, (op, state) in enumerate(gene) if op == SKIP]
        if len(selected) <= max_skip:
            return rows
        replaceable = [e for e in selected if any(rows[e][c] > 0 for c in others)]
        if not replaceable:
            return rows
        weakest = min(replaceable, key=lambda e: (rows[e][skip], e))
        rows[weakest][skip] = 0.0


def set_skip_dropout(network: nn.Module, p: float) -> None:
    """Set the skip-connect dropout of a P-DARTS network (the reference decays it within a phase)."""
    for module in network.modules():
        if isinstance(module, SkipDropout):
            module.p = p


def skip_dropout_rate(rate: float, epoch: int, epochs: int, arch_start: int, decay: float) -> float:
    """P-DARTS' schedule within a phase: linear to 0 over the weights-only epochs
    (rate·(E − e − 1)/E), then rate·exp(−decay·(e − arch_start)) once architecture steps run."""
    if epoch < arch_start:
        return rate * (epochs - epoch - 1) / epochs
    return rate * math.exp(-decay * (epoch - arch_start))


class PDartsSpace(DartsSpace):
    """α over the ops still kept on each edge, ``[edges, phases[phase].ops]``.

    ``kept_normal`` / ``kept_reduce`` (buffers, ``[edges, ops kept]``) name the primitive of each
    α column; with ``phase_index`` they are saved in the state dict, and loading a state dict
    from a later phase reshapes α to match, so a checkpoint restores the phase by itself.
    """

    space_name = "p_darts"

    def __init__(self, cfg: PDartsConfig, task: Task) -> None:
        super().__init__(cfg, task)
        self.phases = list(cfg.phases)
        self.max_skip_connect = cfg.max_skip_connect
        self.skip_dropout_decay = cfg.skip_dropout_decay
        every_op = torch.arange(len(self.primitives)).repeat(num_edges(cfg.nodes), 1)
        self.register_buffer("kept_normal", every_op.clone())
        self.register_buffer("kept_reduce", every_op.clone())
        self.register_buffer("phase_index", torch.zeros((), dtype=torch.long))

    @property
    def num_phases(self) -> int:
        return len(self.phases)

    @property
    def phase(self) -> int:
        return int(self.phase_index)

    @property
    def layers(self) -> int:
        return self.phases[self.phase].layers

    def kept_ops(self, cell_type: str) -> list[list[str]]:
        """Per edge, the names of the ops kept in this phase (the columns of α, in order)."""
        kept = self.kept_normal if cell_type == "normal" else self.kept_reduce
        return [[self.primitives[c] for c in row] for row in kept.tolist()]

    def make_edge(self, cell_type: str, edge: int, C: int, stride: int) -> nn.Module:
        ops = self.kept_ops(cell_type)[edge]
        return MixedOp(C, stride, ops, skip_dropout=self.phases[self.phase].skip_dropout)

    @torch.no_grad()
    def op_weights(self) -> dict[str, torch.Tensor]:
        # Pruned ops weigh 0, so snapshots keep one column per primitive across phases.
        arch = self()
        out = {}
        for kind, kept in (("normal", self.kept_normal), ("reduce", self.kept_reduce)):
            w = arch[kind].detach().cpu()
            out[kind] = torch.zeros(w.shape[0], len(self.primitives), dtype=w.dtype).scatter_(1, kept.cpu(), w)
        return out

    def architecture(self) -> Genotype:
        ops = self.op_weights()
        normal = limit_skip_connect(ops["normal"].tolist(), self.primitives, self.cfg.nodes, self.max_skip_connect)
        return derive_genotype(normal, ops["reduce"], self.primitives, self.cfg.nodes, space=self.space_name)

    def configure_epoch(self, network: nn.Module, epoch: int, epochs: int, arch_start: int) -> None:
        rate = self.phases[self.phase].skip_dropout
        set_skip_dropout(network, skip_dropout_rate(rate, epoch, epochs, arch_start, self.skip_dropout_decay))

    def enter_phase(self, index: int) -> None:
        """Prune to ``phases[index].ops`` ops per edge (the strongest by the current α); their α are
        drawn afresh (``on_grow: reinit``, from torch's RNG) or kept (``carry``). ``index`` must be the
        next phase. Entering the current phase again does nothing (convenient on resume). α become
        new Parameters: rebuild the architecture optimizer, and the networks, afterwards.
        """
        if index == self.phase:
            return
        if index != self.phase + 1 or index >= self.num_phases:
            raise ValueError(f"cannot enter phase {index} from phase {self.phase} of {self.num_phases}")
        keep = self.phases[index].ops
        for kind in ("normal", "reduce"):
            alpha: nn.Parameter = getattr(self, f"alphas_{kind}")
            kept: torch.Tensor = getattr(self, f"kept_{kind}")
            weights = torch.softmax(alpha.detach(), dim=-1).tolist()
            cols = torch.tensor(prune_ops(weights, self.kept_ops(kind), keep), dtype=torch.long, device=kept.device)
            if self.cfg.on_grow == "carry":
                values = alpha.detach().gather(1, cols.to(alpha.device)).clone()
            else:
                values = (self.cfg.init_scale * torch.randn(cols.shape)).to(alpha.device, alpha.dtype)
            setattr(self, f"alphas_{kind}", nn.Parameter(values))
            setattr(self, f"kept_{kind}", kept.gather(1, cols))
        self.phase_index.fill_(index)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # A checkpoint from another phase has α and switches of another width: adopt its shapes
        # before the values are copied in.
        for name in ("alphas_normal", "alphas_reduce", "kept_normal", "kept_reduce"):
            incoming = state_dict.get(prefix + name)
            current: torch.Tensor = getattr(self, name)
            if incoming is None or incoming.shape == current.shape:
                continue
            blank = torch.empty(incoming.shape, dtype=current.dtype, device=current.device)
            setattr(self, name, nn.Parameter(blank) if isinstance(current, nn.Parameter) else blank)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
