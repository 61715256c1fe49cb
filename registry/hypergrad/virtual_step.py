"""Pure helpers of the second-order architecture gradients (derivation: docs/hypergradients.md).

One A-step looks one iteration ahead, in the order of an SGL iteration (A, W, PL, V):

- every *labeler* j takes a virtual W step ``W_j' = W_j − ξ_W(μ·m + ∇_W CE(W_j(x_tr), y_tr) + wd·W_j)``
  and labels the unlabeled batch: ``q_j = label(W_j'(x_u))``;
- every *source* k takes a virtual V step on the stage-2 loss with those labels,
  ``V_k' = V_k − ξ_V(μ·m + ∇_V L2_k + wd·V_k)``, and is scored by ``L_val,k = CE(V_k'(x_val), y_val)``.

``unrolled`` differentiates an outer loss through one such virtual step; ``mixed_product`` is its
second-order part, ∇_X (∇_P inner · u), by central difference or by a Hessian-vector product.

Nothing here mutates anything: networks run through ``torch.func.functional_call`` with explicit
parameters and buffers *cloned* once per ``Functional``, optimizer state is only read, no ``.grad``
is touched. Every forward runs inside ``ctx.autocast()`` except the two finite-difference passes,
which run in the parameters' dtype (a half-precision cast would round the perturbation away). Every
differentiated loss is multiplied by ``ctx.loss_scale`` and its gradients divided by it (fp16 runs
use the GradScaler's scale). Gradients stay local to the process: the executor reduces them once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from ..losses import stage2_loss
from .autograd import _SameRandomness, grad, precision, scaled, unscaled, unwrap
from .base import ArchContext, LearnerView

Hessian = str  # "finite_difference" | "hvp"


class Inner(Protocol):
    """The inner (training) loss of a virtual step as a function of the parameters. ``fp32=True``
    runs it outside autocast: the finite-difference passes ask for that."""

    def __call__(self, params: Sequence[Tensor], *, fp32: bool = False) -> Tensor: ...


# --------------------------------------------------------------------------- the virtual SGD step


class SgdStep:
    """One virtual step of a ``torch.optim.SGD`` as it stands now: its lr, momentum buffer and decay.

    PyTorch's SGD: ``d = g + wd·p``; with momentum ``b = μ·m + (1−τ)·d`` (``b = d`` before the first
    step), ``d = d + μ·b`` if Nesterov else ``b``; ``p ← p − lr·d``. Written as
    ``p' = p − s·(g + wd·p) − shift`` with ``s = lr·c``: for plain momentum with a buffer,
    ``p' = p − ξ(μ·m + g + wd·p)``, DARTS' virtual step (docs/hypergradients.md). ``s`` is ∂p'/∂g, the factor the chain rule needs.
    Gradient clipping (the executor's clip-norm) is not modelled, as in DARTS.
    """

    def __init__(self, opt: torch.optim.Optimizer, params: Sequence[Tensor]):
        # Accelerate's AcceleratedOptimizer (and similar wrappers) keep the real one in `.optimizer`.
        while not isinstance(opt, torch.optim.SGD) and isinstance(getattr(opt, "optimizer", None), torch.optim.Optimizer):
            opt = opt.optimizer
        if not isinstance(opt, torch.optim.SGD):
            # The planner refuses this combination (HypergradientConfig.check); this is the backstop.
            raise TypeError(
                "darts_unrolled, full_chain and exact differentiate through a virtual step of "
                f"torch.optim.SGD, but the network optimizer is {type(opt).__name__}: "
                "use optim.weights: sgd, or hypergradient.method: first_order"
            )
        group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
        self.scale: list[float] = []
        self.decay: list[float] = []
        self.shift: list[Tensor | None] = []
        for p in params:
            group = group_of[id(p)]
            if group.get("maximize", False):
                raise ValueError("SGD with maximize=True is not supported by the virtual step")
            lr = float(group["lr"])
            mu = float(group.get("momentum", 0.0))
            tau = float(group.get("dampening", 0.0))
            nesterov = bool(group.get("nesterov", False))
            buf = opt.state.get(p, {}).get("momentum_buffer") if mu else None
            if buf is None:
                c, k = (1.0 + mu if nesterov else 1.0), 0.0
            else:
                c, k = ((1.0 + mu * (1.0 - tau)) if nesterov else (1.0 - tau)), (mu * mu if nesterov else mu)
            self.scale.append(lr * c)
            self.decay.append(float(group.get("weight_decay", 0.0)))
            self.shift.append(None if buf is None or k == 0.0 else (lr * k) * buf.detach())

    def __call__(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> list[Tensor]:
        """``p'`` for every parameter; differentiable in ``grads`` (exact) or not (callers detach)."""
        out = []
        for p, g, s, wd, shift in zip(params, grads, self.scale, self.decay, self.shift):
            d = g + wd * p if wd else g
            q = p - s * d
            out.append(q if shift is None else q - shift)
        return out

    def direction(self, grads: Sequence[Tensor]) -> list[Tensor]:
        """``u = s ⊙ g``: ``(∂p'/∂X)ᵀ g = −∇_X(∇_p inner · u)`` for anything X the inner loss depends on."""
        return [s * g for s, g in zip(self.scale, grads)]


class Functional:
    """One of a learner's networks as a pure function of its optimizer-owned parameters.

    ``model(params, x)`` runs the network with ``params`` in place of its own (same order as
    ``model.params``), the architecture computed afresh from the learner's live α (so gradients
    reach it and no graph is shared between passes), and this Functional's copy of the buffers.
    """

    def __init__(self, learner: LearnerView, which: str):
        self.space = learner.space
        self.net = unwrap(getattr(learner, f"{which}_net"))
        self.optimizer = getattr(learner, f"{which}_opt")
        owned = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        pairs = [(n, p) for n, p in self.net.named_parameters() if p.requires_grad and id(p) in owned]
        self.names = [n for n, _ in pairs]
        self.params = [p for _, p in pairs]
        # One copy for all of this Functional's passes, not one per pass. The passes write running
        # statistics into it, but no output reads them: in train mode BatchNorm normalises with the
        # batch's statistics, and in eval mode it writes nothing. The copy dies with the Functional.
        self.buffers = {n: b.clone() for n, b in self.net.named_buffers()}

    @cached_property
    def step(self) -> SgdStep:
        """The virtual SGD step, built on first use: first_order never takes one (and so accepts any
        weight optimizer), and building it costs a kernel per parameter."""
        return SgdStep(self.optimizer, self.params)

    def __call__(self, params: Sequence[Tensor], x: Tensor) -> Tensor:
        tensors = dict(self.buffers)
        tensors.update(zip(self.names, params))
        args = (x,) if self.space is None else (x, self.space())
        return functional_call(self.net, tensors, args)

    def arch(self) -> list[Tensor]:
        return [] if self.space is None else list(self.space.arch_parameters())


# --------------------------------------------------------------------------- the losses


def pseudo_active(ctx: ArchContext) -> bool:
    return bool(ctx.w_pseudo) and ctx.x_unlabeled is not None


def train_loss(ctx: ArchContext, model: Functional, params: Sequence[Tensor], *, fp32: bool = False) -> Tensor:
    """Stage 1: CE(W(x_tr), y_tr)."""
    with precision(ctx, fp32):
        return F.cross_entropy(model(params, ctx.x_train), ctx.y_train)


def val_loss(ctx: ArchContext, model: Functional, params: Sequence[Tensor]) -> Tensor:
    """Stage 3: CE(V(x_val), y_val)."""
    with ctx.autocast():
        return F.cross_entropy(model(params, ctx.x_val), ctx.y_val)


def stage2(
    ctx: ArchContext,
    model: Functional,
    params: Sequence[Tensor],
    labels: Sequence[tuple[Tensor, Tensor | None]],
    *,
    fp32: bool = False,
) -> Tensor:
    """Stage 2: w_lab·CE(V(x_tr), y_tr) + λ·Σ_j softCE(V(x_u), q_j) (``losses.stage2_loss``)."""
    pseudo = list(labels) if pseudo_active(ctx) else []
    with precision(ctx, fp32):
        if ctx.w_labeled:
            logits_train = model(params, ctx.x_train)
        else:  # ablation 2: no labeled term, and no pass spent on it
            logits_train = torch.zeros((), device=ctx.x_train.device)
        logits_u = model(params, ctx.x_unlabeled) if pseudo else None
        return stage2_loss(logits_train, ctx.y_train, logits_u, pseudo, ctx.w_labeled, ctx.w_pseudo)


# --------------------------------------------------------------------------- second derivatives


def finite_difference(
    inner: Inner, params: Sequence[Tensor], u: Sequence[Tensor], wrt: Sequence[Tensor], r: float
) -> list[Tensor]:
    """∇_wrt(∇_P inner · u) ≈ [∇_wrt inner(P + εu) − ∇_wrt inner(P − εu)] / 2ε, ε = r / ‖u‖ (DARTS).

    With u = ξ·g this is exactly DARTS' ξ·[∇ L(V⁺) − ∇ L(V⁻)] / 2ε with ε = r/‖g‖, V± = V ± εg.
    The perturbation and the norm are computed in float32 (or the parameters' wider dtype), and
    the two passes run outside autocast (``fp32=True``): cast to bf16, most of the perturbed
    weights would round back to the unperturbed value and the difference would measure rounding.
    """
    if not wrt or not params:
        return [torch.zeros_like(t) for t in wrt]
    acc = torch.promote_types(params[0].dtype, torch.float32)
    norm = torch.sqrt(sum((d.detach().to(acc) ** 2).sum() for d in u))
    eps = r / norm.clamp_min(1e-12)  # u = 0 gives P± = P and a zero difference
    plus = [(p.detach().to(acc) + eps * d.detach().to(acc)).to(p.dtype) for p, d in zip(params, u)]
    minus = [(p.detach().to(acc) - eps * d.detach().to(acc)).to(p.dtype) for p, d in zip(params, u)]
    rng = _SameRandomness(params[0].device)
    g_plus = grad(inner(plus, fp32=True), wrt)
    rng.replay()
    g_minus = grad(inner(minus, fp32=True), wrt)
    return [((a.to(acc) - b.to(acc)) / (2 * eps)).to(a.dtype) for a, b in zip(g_plus, g_minus)]


def hessian_vector(inner_grads: Sequence[Tensor], u: Sequence[Tensor], wrt: Sequence[Tensor]) -> list[Tensor]:
    """∇_wrt(∇_P inner · u) exactly, by double backward; ``inner_grads`` were taken with create_graph."""
    h = sum((g * d.detach()).sum() for g, d in zip(inner_grads, u) if g.requires_grad)
    return grad(h, wrt)


def unrolled(
    outer: Tensor,
    stepped: Sequence[Tensor],
    arch: Sequence[Tensor],
    inner: Inner,
    params: Sequence[Tensor],
    step: SgdStep,
    *,
    r: float,
    hessian: Hessian,
    scale: float = 1.0,
    extra: Sequence[Tensor] = (),
    inner_grads: Sequence[Tensor] | None = None,
) -> tuple[list[Tensor], list[Tensor]]:
    """Gradient of ``outer(P', A)`` with ``P' = step(P, ∇_P inner(P; A, extra))``, for A and extra.

    ``stepped`` are P' as leaves (requires_grad) that ``outer`` was computed from. Returns
    (∇_A outer − ∇_A(∇_P inner · u), −∇_extra(∇_P inner · u)) with ``u = s ⊙ ∇_{P'} outer``.
    For ``hvp``, ``inner_grads`` = ∇_P (scale · inner(P)) taken with create_graph (the virtual
    step's own): the double backward runs through the scaled graph, and is divided back here.
    """
    arch, extra = list(arch), list(extra)
    first = unscaled(grad(scaled(outer, scale), arch + list(stepped)), scale)
    direct, g = first[: len(arch)], first[len(arch) :]
    u = step.direction(g)
    wrt = arch + extra
    if hessian == "hvp":
        if inner_grads is None:
            inner_grads = grad(scaled(inner(params), scale), params, create_graph=True)
        mixed = unscaled(hessian_vector(inner_grads, u, wrt), scale)
    elif hessian == "finite_difference":

        def inner_scaled(p: Sequence[Tensor], *, fp32: bool = False) -> Tensor:
            return scaled(inner(p, fp32=fp32), scale)

        mixed = unscaled(finite_difference(inner_scaled, params, u, wrt, r), scale)
    else:
        raise ValueError(f"unknown hessian method {hessian!r}")
    return [d - m for d, m in zip(direct, mixed[: len(arch)])], [-m for m in mixed[len(arch) :]]


# --------------------------------------------------------------------------- the two roles


@dataclass
class Labeler:
    """Learner j's virtual W step and its labels on x_u."""

    name: str
    model: Functional
    targets: Tensor                       # q_j as a leaf (requires_grad when the chain goes through it)
    mask: Tensor | None                   # confidence mask: piecewise constant, never differentiated
    stepped: list[Tensor]                 # W_j' as leaves
    q_graph: Tensor | None = None         # q_j with its graph to W_j' and A_j (full_chain only)
    inner_grads: list[Tensor] | None = None  # ∇_W (scale·CE) with create_graph (full_chain with hvp only)


def labelers_needed(ctx: ArchContext, sources: Sequence[str]) -> list[str]:
    if not pseudo_active(ctx):
        return []
    names: list[str] = []
    for k in sources:
        for j in ctx.peers.get(k, []):
            if j not in names:
                names.append(j)
    return names


def virtual_labels(
    ctx: ArchContext, names: Sequence[str], *, chain: Sequence[str] = (), hessian: Hessian = "finite_difference"
) -> dict[str, Labeler]:
    """q_j = label(W_j'(x_u)) for every j in ``names``; for j in ``chain`` the labels keep their graph."""
    labelers = {}
    for j in names:
        model = Functional(ctx.learners[j], "w")
        keep = j in chain
        loss = scaled(train_loss(ctx, model, model.params), ctx.loss_scale)
        grads = grad(loss, model.params, create_graph=keep and hessian == "hvp")
        stepped = [p.detach().requires_grad_(keep) for p in model.step(model.params, unscaled(grads, ctx.loss_scale))]
        with torch.set_grad_enabled(keep):
            with ctx.autocast():
                logits = model(stepped, ctx.x_unlabeled)
            q, mask = ctx.pseudo_labeler.label(logits)
        keep = keep and q.requires_grad  # hard labels carry no gradient: no chain through them
        # The leaf the V steps see: at least as wide as the logits, so float64 problems stay float64.
        dtype = torch.promote_types(q.dtype, logits.dtype)
        targets = q.detach().to(dtype).requires_grad_(keep)
        labelers[j] = Labeler(
            name=j,
            model=model,
            targets=targets,
            mask=None if mask is None else mask.detach(),
            stepped=stepped,
            q_graph=q if keep else None,
            inner_grads=grads if keep and hessian == "hvp" else None,
        )
    return labelers


def source_term(
    ctx: ArchContext, k: str, labelers: dict[str, Labeler], *, r: float, hessian: Hessian, chain: Sequence[str] = ()
) -> tuple[list[Tensor] | None, dict[str, Tensor]]:
    """Learner k's validation loss through its virtual V step.

    Returns (DARTS' gradient for A_k, or None for a fixed learner; {j: c_kj}) where
    ``c_kj = (∂V_k'/∂q_j)ᵀ ∇_{V'} L_val,k``, the cotangent on q_j, for every j in ``chain``.
    """
    learner = ctx.learners[k]
    model = Functional(learner, "v")
    labels = [(labelers[j].targets, labelers[j].mask) for j in ctx.peers.get(k, []) if j in labelers]
    extra = [labelers[j].targets for j in chain]

    def inner(params: Sequence[Tensor], *, fp32: bool = False) -> Tensor:
        return stage2(ctx, model, params, labels, fp32=fp32)

    grads = grad(scaled(inner(model.params), ctx.loss_scale), model.params, create_graph=hessian == "hvp")
    stepped = [p.detach().requires_grad_() for p in model.step(model.params, unscaled(grads, ctx.loss_scale))]
    outer = val_loss(ctx, model, stepped)
    g_arch, g_extra = unrolled(
        outer, stepped, model.arch(), inner, model.params, model.step, r=r, hessian=hessian,
        scale=ctx.loss_scale, extra=extra, inner_grads=grads if hessian == "hvp" else None,
    )
    return (g_arch if learner.space is not None else None), dict(zip(chain, g_extra))


def labeler_term(ctx: ArchContext, lab: Labeler, cotangent: Tensor, *, r: float, hessian: Hessian) -> list[Tensor]:
    """d/dA_j ⟨c_j, q_j(W_j'(A_j), A_j)⟩: the pseudo-label path's gradient for labeler j's architecture."""
    assert lab.q_graph is not None
    phi = (cotangent.detach() * lab.q_graph).sum()

    def inner(params: Sequence[Tensor], *, fp32: bool = False) -> Tensor:
        return train_loss(ctx, lab.model, params, fp32=fp32)

    g_arch, _ = unrolled(
        phi, lab.stepped, lab.model.arch(), inner, lab.model.params, lab.model.step,
        r=r, hessian=hessian, scale=ctx.loss_scale, inner_grads=lab.inner_grads,
    )
    return g_arch
