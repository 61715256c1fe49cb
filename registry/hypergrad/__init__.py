"""Architecture-gradient methods (stage 3). Each is a config here plus a pure function beside it.

``compute(ctx)`` returns, for every learner in ``ctx.targets``, the gradient of the validation
loss with respect to that learner's architecture parameters (aligned with
``space.arch_parameters()``). It must leave every module, buffer and optimizer as it found them:
the executor applies the gradients, reduces them across processes and steps the optimizer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, PositiveFloat

from ..core import ComponentConfig, register

if TYPE_CHECKING:
    import torch

    from .base import ArchContext


class HypergradientConfig(ComponentConfig):
    @property
    def follows_pseudo_labels(self) -> bool:
        """Whether the gradient also flows A_j → W_j → q_j → V_k → L_val,k (through a peer's labels)."""
        return False

    def compute(self, ctx: ArchContext) -> dict[str, list[torch.Tensor]]:
        raise NotImplementedError

    def passes(self, peers: int) -> dict[str, int]:
        """Forward and backward passes per searchable learner and iteration, with `peers` pseudo-labelers."""
        raise NotImplementedError


@register("hypergradient", "first_order")
class FirstOrderConfig(HypergradientConfig):
    """∇_A CE(V(x_val; A), y_val) with V held fixed: what the SGL authors' code does."""

    method: Literal["first_order"] = "first_order"

    def compute(self, ctx: ArchContext) -> dict[str, list[torch.Tensor]]:
        from .first_order import first_order

        return first_order(ctx)

    def passes(self, peers: int) -> dict[str, int]:
        return {"forward": 1, "backward": 1}


class SecondOrderConfig(HypergradientConfig):
    r: PositiveFloat = Field(0.01, description="Finite-difference radius: ε = r / ‖∇_{V'} L_val‖.")
    hessian: Literal["finite_difference", "hvp"] = Field(
        "finite_difference",
        description="Mixed second derivatives by DARTS' central difference, or by exact Hessian-vector products.",
    )


@register("hypergradient", "darts_unrolled")
class DartsUnrolledConfig(SecondOrderConfig):
    """DARTS' second order: differentiate L_val through one virtual SGD step of V on the stage-2 loss."""

    method: Literal["darts_unrolled"] = "darts_unrolled"

    def compute(self, ctx: ArchContext) -> dict[str, list[torch.Tensor]]:
        from .unrolled import darts_unrolled

        return darts_unrolled(ctx, r=self.r, hessian=self.hessian)

    def passes(self, peers: int) -> dict[str, int]:
        from .unrolled import unrolled_passes

        return unrolled_passes(peers, self.hessian)


@register("hypergradient", "full_chain")
class FullChainConfig(SecondOrderConfig):
    """darts_unrolled plus the path A_j → W_j → q_j → V_k → L_val,k through the peers' pseudo-labels."""

    method: Literal["full_chain"] = "full_chain"

    @property
    def follows_pseudo_labels(self) -> bool:
        return True

    def compute(self, ctx: ArchContext) -> dict[str, list[torch.Tensor]]:
        from .full_chain import full_chain

        return full_chain(ctx, r=self.r, hessian=self.hessian)

    def passes(self, peers: int) -> dict[str, int]:
        from .full_chain import full_chain_passes

        return full_chain_passes(peers, self.hessian)


@register("hypergradient", "exact")
class ExactConfig(HypergradientConfig):
    """Autograd through the virtual steps (torch.func): exact, slow; for tests and tiny problems."""

    method: Literal["exact"] = "exact"
    chain: bool = Field(True, description="Include the path through the peers' pseudo-labels (as full_chain).")

    @property
    def follows_pseudo_labels(self) -> bool:
        return self.chain

    def compute(self, ctx: ArchContext) -> dict[str, list[torch.Tensor]]:
        from .exact import exact

        return exact(ctx, chain=self.chain)

    def passes(self, peers: int) -> dict[str, int]:
        from .exact import exact_passes

        return exact_passes(peers, self.chain)
