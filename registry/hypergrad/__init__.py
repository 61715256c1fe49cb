"""Architecture-gradient methods (stage 3). Each is a config here plus a pure function beside it.

``compute(ctx)`` returns, for every learner in ``ctx.targets``, the gradient of the validation
loss with respect to that learner's architecture parameters (aligned with
``space.arch_parameters()``). It must leave every module, buffer and optimizer as it found them
(``running_stats: update`` excepted, which moves V's BatchNorm statistics on purpose): the
executor applies the gradients, reduces them across processes and steps the optimizer.
``check(optim.weights)`` lists what a method cannot do with the spec's weight optimizer, for the
planner to report before anything runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, PositiveFloat

from ..core import ComponentConfig, register
from ..optim import OptimizerConfig, SGDConfig

if TYPE_CHECKING:
    import torch

    from .base import ArchContext


class HypergradientConfig(ComponentConfig):
    running_stats: Literal["keep", "update"] = Field(
        "keep",
        description="V's BatchNorm running statistics in the A-step: keep (measured on copies, untouched) or "
        "update (moved as one train-mode forward of V on the validation batch moves them, as in the SGL "
        "authors' and DARTS' first-order code).",
    )

    @property
    def follows_pseudo_labels(self) -> bool:
        """Whether the gradient also flows A_j → W_j → q_j → V_k → L_val,k (through a peer's labels)."""
        return False

    def compute(self, ctx: ArchContext) -> dict[str, list[torch.Tensor]]:
        raise NotImplementedError

    def passes(self, peers: int) -> dict[str, int]:
        """Forward and backward passes per searchable learner and iteration, with `peers` pseudo-labelers."""
        raise NotImplementedError

    def check(self, weights: OptimizerConfig) -> list[str]:
        """Problems of this method with the optimizer of the network weights (the spec's optim.weights)."""
        return []


@register("hypergradient", "first_order")
class FirstOrderConfig(HypergradientConfig):
    """∇_A CE(V(x_val; A), y_val) with V held fixed: what the SGL authors' code does."""

    method: Literal["first_order"] = "first_order"

    def compute(self, ctx: ArchContext) -> dict[str, list[torch.Tensor]]:
        from .first_order import first_order

        return first_order(ctx, running_stats=self.running_stats)

    def passes(self, peers: int) -> dict[str, int]:
        return {"forward": 1, "backward": 1}


class VirtualStepConfig(HypergradientConfig):
    """The methods that differentiate through a virtual SGD step of the network weights."""

    def check(self, weights: OptimizerConfig) -> list[str]:
        if isinstance(weights, SGDConfig):
            return []
        name = getattr(weights, "name", type(weights).__name__)
        method = getattr(self, "method", "this method")
        return [
            f"hypergradient {method} differentiates through a virtual SGD step of the network weights, "
            f"but optim.weights is {name}: use optim.weights: sgd, or hypergradient.method: first_order"
        ]

    def finish(self, ctx: ArchContext, grads: dict[str, list[torch.Tensor]]) -> dict[str, list[torch.Tensor]]:
        """After the method: ``running_stats: update`` moves the targets' V statistics (one forward on x_val)."""
        if self.running_stats == "update":
            from .running_stats import forward_on_val

            forward_on_val(ctx)
        return grads

    def counted(self, passes: dict[str, int]) -> dict[str, int]:
        """The pass counts of the method plus the statistics forward of ``running_stats: update``."""
        if self.running_stats == "update":
            passes = {**passes, "forward": passes["forward"] + 1}
        return passes


class SecondOrderConfig(VirtualStepConfig):
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

        return self.finish(ctx, darts_unrolled(ctx, r=self.r, hessian=self.hessian))

    def passes(self, peers: int) -> dict[str, int]:
        from .unrolled import unrolled_passes

        return self.counted(unrolled_passes(peers, self.hessian))


@register("hypergradient", "full_chain")
class FullChainConfig(SecondOrderConfig):
    """darts_unrolled plus the path A_j → W_j → q_j → V_k → L_val,k through the peers' pseudo-labels."""

    method: Literal["full_chain"] = "full_chain"

    @property
    def follows_pseudo_labels(self) -> bool:
        return True

    def compute(self, ctx: ArchContext) -> dict[str, list[torch.Tensor]]:
        from .full_chain import full_chain

        return self.finish(ctx, full_chain(ctx, r=self.r, hessian=self.hessian))

    def passes(self, peers: int) -> dict[str, int]:
        from .full_chain import full_chain_passes

        return self.counted(full_chain_passes(peers, self.hessian))


@register("hypergradient", "exact")
class ExactConfig(VirtualStepConfig):
    """Autograd through the virtual steps (torch.func): exact, slow; for tests and tiny problems."""

    method: Literal["exact"] = "exact"
    chain: bool = Field(True, description="Include the path through the peers' pseudo-labels (as full_chain).")

    @property
    def follows_pseudo_labels(self) -> bool:
        return self.chain

    def compute(self, ctx: ArchContext) -> dict[str, list[torch.Tensor]]:
        from .exact import exact

        return self.finish(ctx, exact(ctx, chain=self.chain))

    def passes(self, peers: int) -> dict[str, int]:
        from .exact import exact_passes

        return self.counted(exact_passes(peers, self.chain))
