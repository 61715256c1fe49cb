"""One cell of the fused supernet: the same cell position of K learners, computed wave by wave.

Channel layout: a state holds the K learners' channels stacked, ``[B, K·C, H, W]`` (learner k's
channels at ``k·C : (k + 1)·C``), so viewing it as ``[B, K, C, H, W]`` gives each learner its own
plain layout. Within a wave (see ``fused_plan``) every candidate op is one call over the units
that have it; the op outputs, weighted by each unit's own arch weight, are summed into per
(node, learner) sums. Summation order differs from the plain cell, nothing else does.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .supernet import Cell, SkipDropout
from .fused_ops import (
    ChainRows,
    FactorizedReduceRows,
    PlainRef,
    ReLUConvBNRows,
    RowBatchNorm,
    factorized_halves,
    max_or_avg_pool,
)
from .fused_plan import CellPlan, edge_mixed_op
from .ops import DilConv, FactorizedReduce, Identity, SepConv

SKIP = "skip_connect"
POOLS = ("max_pool_3x3", "avg_pool_3x3")

#: ``(learner, plain module) -> its qualified name in that learner's network``.
QualName = Callable[[int, nn.Module], str]


def _skip_dropout_rate(op: nn.Module) -> Optional[float]:
    if isinstance(op, Identity):
        return None
    if isinstance(op, nn.Sequential) and len(op) == 2 and isinstance(op[0], Identity) and isinstance(op[1], SkipDropout):
        return float(op[1].p)
    raise TypeError(f"unexpected stride-1 skip_connect module: {op}")


def _group_module(name: str, stride: int, refs: list[PlainRef]) -> Optional[nn.Module]:
    ops = [r.module for r in refs]
    if name.startswith(("sep_conv", "dil_conv")):
        kind = SepConv if name.startswith("sep") else DilConv
        if not all(isinstance(op, kind) for op in ops):
            raise TypeError(f"{name}: expected {kind.__name__} modules")
        return ChainRows(refs)
    if name in POOLS:
        pool_type = nn.MaxPool2d if name == "max_pool_3x3" else nn.AvgPool2d
        for op in ops:
            if not (isinstance(op, nn.Sequential) and len(op) == 2 and isinstance(op[0], pool_type)):
                raise TypeError(f"{name}: expected a pooling followed by BatchNorm, got {op}")
        return RowBatchNorm([PlainRef(r.learner, f"{r.name}.1", r.module[1]) for r in refs])
    if name == SKIP:
        if stride == 1:
            return None
        if not all(isinstance(op, FactorizedReduce) for op in ops):
            raise TypeError("stride-2 skip_connect: expected FactorizedReduce modules")
        return FactorizedReduceRows(refs)
    raise TypeError(f"the fused supernet does not implement the operation {name!r}")


def _add_at(acc: Optional[torch.Tensor], positions: torch.Tensor, term: torch.Tensor, units: int) -> torch.Tensor:
    """``acc`` (zeros when None, ``[B, units, ...]``) plus ``term`` at ``positions`` of dim 1. Under
    autocast an op's output is half precision and ``term`` (weighted by shaped float32 arch weights)
    float32: the sum is kept in the wider dtype of the two. (The plain MixedOp's sum stays in half
    precision, a 0-d weight not promoting its output; the fused sums are the more precise.
    Weighing in the output's dtype instead was tried: closer to the plain network under bf16, but
    its α gradients under fp16 drifted 7x further from float32 than the plain network's.)"""
    if acc is None:
        return term.new_zeros(term.shape[0], units, *term.shape[2:]).index_add(1, positions, term)
    dtype = torch.promote_types(acc.dtype, term.dtype)
    return acc.to(dtype).index_add(1, positions, term.to(dtype))


class FusedCell(nn.Module):
    """The cells at one position of K plain networks (``cells[k]`` is learner k's)."""

    def __init__(self, cells: Sequence[Cell], qualname: QualName, plan: CellPlan) -> None:
        super().__init__()
        first = cells[0]
        K = len(cells)
        self.K, self.plan, self.nodes = K, plan, first.nodes
        self.reduction, self.cell_type = first.reduction, first.cell_type
        self.C = first.preprocess1[1].out_channels
        self.C_op = self.C // plan.partial if plan.partial else self.C

        def refs(get: Callable[[Cell], nn.Module]) -> list[PlainRef]:
            return [PlainRef(k, qualname(k, get(c)), get(c)) for k, c in enumerate(cells)]

        if isinstance(first.preprocess0, FactorizedReduce):
            self.preprocess0: nn.Module = FactorizedReduceRows(refs(lambda c: c.preprocess0))
        else:
            self.preprocess0 = ReLUConvBNRows(refs(lambda c: c.preprocess0))
        self.preprocess1 = ReLUConvBNRows(refs(lambda c: c.preprocess1))

        mixed = [[edge_mixed_op(e)[0] for e in c.edges] for c in cells]
        rates: set[float] = set()
        self.waves = nn.ModuleList()
        for w, wave in enumerate(plan.waves):
            ops = nn.ModuleDict()
            for g, group in enumerate(wave.groups):
                units = [wave.units[u] for u in group.positions]
                edges = [wave.edges[u] for u in group.positions]
                group_refs = [
                    PlainRef(k, qualname(k, mixed[k][e].ops[col]), mixed[k][e].ops[col])
                    for (_, _, k), e, col in zip(units, edges, group.columns)
                ]
                if group.name == SKIP and wave.stride == 1:
                    rates |= {r for r in (_skip_dropout_rate(ref.module) for ref in group_refs) if r is not None}
                module = _group_module(group.name, wave.stride, group_refs)
                if module is not None:
                    ops[group.name] = module
                self.register_buffer(f"select_{w}_{g}", torch.tensor(group.select), persistent=False)
                self.register_buffer(f"positions_{w}_{g}", torch.tensor(group.positions), persistent=False)
            self.waves.append(ops)
        if len(rates) > 1:
            raise ValueError(f"cannot fuse skip-connect dropouts of different rates {sorted(rates)}")
        # One module for the whole cell, so ``set_skip_dropout`` (isinstance) finds and sets it.
        self.skip_dropout: Optional[SkipDropout] = SkipDropout(rates.pop()) if rates else None

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        op_weights: Sequence[Sequence[torch.Tensor]],
        bypass_weights: Sequence[Optional[torch.Tensor]],
    ) -> torch.Tensor:
        """``op_weights[w][g]``: per unit of group g of wave w, its op weight (β folded in);
        ``bypass_weights[w]``: per unit of wave w, its edge weight β for the PC-DARTS bypass."""
        K, C, C_op = self.K, self.C, self.C_op
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        pending_mix: Optional[torch.Tensor] = None
        pending_bypass: Optional[torch.Tensor] = None
        for w, wave in enumerate(self.plan.waves):
            sources = [states[s] for s in wave.sources]
            B, _, H, W = sources[0].shape
            views = [x.view(B, K, C, H, W) for x in sources]
            parts = [v[:, :, :C_op] for v in views] if self.plan.partial else views
            X = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            mix = self._mixed(w, X, op_weights[w])
            total_mix = mix if pending_mix is None else pending_mix + mix
            node = total_mix[:, 0]
            pending_mix = total_mix[:, 1:]
            if self.plan.partial:
                bypass = self._bypass(w, [v[:, :, C_op:] for v in views], bypass_weights[w])
                total_bypass = bypass if pending_bypass is None else pending_bypass + bypass
                node = self._shuffle(node, total_bypass[:, 0])
                pending_bypass = total_bypass[:, 1:]
            states.append(node)
        B, _, H, W = states[-1].shape
        return torch.stack([s.view(B, K, C, H, W) for s in states[2:]], dim=2).view(B, K * self.nodes * C, H, W)

    def _mixed(self, w: int, X: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """Σ over the wave's sources and ops of weight · op(input), per (dest, learner):
        ``X`` is ``[B, S·K, C_op, H, W]``; returns ``[B, D, K·C_op, H', W']``."""
        wave = self.plan.waves[w]
        modules = self.waves[w]
        K, C_op, stride = self.K, self.C_op, wave.stride
        B, SK, _, H, W = X.shape
        S, D = len(wave.sources), len(wave.dests)
        Ho, Wo = -(-H // stride), -(-W // stride)
        U = len(wave.units)
        relu: Optional[torch.Tensor] = None
        chain_inputs: dict[tuple[int, ...], torch.Tensor] = {}
        acc: Optional[torch.Tensor] = None
        dropout = self.skip_dropout is not None and self.training and self.skip_dropout.p > 0
        for g, group in enumerate(wave.groups):
            weight = weights[g]
            select = getattr(self, f"select_{w}_{g}")
            L = len(group.positions)
            if group.name == SKIP and stride == 1 and group.full and not dropout:
                # The identity needs no copy per edge: broadcast each source over its dests.
                term = X.view(B, S, 1, K, C_op, H, W)
                scale = weight.view(1, S, D, K, 1, 1, 1)
                acc = term * scale if acc is None else torch.addcmul(acc.view(B, S, D, K, C_op, H, W), term, scale)
                acc = acc.view(B, U, C_op, H, W)
                continue
            if group.name == SKIP and stride == 1:
                y = X.index_select(1, select)
                if dropout:
                    y = self.skip_dropout(y)  # type: ignore[misc]
            elif group.name in POOLS:
                pooled = max_or_avg_pool(X.reshape(B, SK * C_op, H, W), group.name, stride).view(B, SK, C_op, Ho, Wo)
                y = modules[group.name](pooled.index_select(1, select).view(B, L * C_op, Ho, Wo))
            else:
                if relu is None:
                    relu = F.relu(X)
                if group.name == SKIP:  # stride 2: FactorizedReduce; subsample once per source
                    halves = factorized_halves(relu).view(B, SK, 2 * C_op, Ho, Wo)
                    fr: FactorizedReduceRows = modules[group.name]  # type: ignore[assignment]
                    y = fr.from_halves(halves.index_select(1, select).view(B, L * 2 * C_op, Ho, Wo))
                else:
                    # The conv ops of a wave usually cover the same units: select their input once.
                    if group.select not in chain_inputs:
                        chain_inputs[group.select] = relu.index_select(1, select).view(B, L * C_op, H, W)
                    y = modules[group.name](chain_inputs[group.select])
            y = y.view(B, L, C_op, Ho, Wo)
            scale = weight.view(1, L, 1, 1, 1)
            if group.full:
                acc = y * scale if acc is None else torch.addcmul(acc, y, scale)
            else:
                acc = _add_at(acc, getattr(self, f"positions_{w}_{g}"), y * scale, U)
        if acc is None:
            # Only `none` on every edge of the wave: zeros, kept on the graph as the plain `Zero`
            # op keeps them (so upstream parameters get zero gradients rather than none).
            zero = X.view(B, S, 1, K, C_op, H, W)[..., ::stride, ::stride].mul(0.0)
            acc = zero.expand(B, S, D, K, C_op, Ho, Wo).reshape(B, U, C_op, Ho, Wo)
        acc = acc.view(B, S, D * K * C_op, Ho, Wo)
        acc = acc[:, 0] if S == 1 else acc.sum(1)
        return acc.view(B, D, K * C_op, Ho, Wo)

    def _bypass(self, w: int, rests: list[torch.Tensor], weights: Optional[torch.Tensor]) -> torch.Tensor:
        """PC-DARTS' bypassed channels summed per (dest, learner), max-pooled where the wave strides;
        ``rests[s]`` is ``[B, K, C − C_op, H, W]``; returns ``[B, D or 1, K, C − C_op, H', W']``."""
        wave = self.plan.waves[w]
        S, D = len(wave.sources), len(wave.dests)
        rest = rests[0] if S == 1 else torch.cat(rests, dim=1)
        B, SK, Cr, H, W = rest.shape
        if wave.stride == 2:
            rest = F.max_pool2d(rest.reshape(B, SK * Cr, H, W), 2, 2, ceil_mode=True)
            H, W = rest.shape[-2:]
        rest = rest.reshape(B, S, 1, self.K, Cr, H, W)
        if weights is None:  # unweighted: the same sum reaches every dest
            same = rest[:, 0] if S == 1 else rest.sum(1)
            return same.expand(B, D, self.K, Cr, H, W)
        scale = weights.view(S, D, self.K, 1, 1, 1)
        out = rest[:, 0] * scale[0]
        for s in range(1, S):
            out = torch.addcmul(out, rest[:, s], scale[s])
        return out

    def _shuffle(self, mixed: torch.Tensor, bypass: torch.Tensor) -> torch.Tensor:
        """Per learner, ``channel_shuffle(cat([mixed, bypass]), partial)`` in one copy: block 0 of
        the shuffle is the mixed part, blocks 1.. the bypass; channel i·partial + g ← block g's i."""
        parts = self.plan.partial
        B = mixed.shape[0]
        H, W = mixed.shape[-2:]
        K, C_op = self.K, self.C_op
        blocks = bypass.reshape(B, K, parts - 1, C_op, H, W).transpose(2, 3)
        out = torch.cat([mixed.reshape(B, K, C_op, 1, H, W), blocks], dim=3)
        return out.view(B, K * self.C, H, W)
