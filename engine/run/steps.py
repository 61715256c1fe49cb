"""The four steps of an SGL iteration as small functions: W (stage 1), PL, V (stage 2), A (stage 3).

They return detached tensors for metrics and never synchronise with the device: the executor
reads numbers only at logging intervals.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from sgl.registry.hypergrad.base import ArchContext
from sgl.registry.losses import stage2_loss

from .learners import Learner, Network

Pseudo = tuple[torch.Tensor, "torch.Tensor | None"]


@dataclass
class StepContext:
    """What steps need from Accelerate, without knowing about it."""

    autocast: Callable[[], AbstractContextManager]
    backward: Callable[[torch.Tensor], None]
    mean_grads: Callable[[list[torch.Tensor]], None]  # mean over processes, in place (no-op on one)
    unscale: Callable[[torch.optim.Optimizer], None]  # undo a loss scale on this optimizer's gradients
    grad_clip: float | None
    scaler: Any = None  # fp16's GradScaler (None otherwise): the A-step scales its losses by it too


@dataclass
class StepResult:
    loss: torch.Tensor      # detached, scalar
    correct: torch.Tensor   # number of correct predictions on the labeled batch
    count: int
    finite: torch.Tensor    # bool scalar: was the loss finite


def update(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], loss: torch.Tensor, ctx: StepContext) -> None:
    """One optimizer step on ``loss``: backward, the mean over processes, clipping, the step."""
    optimizer.zero_grad(set_to_none=True)
    ctx.backward(loss)
    ctx.mean_grads([p.grad for p in params if p.grad is not None])
    if ctx.grad_clip is not None:
        ctx.unscale(optimizer)  # only this optimizer's gradients: the others' scale must not change
        torch.nn.utils.clip_grad_norm_(params, ctx.grad_clip)
    optimizer.step()


def _update(net: Network, loss: torch.Tensor, ctx: StepContext) -> None:
    update(net.optimizer, net.params, loss, ctx)


def w_step(learner: Learner, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> StepResult:
    """Stage 1: W ← SGD step on CE(W(x_tr), y_tr)."""
    with ctx.autocast():
        logits = learner.logits("W", x)
        loss = F.cross_entropy(logits, y)
    _update(learner.nets["W"], loss, ctx)
    return _result(loss, logits, y)


def pl_step(learner: Learner, x_u: torch.Tensor, labeler: Any, ctx: StepContext) -> Pseudo:
    """Pseudo-labels q = labeler(W(x_u)), with no autograd state at all."""
    with torch.inference_mode(), ctx.autocast():
        targets, mask = labeler.label(learner.logits("W", x_u))
    # Inference tensors cannot be saved for a later backward (the V-step's loss uses them): copy out.
    return targets.clone(), None if mask is None else mask.clone()


def v_step(
    learner: Learner,
    x: torch.Tensor,
    y: torch.Tensor,
    x_u: torch.Tensor | None,
    pseudo: list[Pseudo],
    w_labeled: float,
    w_pseudo: float,
    ctx: StepContext,
) -> StepResult:
    """Stage 2: V ← SGD step on w_lab·CE(V(x_tr), y_tr) + λ Σ_j softCE(V(x_u), q_j)."""
    arch = learner.arch()
    with ctx.autocast():
        logits = learner.logits("V", x, arch)
        logits_u = learner.logits("V", x_u, arch) if pseudo and w_pseudo else None
        loss = stage2_loss(logits, y, logits_u, pseudo, w_labeled, w_pseudo)
    _update(learner.nets["V"], loss, ctx)
    return _result(loss, logits, y)


def a_step(learners: dict[str, Learner], targets: list[str], method: Any, arch_ctx: ArchContext, ctx: StepContext) -> bool:
    """Stage 3: every target's A ← optimizer step on the method's architecture gradient.

    Under fp16 the method's losses are scaled by the run's loss scale (tiny architecture gradients
    would underflow in half precision) and its gradients come back unscaled; when one is not finite
    no architecture moves this iteration and the scale backs off, as the weight steps do. Returns
    whether the step was taken.
    """
    scaler = ctx.scaler
    if scaler is not None:
        arch_ctx.loss_scale = float(scaler.get_scale())
    grads = method.compute(arch_ctx)
    for name in targets:
        learner = learners[name]
        params = learner.space.arch_parameters()
        learner.arch_optimizer.zero_grad(set_to_none=True)
        for param, grad in zip(params, grads[name]):
            param.grad = grad
        # One reduction after the method, so every process applies the same update to A, and
        # clipped after it, so every process clips the same gradient.
        ctx.mean_grads([p.grad for p in params])
    if scaler is not None and not all(bool(torch.isfinite(p.grad).all()) for k in targets for p in learners[k].space.arch_parameters()):
        for name in targets:
            learners[name].arch_optimizer.zero_grad(set_to_none=True)
        _back_off(scaler, learners[targets[0]].device)
        return False
    for name in targets:
        learner = learners[name]
        if learner.plan.arch_grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(learner.space.arch_parameters(), learner.plan.arch_grad_clip)
        learner.arch_optimizer.step()
    return True


def _back_off(scaler: Any, device: torch.device) -> None:
    """Lower the loss scale by its back-off factor, as an overflowing optimizer step would."""
    scaler.scale(torch.zeros((), device=device))  # the scaler creates its scale tensor on first use
    scaler.update(float(scaler.get_scale()) * scaler.get_backoff_factor())


def _result(loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> StepResult:
    loss = loss.detach()
    return StepResult(loss, (logits.detach().argmax(dim=1) == y).sum(), y.shape[0], torch.isfinite(loss))
