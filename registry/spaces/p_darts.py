"""P-DARTS (Chen et al., 2019): the supernet deepens in phases while the candidate ops are pruned.

Phase i searches with ``phases[i].layers`` cells and, on every edge, only the ops that survived
the pruning before it ("switches" in the reference code, chenxin061/pdarts). Entering a phase keeps
each edge's strongest ops by the current softmax(α) and carries their α values. A dropout after
the parameter-free skip-connect fights its tendency to win early; and the final genotype allows at
most ``max_skip_connect`` skip-connects in the normal cell (``limit_skip_connect``).

The cells and the network are DARTS' (``supernet.DartsNetwork``); only the ops on each edge differ.
The final cell follows P-DARTS' own rule (``derive_cell``), not DARTS': the same cell but where
weights are exactly equal, and a node's two inputs are listed in index order. Ties everywhere
(pruning, the final op and inputs, the skip-connect limit) fall as in chenxin061/pdarts at b880e87.
"""

from __future__ import annotations

import math

from typing import TYPE_CHECKING, Any, Iterable, Sequence

import torch
from torch import nn

from .darts import DartsSpace
from .genotype import CELL_TYPES, Gene, Genotype, assemble_genotype, num_edges, per_edge_primitives
from .supernet import MixedOp, SkipDropout

if TYPE_CHECKING:
    from ..task import Task
    from . import PDartsConfig

NONE = "none"
SKIP = "skip_connect"


def _last_strongest(row: Sequence[float], columns: Iterable[int]) -> int:
    # P-DARTS drops an edge's weakest ops one at a time with np.argmin, which finds the *first* of
    # equal minima (get_min_k, get_min_k_no_zero: train_search.py:363-389 at b880e87); so of equal
    # weights the later column is the one that survives.
    return max(columns, key=lambda c: (row[c], c))


def prune_ops(weights: Sequence[Sequence[float]], names: Sequence[Sequence[str]], keep: int) -> list[list[int]]:
    """Per edge, the columns of its ``keep`` largest weights (softmax(α)), in ascending column order.

    As in the reference (``get_min_k``), ``none`` competes like any other op, and of equal weights
    the later column stays. An edge is never left with ``none`` alone (possible only when ``keep``
    is 1), since the genotype needs a real op on every edge: the strongest other op takes its
    place, the one P-DARTS' last pruning (``get_min_k_no_zero``, which drops ``none`` first) keeps.
    """
    kept: list[list[int]] = []
    for row, ops in zip(weights, names):
        order = sorted(range(len(row)), key=lambda c: (row[c], c), reverse=True)
        top = order[:keep]
        if all(ops[c] == NONE for c in top):
            real = [c for c in order if ops[c] != NONE]
            if real:
                top = top[:-1] + real[:1]
        kept.append(sorted(top))
    return kept


def edge_op(row: Sequence[float], ops: Sequence[str]) -> int | None:
    """Column of the op an edge keeps in the final cell (None if it has only ``none``).

    The strongest op but ``none``, the later of equal ones: P-DARTS' last pruning removes ``none``
    outright and then the first minimum until one op is left (``get_min_k_no_zero``,
    train_search.py:372-389; again in ``keep_1_on``, :429-439).
    """
    real = [c for c, op in enumerate(ops) if op != NONE]
    return _last_strongest(row, real) if real else None


def derive_cell(weights: Sequence[Sequence[float]], names: Sequence[Sequence[str]], nodes: int) -> Gene:
    """P-DARTS' final cell from op weights ``[edges, ops]`` whose columns ``names[edge]`` names.

    Per edge its ``edge_op``; per node the two inputs whose op weighs most. Listed per node in
    input order, as ``parse_network`` (train_search.py:335-350) walks the kept edges.
    """
    expected = num_edges(nodes)
    if len(weights) != expected or len(names) != expected:
        raise ValueError(
            f"{nodes} nodes have {expected} edges, got {len(weights)} weight rows and {len(names)} op lists"
        )
    gene: list[tuple[str, int]] = []
    for node in range(nodes):
        first = num_edges(node)
        inputs = node + 2
        chosen: list[tuple[float, str]] = []  # per input state: (strength, op)
        for state in range(inputs):
            row, ops = weights[first + state], names[first + state]
            if len(row) != len(ops):
                raise ValueError(f"edge {first + state} has {len(ops)} operations but {len(row)} weights")
            col = edge_op(row, ops)
            if col is None:
                raise ValueError(f"edge {first + state} has no operation other than 'none'")
            chosen.append((float(row[col]), ops[col]))
        # As train_search.py:228-233 and keep_2_branches (:441-456): a stable ascending sort whose
        # last two are kept, so of equally strong inputs the later one.
        strongest = sorted(range(inputs), key=lambda s: chosen[s][0])[-2:]
        gene.extend((chosen[s][1], s) for s in sorted(strongest))
    return tuple(gene)


def _replaceable(row: Sequence[float], ops: Sequence[str]) -> bool:
    # Whether zeroing the edge's skip-connect lets another op take its place.
    zeroed = list(row)
    zeroed[list(ops).index(SKIP)] = 0.0
    col = edge_op(zeroed, ops)
    return col is not None and ops[col] != SKIP


def limit_skip_connect(
    weights: Sequence[Sequence[float]],
    primitives: Sequence[str] | Sequence[Sequence[str]],
    nodes: int,
    max_skip: int,
) -> list[list[float]]:
    """Op weights ``[edges, ops]`` whose ``derive_cell`` has at most ``max_skip`` skip-connects.

    ``primitives`` names the columns, once for all edges or per edge. P-DARTS' rule
    (``check_sk_number`` / ``delete_min_sk_prob`` / ``keep_1_on`` / ``keep_2_branches``,
    train_search.py:399-456): while the derived cell has too many skip-connects, zero the weight
    of the weakest *selected* skip-connect and derive again. That edge then offers its next best
    op, and, its strength having fallen, may lose its place to another input of the node. A
    skip-connect whose edge has no other real op (possible only with fewer than three ops kept)
    cannot be replaced and stays; so the limit may be unreachable, and the loop still ends.
    Returns a new matrix; derive the cell from it.
    """
    names = per_edge_primitives(primitives, num_edges(nodes))
    rows = [list(map(float, row)) for row in weights]
    while True:
        gene = derive_cell(rows, names, nodes)
        # Edge index of each selected (op, input) pair: node i's edges start at sum_{n<i}(n + 2).
        selected = [num_edges(pos // 2) + state for pos, (op, state) in enumerate(gene) if op == SKIP]
        if len(selected) <= max_skip:
            return rows
        replaceable = [e for e in selected if _replaceable(rows[e], names[e])]
        if not replaceable:
            return rows
        # delete_min_sk_prob's np.argmin over the edges (:423): of equal skip weights, the lowest edge.
        weakest = min(replaceable, key=lambda e: (rows[e][names[e].index(SKIP)], e))
        rows[weakest][names[weakest].index(SKIP)] = 0.0


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

    @torch.no_grad()
    def architecture(self) -> Genotype:
        # From the kept ops alone: a pruned op must not win a tie at weight 0.
        arch = self()
        nodes = self.cfg.nodes
        cells: dict[str, Gene] = {}
        for kind in CELL_TYPES:
            weights: list[list[float]] = arch[kind].detach().cpu().tolist()
            names = self.kept_ops(kind)
            if kind == "normal":
                weights = limit_skip_connect(weights, names, nodes, self.max_skip_connect)
            cells[kind] = derive_cell(weights, names, nodes)
        return assemble_genotype(cells["normal"], cells["reduce"], self.primitives, nodes, self.space_name)

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
