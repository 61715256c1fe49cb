"""Per-learner views of a fused network's tensors: weights in and out, gradient norms, clipping.

A fused tensor stacks plain tensors row by row (``fused_ops.Rows``, ``Link``); these methods read
and write one learner's rows under its plain network's names, and reduce gradients per learner.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterator, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from .fused_ops import Link, Rows


class LearnerSlices(nn.Module):
    """Mixin of ``FusedDartsNetwork``: needs ``learners`` (K) and ``plain_keys`` (per learner, its
    plain ``state_dict`` keys in order), and ``Rows`` submodules holding every tensor."""

    learners: int
    plain_keys: list[list[str]]

    def _links(self) -> Iterator[tuple[Rows, str, list[Link]]]:
        for module in self.modules():
            if isinstance(module, Rows):
                for attr, links in module.links.items():
                    yield module, attr, links

    def learner_tensors(
        self, learner: int, of: Optional[Callable[[nn.Parameter], Optional[torch.Tensor]]] = None
    ) -> dict[str, Optional[torch.Tensor]]:
        """Learner ``learner``'s slices under its plain names (copies). Without ``of``: every
        parameter and buffer. With ``of``: for every parameter p, the slices of ``of(p)``, a tensor
        shaped like p (its ``grad``, an optimiser's ``state[p]["momentum_buffer"]``, ...) or None."""
        out: dict[str, Optional[torch.Tensor]] = {}
        for module, attr, links in self._links():
            tensor: Optional[torch.Tensor] = getattr(module, attr)
            if of is not None:
                if not isinstance(tensor, nn.Parameter):
                    continue
                tensor = of(tensor)
            rows = None if tensor is None else tensor.detach().reshape(module.rows[attr], -1)
            for link in links:
                if link.learner == learner:
                    n = _numel(link.shape)
                    out[link.key] = None if rows is None else rows[link.row, link.offset : link.offset + n].reshape(link.shape).clone()
        return out

    @torch.no_grad()
    def load_learner_tensors(
        self,
        learner: int,
        values: Mapping[str, torch.Tensor],
        of: Optional[Callable[[nn.Parameter], torch.Tensor]] = None,
    ) -> None:
        """The inverse of ``learner_tensors``: copy plain-named ``values`` into learner ``learner``'s
        slices of every parameter and buffer (or, with ``of``, of ``of(p)`` for every parameter p).
        Every plain name must be given (with ``of``: every parameter name)."""
        expected = {
            link.key
            for module, attr, links in self._links()
            if of is None or isinstance(getattr(module, attr), nn.Parameter)
            for link in links
            if link.learner == learner
        }
        if set(values) != expected:
            missing, extra = sorted(expected - set(values)), sorted(set(values) - expected)
            raise ValueError(f"learner {learner}: missing {missing[:5]}, unexpected {extra[:5]}")
        for module, attr, links in self._links():
            target = getattr(module, attr)
            if of is not None:
                if not isinstance(target, nn.Parameter):
                    continue
                target = of(target)
            rows = target.view(module.rows[attr], -1)
            for link in links:
                if link.learner == learner:
                    value = values[link.key]
                    if tuple(value.shape) != link.shape:
                        raise ValueError(f"{link.key}: shape {tuple(value.shape)}, the network has {link.shape}")
                    rows[link.row, link.offset : link.offset + value.numel()].copy_(value.reshape(-1))

    def learner_state_dict(self, learner: int) -> OrderedDict[str, torch.Tensor]:
        """Learner ``learner``'s weights and buffers as its plain network's ``state_dict`` (copies)."""
        out = self.learner_tensors(learner)
        return OrderedDict((key, out[key]) for key in self.plain_keys[learner])  # type: ignore[misc]

    def load_learner_state_dict(self, learner: int, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Copy a plain ``state_dict`` (every key of the plain network, nothing else) into learner ``learner``'s slices."""
        self.load_learner_tensors(learner, state_dict)

    def learner_grads(self, learner: int) -> dict[str, Optional[torch.Tensor]]:
        """Learner ``learner``'s gradients under its plain parameter names (copies; None: no gradient)."""
        return self.learner_tensors(learner, lambda p: p.grad)

    def write_back(self, networks: Sequence[nn.Module]) -> None:
        """Load every learner's weights and buffers into its plain network (``networks[k]``)."""
        if len(networks) != self.learners:
            raise ValueError(f"give {self.learners} networks, got {len(networks)}")
        for k, net in enumerate(networks):
            net.load_state_dict(self.learner_state_dict(k))

    def _owner(self, module: Rows, attr: str, device: torch.device) -> torch.Tensor:
        owners: dict[tuple[int, str], torch.Tensor] = self.__dict__.setdefault("_owner_cache", {})
        key = (id(module), attr)
        owner = owners.get(key)
        if owner is None or owner.device != device:
            by_row = {}
            for link in module.links[attr]:
                if by_row.setdefault(link.row, link.learner) != link.learner:
                    raise RuntimeError(f"row {link.row} of {attr} mixes learners")
            owner = torch.tensor([by_row[r] for r in range(module.rows[attr])], dtype=torch.long, device=device)
            owners[key] = owner
        return owner

    def _param_rows(
        self, of: Optional[Callable[[nn.Parameter], Optional[torch.Tensor]]]
    ) -> Iterator[tuple[nn.Parameter, torch.Tensor, torch.Tensor]]:
        """Per parameter p with a tensor ``of(p)`` (default: its gradient): (p, that tensor as
        ``[rows, -1]``, the owning learner of each row)."""
        for module, attr, _ in self._links():
            p = getattr(module, attr)
            if not isinstance(p, nn.Parameter):
                continue
            t = p.grad if of is None else of(p)
            if t is not None:
                yield p, t.view(module.rows[attr], -1), self._owner(module, attr, t.device)

    def learner_norms(self, of: Optional[Callable[[nn.Parameter], Optional[torch.Tensor]]] = None) -> torch.Tensor:
        """``[K]``: each learner's 2-norm over its slices of ``of(p)`` for every parameter p
        (default: the gradients, i.e. what ``clip_grad_norm_`` computes on each plain network)."""
        total: Optional[torch.Tensor] = None
        for _, rows, owner in self._param_rows(of):
            sq = rows.pow(2).sum(1)
            total = sq.new_zeros(self.learners).index_add(0, owner, sq) if total is None else total.index_add(0, owner, sq)
        return torch.zeros(self.learners) if total is None else total.sqrt()

    def learner_grad_norms(self) -> torch.Tensor:
        """``[K]``: each learner's gradient norm, as ``clip_grad_norm_`` computes it on its plain network."""
        return self.learner_norms()

    def per_learner(self, p: nn.Parameter, values: torch.Tensor) -> torch.Tensor:
        """``values`` (``[K]``, one per learner) spread over fused parameter ``p``'s rows: a tensor
        broadcastable against ``p`` holding, at each element, its learner's value (e.g. a
        per-learner ε for ``V ± ε_k·∇`` in a second-order architecture step)."""
        for module, attr, _ in self._links():
            if getattr(module, attr) is p:
                rows = module.rows[attr]
                owner = self._owner(module, attr, values.device)
                per_row = values.index_select(0, owner).repeat_interleave(p.shape[0] // rows)
                return per_row.view(-1, *([1] * (p.dim() - 1)))
        raise ValueError("not a parameter of this fused network")

    @torch.no_grad()
    def clip_learner_grad_norms_(self, max_norm: Union[float, torch.Tensor]) -> torch.Tensor:
        """Clip each learner's gradient to 2-norm ``max_norm`` (a float or ``[K]``), as
        ``torch.nn.utils.clip_grad_norm_(plain.parameters(), max_norm)`` does per plain network:
        multiply by ``min(1, max_norm / (norm + 1e-6))``. Returns the norms before clipping."""
        norms = self.learner_grad_norms()
        coef = (torch.as_tensor(max_norm, dtype=norms.dtype, device=norms.device) / (norms + 1e-6)).clamp(max=1.0)
        for _, rows, owner in self._param_rows(None):
            rows.mul_(coef.index_select(0, owner).unsqueeze(1))
        return norms


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n

