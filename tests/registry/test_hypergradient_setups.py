"""Architecture-gradient methods on the setups a spec can ask for (issues #10, #13).

A non-SGD weight optimizer, the cost of the functional networks (results pinned bit for bit),
finite differences under bf16 autocast, ``running_stats: update``, and the executor's loss scale.
The groups are built by ``conftest.make_group``.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import hashlib
import os
import sys
from pathlib import Path

if __name__ == "__main__":  # recording (below): conftest is in tests/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from conftest import assert_same_state, compare, make_group, real_space, snapshot, wrap_group
from sgl.registry.hypergrad import DartsUnrolledConfig, ExactConfig, FirstOrderConfig, FullChainConfig, virtual_step
from sgl.registry.hypergrad.exact import exact
from sgl.registry.hypergrad.first_order import first_order
from sgl.registry.hypergrad.full_chain import full_chain
from sgl.registry.hypergrad.unrolled import darts_unrolled
from sgl.registry.hypergrad.virtual_step import Functional, finite_difference, stage2
from sgl.registry.optim import AdamConfig, SGDConfig


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def darts_group(**kw):
    """Two tiny real DARTS supernets (ReLU, max-pool, BatchNorm), float32, and one fixed learner."""
    return make_group(build=real_space("darts"), dtype=torch.float32, **kw)


@pytest.fixture
def one_thread():
    """float32 CPU kernels reduce in a thread-count-dependent order: pin it for bitwise comparisons."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- 1. any weight optimizer


def _with_adam(ctx):
    """The same group with Adam on W and V, one real Adam step taken (so it has state)."""
    learners = {}
    for k, lv in ctx.learners.items():
        opts = {}
        for tag in ("w", "v"):
            net = getattr(lv, f"{tag}_net")
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            arch = None if lv.space is None else {n: t.detach() for n, t in lv.space().items()}
            F.cross_entropy(net(ctx.x_train) if arch is None else net(ctx.x_train, arch), ctx.y_train).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            opts[f"{tag}_opt"] = opt
        learners[k] = dataclasses.replace(lv, **opts)
    return dataclasses.replace(ctx, learners=learners)


def test_first_order_with_adam_weights():
    ctx = _with_adam(make_group(fixed=1))
    before = snapshot(ctx)
    got = FirstOrderConfig().compute(ctx)
    assert_same_state(before, snapshot(ctx))
    for k in ctx.targets:
        lv = ctx.learners[k]
        reference = copy.deepcopy(lv.v_net)
        loss = F.cross_entropy(reference(ctx.x_val, lv.space()), ctx.y_val)
        for a, b in zip(got[k], torch.autograd.grad(loss, lv.space.arch_parameters())):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("config", [DartsUnrolledConfig(), FullChainConfig(hessian="hvp"), ExactConfig(chain=False)])
def test_virtual_step_methods_refuse_a_non_sgd_weight_optimizer(config):
    problems = config.check(AdamConfig())
    assert len(problems) == 1 and config.method in problems[0] and "adam" in problems[0], problems
    assert config.check(SGDConfig()) == []
    # the runtime backstop, for a caller that skipped the planner
    with pytest.raises(TypeError, match="optim.weights: sgd"):
        config.compute(_with_adam(make_group()))


def test_first_order_accepts_any_weight_optimizer():
    assert FirstOrderConfig().check(AdamConfig()) == []
    assert FirstOrderConfig(running_stats="update").check(AdamConfig()) == []


# --------------------------------------------------------------------------- 2. cost, results unchanged

#: sha256[:16] of every method's gradients are in tests/digests/<CPU kind>.json ("hypergradients"),
#: first recorded at b1ab17b (before the buffers were copied once per network and the virtual step
#: built lazily), on one CPU thread: ``python tests/registry/test_hypergradient_setups.py --write`` records them.
#: The finite-difference rows under bf16 are absent on purpose: they changed when the
#: finite-difference passes left autocast (fix 3).
CASES = ["standin_f64 first_order", "standin_f64 darts_unrolled/fd", "standin_f64 darts_unrolled/hvp",
         "standin_f64 full_chain/fd", "standin_f64 full_chain/hvp", "standin_f64 exact",
         "darts_f32 first_order", "darts_f32 darts_unrolled/fd", "darts_f32 darts_unrolled/hvp",
         "darts_f32 full_chain/fd", "darts_f32 full_chain/hvp", "darts_f32 exact",
         "darts_f32_bf16 first_order", "darts_f32_bf16 darts_unrolled/hvp", "darts_f32_bf16 full_chain/hvp",
         "darts_f32_bf16 exact"]

SETUPS = {
    "standin_f64": lambda: make_group(fixed=1),
    "darts_f32": lambda: darts_group(fixed=1),
    "darts_f32_bf16": lambda: darts_group(fixed=1, autocast=bf16),
}

RUNS = {
    "first_order": first_order,
    "darts_unrolled/fd": lambda c: darts_unrolled(c, hessian="finite_difference"),
    "darts_unrolled/hvp": lambda c: darts_unrolled(c, hessian="hvp"),
    "full_chain/fd": lambda c: full_chain(c, hessian="finite_difference"),
    "full_chain/hvp": lambda c: full_chain(c, hessian="hvp"),
    "exact": lambda c: exact(c, chain=True),
}


def digest(grads: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(grads):
        for t in grads[k]:
            t = t.detach().cpu().contiguous()
            h.update(f"{k}{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("case", sorted(CASES))
def test_results_are_bit_identical_to_the_recorded_ones(case, one_thread, recorded_digests):
    recorded = recorded_digests("hypergradients", case)
    setup, method = case.split(" ")
    assert digest(RUNS[method](SETUPS[setup]())) == recorded


class _Clones(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") == "clone":
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_buffers_are_copied_once_per_network():
    """darts_unrolled/fd runs each V 5 times and each W once: 4 networks, 4 copies of their buffers
    (it made 18 copies before: one per forward)."""
    ctx = darts_group()
    per_net = sum(1 for _ in ctx.learners["l0"].v_net.named_buffers())
    with _Clones() as clones:
        darts_unrolled(ctx, hessian="finite_difference")
    assert clones.count == 4 * per_net, (clones.count, per_net)


# --------------------------------------------------------------------------- 3. finite differences under autocast


def test_finite_difference_passes_run_outside_autocast():
    """Same P, same u: the finite difference under a bf16 ctx is the float32 one, bit for bit."""
    results = []
    for autocast in (None, bf16):
        ctx = darts_group(lam=0.0, **({"autocast": autocast} if autocast else {}))
        model = Functional(ctx.learners["l0"], "v")
        g = torch.Generator().manual_seed(5)
        u = [torch.randn(p.shape, generator=g) for p in model.params]

        def inner(params, *, fp32=False, ctx=ctx, model=model):
            return stage2(ctx, model, params, [], fp32=fp32)

        results.append(finite_difference(inner, model.params, u, model.arch(), r=0.01))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def _second_order_part(ctx, hessian: str) -> dict[str, list[torch.Tensor]]:
    """The mixed products ∇_A(∇_V L2 · u) darts_unrolled computes, caught on their way out."""
    caught = []
    chosen = "finite_difference" if hessian == "finite_difference" else "hessian_vector"
    original = getattr(virtual_step, chosen)

    def catch(*args, **kwargs):
        out = original(*args, **kwargs)
        caught.append(out)
        return out

    setattr(virtual_step, chosen, catch)
    try:
        darts_unrolled(ctx, hessian=hessian)
    finally:
        setattr(virtual_step, chosen, original)
    return {"mixed": [t for out in caught for t in out]}


#: Measured (seed 0, r = 0.01): 0.977 with the passes in float32; 0.354 when they ran under bf16
#: autocast (before the fix). hvp, whose passes stay in bf16, measures 0.978.
BF16_COSINE_MIN = 0.9


@pytest.mark.parametrize("hessian", ["finite_difference", "hvp"])
def test_bf16_second_order_part_agrees_with_float32(hessian):
    """The bf16 run differs from the float32 one only through the bf16 passes at V and V' (u, V')."""
    want = _second_order_part(darts_group(), hessian)
    got = _second_order_part(darts_group(autocast=bf16), hessian)
    cos, rel = compare(got, want)
    line = f"bf16 vs float32, second-order part of darts_unrolled/{hessian}: cosine={cos:.4f} relative_error={rel:.3e}"
    print("\n" + line)
    assert cos >= BF16_COSINE_MIN, line


# --------------------------------------------------------------------------- 4. running_stats


def _buffers(net: nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.detach().clone() for n, b in net.named_buffers()}


def _reference_statistics(ctx) -> dict[str, dict[str, torch.Tensor]]:
    """Every target's V buffers after ``v_net.train(); v_net(x_val, arch)`` on a copy."""
    out = {}
    for k in ctx.targets:
        lv = ctx.learners[k]
        reference = copy.deepcopy(lv.v_net).train()
        with torch.no_grad(), ctx.autocast():
            reference(ctx.x_val, lv.space())
        out[k] = _buffers(reference)
    return out


def _assert_only_v_statistics_moved(ctx, before: dict, want: dict) -> None:
    """Targets' V buffers equal the reference; every other piece of state is as it was."""
    after = snapshot(ctx)
    for k in ctx.targets:
        got = _buffers(ctx.learners[k].v_net)
        assert got.keys() == want[k].keys()
        assert any(not torch.equal(before[f"{k}.v.{n}"], want[k][n]) for n in got), "the reference moved nothing"
        for name in got:
            assert torch.equal(got[name], want[k][name]), f"{k}.v.{name}"
            before[f"{k}.v.{name}"] = after[f"{k}.v.{name}"]
    assert_same_state(before, after)


CONFIGS = {
    "first_order": lambda stats: FirstOrderConfig(running_stats=stats),
    "darts_unrolled/fd": lambda stats: DartsUnrolledConfig(running_stats=stats),
    "darts_unrolled/hvp": lambda stats: DartsUnrolledConfig(running_stats=stats, hessian="hvp"),
    "full_chain/fd": lambda stats: FullChainConfig(running_stats=stats),
    "exact": lambda stats: ExactConfig(running_stats=stats),
}


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_running_stats_update_moves_v_statistics_as_one_forward(method):
    """update: the targets' V statistics as after one train-mode forward on x_val (the fixed learner's
    V, the W networks and everything else untouched), and the same gradients as keep, bit for bit."""
    kept = CONFIGS[method]("keep").compute(darts_group(fixed=1))
    ctx = darts_group(fixed=1)
    before, want = snapshot(ctx), _reference_statistics(ctx)
    counted = {k: _buffers(ctx.learners[k].v_net) for k in ctx.targets}
    updated = CONFIGS[method]("update").compute(ctx)
    _assert_only_v_statistics_moved(ctx, before, want)
    for k in ctx.targets:
        assert all(torch.equal(a, b) for a, b in zip(updated[k], kept[k])), k
    for k in ctx.targets:  # and num_batches_tracked counted exactly one batch
        for name, b in ctx.learners[k].v_net.named_buffers():
            if name.endswith("num_batches_tracked"):
                assert int(b) == int(counted[k][name]) + 1, f"{k}.v.{name}"


def test_running_stats_update_under_autocast():
    ctx = darts_group(autocast=bf16)
    before, want = snapshot(ctx), _reference_statistics(ctx)
    FirstOrderConfig(running_stats="update").compute(ctx)
    _assert_only_v_statistics_moved(ctx, before, want)


def test_running_stats_default_and_passes():
    for cfg in (FirstOrderConfig(), DartsUnrolledConfig(), FullChainConfig(), ExactConfig()):
        assert cfg.running_stats == "keep"
    assert FirstOrderConfig(running_stats="update").passes(1) == FirstOrderConfig().passes(1)
    for cls in (DartsUnrolledConfig, FullChainConfig, ExactConfig):
        keep, update = cls().passes(1), cls(running_stats="update").passes(1)
        assert update == {"forward": keep["forward"] + 1, "backward": keep["backward"]}, cls
    with pytest.raises(ValueError):
        FirstOrderConfig(running_stats="updated")


def _ddp_stats_worker(rank: int, world: int, rendezvous: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        ctx = wrap_group(make_group(seed=rank), nn.parallel.DistributedDataParallel)
        if rank == 0:
            # rank 1 sits at the barrier: a buffer broadcast (DDP's forward) would time out here
            for cfg in (FirstOrderConfig(running_stats="update"), DartsUnrolledConfig(running_stats="update", hessian="hvp")):
                want = {k: _reference_statistics_of(ctx, k) for k in ctx.targets}
                cfg.compute(ctx)
                for k in ctx.targets:
                    got = _buffers(ctx.learners[k].v_net.module)
                    assert all(torch.equal(got[n], want[k][n]) for n in got), (cfg.method, k)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    os._exit(0)  # as test_hypergradients._ddp_worker: skip gloo's teardown at exit


def _reference_statistics_of(ctx, k):
    lv = ctx.learners[k]
    reference = copy.deepcopy(lv.v_net.module).train()
    with torch.no_grad():
        reference(ctx.x_val, lv.space())
    return _buffers(reference)


def test_running_stats_update_with_ddp_networks_makes_no_collective(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_stats_worker, args=(2, str(tmp_path / "rendezvous")), nprocs=2, join=True)


# --------------------------------------------------------------------------- 5. loss scale


@pytest.mark.parametrize("method", sorted(RUNS))
def test_loss_scale_is_divided_out(method):
    """float32: s = 2**16 returns the gradients of s = 1 (to float rounding); an s that overflows
    float32 shows as non-finite gradients (so a GradScaler would skip the step)."""
    want = RUNS[method](darts_group())
    got = RUNS[method](dataclasses.replace(darts_group(), loss_scale=2.0**16))
    cos, rel = compare(got, want)
    line = f"loss_scale 2**16 vs 1, {method}: relative_error={rel:.3e}"
    print("\n" + line)
    assert rel <= 1e-5, line
    overflow = RUNS[method](dataclasses.replace(make_group(dtype=torch.float32), loss_scale=2.0**200))
    assert not all(torch.isfinite(t).all() for g in overflow.values() for t in g), method


def test_loss_scale_reaches_the_backward_passes(monkeypatch):
    """Every differentiated loss is multiplied by the scale: the gradients autograd returns are s times larger."""
    import sgl.registry.hypergrad.first_order as first_order_module

    original = virtual_step.grad
    runs = {}
    for s in (1.0, 2.0**16):
        seen: list[float] = []

        def spy(output, inputs, seen=seen, **kw):
            out = original(output, inputs, **kw)
            seen.append(max(float(g.detach().abs().max()) for g in out) if out else 0.0)
            return out

        # darts_unrolled looks `grad` up in virtual_step; first_order imported its own name
        monkeypatch.setattr(virtual_step, "grad", spy)
        monkeypatch.setattr(first_order_module, "grad", spy)
        darts_unrolled(dataclasses.replace(darts_group(), loss_scale=s), hessian="hvp")
        first_order(dataclasses.replace(darts_group(), loss_scale=s))
        runs[s] = seen
    assert len(runs[1.0]) == len(runs[2.0**16]) > 0
    for a, b in zip(runs[1.0], runs[2.0**16]):
        assert b == pytest.approx(a * 2.0**16, rel=1e-3), (a, b)


if __name__ == "__main__":  # record: python tests/registry/test_hypergradient_setups.py [--write]
    torch.set_num_threads(1)
    values = {case: digest(RUNS[case.split(" ")[1]](SETUPS[case.split(" ")[0]]())) for case in CASES}
    for key, value in values.items():
        print(f'    "{key}": "{value}",')
    if "--write" in sys.argv:
        from conftest import write_digests

        print("wrote", write_digests("hypergradients", values))
