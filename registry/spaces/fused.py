"""K DARTS-family supernets of one structure run as one network: fewer, larger calls, same math.

``FusedDartsNetwork.from_networks(nets)`` takes K plain ``DartsNetwork``s made by the same search
space configuration (DARTS, PC-DARTS, or a P-DARTS phase; weights, arch weights and, for P-DARTS,
the ops kept per edge may differ) and builds one network whose channels are the learners'
stacked (``fused_cell``): the stem is one conv with K·C_stem outputs, every per-channel op runs
over K·C channels, every dense 1x1 conv becomes one batched matmul over all learners and edges
(the dot products of a grouped conv), and within a cell the edges that read the same state and
apply the same op are one call (``fused_plan``). Depthwise convs take exact rewrites onto
oneDNN's fast CPU kernels (``fused_conv``). K = 1 is edge batching alone.

Every learner reads the same input batch; ``forward(x, archs)`` returns ``[K, B, classes]``.
Weights go in and out in the plain networks' ``state_dict`` format (``load_learner_state_dict``,
``learner_state_dict``, ``write_back``), so checkpoints and exports keep plain keys.

Optimisers: SGD (momentum, weight decay, Nesterov) and Adam/AdamW update every element from that
element's own gradient and state only, so one optimiser over ``fused.parameters()`` performs
exactly the K per-learner optimisers' steps, provided the K learners share the hyperparameters
(learning rate, momentum, ...) and every plain parameter gets a gradient (true of these supernets:
every op is on the graph). Gradient clipping is not elementwise: use ``clip_learner_grad_norms_``
(each learner's norm over its own slices of every parameter). The optimiser state is in the fused
layout; ``learner_tensors`` / ``load_learner_tensors`` read and write it per learner under plain
parameter names (e.g. ``of=lambda p: opt.state[p]["momentum_buffer"]``).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .supernet import DartsNetwork
from .fused_cell import FusedCell
from .fused_ops import DepthwiseRows, PlainRef, RowBatchNorm, Rows
from .fused_plan import CellPlan, build_plan
from .fused_slices import LearnerSlices


class StemRows(Rows):
    """K stem convs on the same input: one dense conv with K·C_stem outputs."""

    def __init__(self, refs: Sequence[PlainRef]) -> None:
        super().__init__()
        conv = refs[0].module
        if not isinstance(conv, nn.Conv2d) or conv.bias is not None or conv.groups != 1:
            raise TypeError(f"expected a dense bias-free stem conv, got {conv}")
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self._stacked("weight", refs, "weight", parameter=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation)


class ClassifierRows(Rows):
    """K linear classifiers ``[K, classes, C]`` applied to each learner's pooled features at once."""

    def __init__(self, refs: Sequence[PlainRef]) -> None:
        super().__init__()
        lin = refs[0].module
        if not isinstance(lin, nn.Linear) or lin.bias is None:
            raise TypeError(f"expected a Linear classifier with bias, got {lin}")
        K = len(refs)
        self._stacked("weight", refs, "weight", parameter=True, shape=(K, *lin.weight.shape))
        self._stacked("bias", refs, "bias", parameter=True, shape=(K, *lin.bias.shape))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features``: ``[B, K, C]`` → logits ``[K, B, classes]``."""
        return torch.baddbmm(self.bias.unsqueeze(1), features.transpose(0, 1), self.weight.transpose(1, 2))


class _TypePlan(nn.Module):
    """Where each unit's weight sits in the stacked arch tensors of one cell type (buffers, so they
    follow ``.to(device)``)."""

    def __init__(self, plan: CellPlan) -> None:
        super().__init__()
        self.plan = plan
        weight_index = [i for wave in plan.waves for g in wave.groups for i in g.weight_index]
        self.weight_sizes = [len(g.weight_index) for wave in plan.waves for g in wave.groups]
        self.group_counts = [len(wave.groups) for wave in plan.waves]
        self.bypass_sizes = [len(wave.bypass_index) for wave in plan.waves]
        bypass_index = [i for wave in plan.waves for i in wave.bypass_index]
        self.register_buffer("weight_index", torch.tensor(weight_index, dtype=torch.long), persistent=False)
        self.register_buffer("bypass_index", torch.tensor(bypass_index, dtype=torch.long), persistent=False)

    def split(
        self, ops: torch.Tensor, edges: Optional[torch.Tensor]
    ) -> tuple[list[list[torch.Tensor]], list[Optional[torch.Tensor]]]:
        """``ops`` ``[K, E, O]`` and ``edges`` ``[K, E]`` or None → per wave, per group, per unit weights
        (β folded into the op weights) and per wave, per unit β (None without edge weights)."""
        if edges is not None:
            ops = ops * edges.unsqueeze(-1)
        flat = ops.reshape(-1).index_select(0, self.weight_index).split(self.weight_sizes)
        per_wave, start = [], 0
        for count in self.group_counts:
            per_wave.append(list(flat[start : start + count]))
            start += count
        if edges is None:
            return per_wave, [None] * len(self.group_counts)
        bypass = edges.reshape(-1).index_select(0, self.bypass_index).split(self.bypass_sizes)
        return per_wave, list(bypass)


class FusedDartsNetwork(LearnerSlices):
    """K plain ``DartsNetwork``s of one structure as one network; see the module docstring."""

    def __init__(self, networks: Sequence[DartsNetwork], depthwise: Optional[bool] = None) -> None:
        """Builds the structure (tensors zero); ``from_networks`` also copies the weights in.

        ``depthwise``: whether depthwise convs take ``fused_conv``'s exact rewrites onto oneDNN's
        fast kernels: None where they pay (float32 on CPU), True always, False never.
        """
        super().__init__()
        if not networks:
            raise ValueError("give at least one network to fuse")
        for net in networks:
            if not isinstance(net, DartsNetwork):
                raise TypeError(f"can only fuse DartsNetwork supernets, got {type(net).__name__}")
        first = networks[0]
        if any(len(n.cells) != len(first.cells) for n in networks):
            raise ValueError(f"the networks to fuse have different depths: {[len(n.cells) for n in networks]}")
        self.learners = len(networks)
        names = [{id(m): name for name, m in net.named_modules()} for net in networks]

        def qualname(k: int, module: nn.Module) -> str:
            return names[k][id(module)]

        def refs(get) -> list[PlainRef]:  # type: ignore[no-untyped-def]
            return [PlainRef(k, qualname(k, get(n)), get(n)) for k, n in enumerate(networks)]

        self.stem_conv = StemRows(refs(lambda n: n.stem[0]))
        self.stem_bn = RowBatchNorm(refs(lambda n: n.stem[1]))
        plans: dict[str, CellPlan] = {}
        self.cells = nn.ModuleList()
        for i in range(len(first.cells)):
            cells = [n.cells[i] for n in networks]
            plan = build_plan(cells)
            kind = cells[0].cell_type
            if plans.setdefault(kind, plan) != plan:
                raise ValueError(f"the {kind} cells of a network differ in their operations; cannot fuse")
            self.cells.append(FusedCell(cells, qualname, plans[kind]))
        self.type_plans = nn.ModuleDict({kind: _TypePlan(plan) for kind, plan in plans.items()})
        self.classifier = ClassifierRows(refs(lambda n: n.classifier))
        self.plain_keys: list[list[str]] = [list(net.state_dict().keys()) for net in networks]
        for module in self.modules():
            if isinstance(module, DepthwiseRows):
                module.rewrite = depthwise
        for k, keys in enumerate(self.plain_keys):
            linked = {link.key for _, _, links in self._links() for link in links if link.learner == k}
            if linked != set(keys):
                missing, extra = sorted(set(keys) - linked), sorted(linked - set(keys))
                raise ValueError(f"learner {k}: the fused network does not cover {missing[:5]} / names unknown {extra[:5]}")

    @classmethod
    def from_networks(cls, networks: Sequence[DartsNetwork], depthwise: Optional[bool] = None) -> FusedDartsNetwork:
        """A fused network holding copies of the networks' weights and BN buffers, in their train/eval mode."""
        fused = cls(networks, depthwise)
        for k, net in enumerate(networks):
            fused.load_learner_state_dict(k, net.state_dict())
        return fused.train(networks[0].training)

    def forward(self, x: torch.Tensor, archs: Sequence[Mapping[str, torch.Tensor]]) -> torch.Tensor:
        """Logits ``[K, B, classes]`` of every learner on the same batch ``x``.

        ``archs[k]`` is learner k's architecture, the dict its search space returns (``space()``).
        """
        if isinstance(archs, Mapping) or len(archs) != self.learners:
            raise ValueError(f"give a sequence of {self.learners} architecture dicts, one per learner")
        weights = {kind: self._arch_weights(kind, archs) for kind in self.type_plans}
        s0 = s1 = self.stem_bn(self.stem_conv(x))
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, *weights[cell.cell_type])
        B = s1.shape[0]
        features = F.adaptive_avg_pool2d(s1, 1).view(B, self.learners, -1)
        return self.classifier(features)

    def _arch_weights(
        self, kind: str, archs: Sequence[Mapping[str, torch.Tensor]]
    ) -> tuple[list[list[torch.Tensor]], list[Optional[torch.Tensor]]]:
        ops = torch.stack([a[kind] for a in archs])
        has_edges = [f"{kind}_edges" in a for a in archs]
        if any(has_edges) and not all(has_edges):
            raise ValueError(f"either every learner's architecture weighs the {kind} edges or none does")
        edges = torch.stack([a[f"{kind}_edges"] for a in archs]) if all(has_edges) else None
        plan: _TypePlan = self.type_plans[kind]  # type: ignore[assignment]
        if tuple(ops.shape[1:]) != (plan.plan.edges, plan.plan.ops):
            expected = (plan.plan.edges, plan.plan.ops)
            raise ValueError(f"{kind} op weights of shape {tuple(ops.shape[1:])} do not match the network's {expected}")
        return plan.split(ops, edges)


class FusedSupernet(nn.Module):
    """One learner's supernet computed by ``FusedDartsNetwork`` (K = 1: edge batching and the conv
    rewrites) behind the plain network's interface: ``forward(x, arch) -> logits``, and its
    ``state_dict`` / ``load_state_dict`` in the plain network's format, so checkpoints and exports
    do not know which implementation ran. Same math as the plain network; sums in another order."""

    def __init__(self, plain: DartsNetwork) -> None:
        super().__init__()
        self.fused = FusedDartsNetwork.from_networks([plain])

    def forward(self, x: torch.Tensor, arch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.fused(x, [arch])[0]

    def state_dict(self, *args, **kwargs):  # type: ignore[override]
        return self.fused.learner_state_dict(0)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        self.fused.load_learner_state_dict(0, state_dict)
        return nn.modules.module._IncompatibleKeys([], [])


def fuse(plain: nn.Module) -> nn.Module:
    """The fused form of a plain supernet, or the plain one when it cannot be fused (e.g. the ImageNet stem)."""
    if not isinstance(plain, DartsNetwork) or getattr(plain, "two_stems", False):
        return plain
    return FusedSupernet(plain)