"""The fused supernet (edge and learner batching) computes what the K plain supernets compute.

Every check builds K plain networks with random weights, random BN buffers and random, distinct
architectures, fuses them, and runs both on the same batch: logits, every parameter gradient, the
α/β gradients and the BN buffers after the forward must agree (float64: to 1e-10).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from sgl.registry.spaces import DartsConfig, PCDartsConfig, PDartsConfig, PDartsPhase
from sgl.registry.spaces.supernet import SkipDropout
from sgl.registry.spaces.fused import FusedDartsNetwork
from sgl.registry.spaces.fused_conv import depthwise_conv
from sgl.registry.spaces.p_darts import set_skip_dropout
from sgl.registry.task import Task

DIGITS = Task(num_classes=10, in_channels=1, image_size=8)


def pdarts_config(skip_dropout: float = 0.0) -> PDartsConfig:
    phases = [
        PDartsPhase(layers=2, ops=8, skip_dropout=skip_dropout),
        PDartsPhase(layers=3, ops=3, skip_dropout=skip_dropout),
    ]
    return PDartsConfig(channels=4, nodes=3, phases=phases)


CONFIGS = {
    "darts": lambda: DartsConfig(channels=4, layers=3, nodes=3),
    "pc_darts": lambda: PCDartsConfig(channels=8, layers=3, nodes=3, partial_channels=4),
    "pc_darts_no_beta": lambda: PCDartsConfig(channels=8, layers=3, nodes=3, partial_channels=2, edge_normalization=False),
    "p_darts_phase_1": pdarts_config,
}


def randomize(net: nn.Module, space: nn.Module) -> None:
    """Weights, BN buffers and counters, arch weights: all random, so a mix-up cannot go unseen."""
    with torch.no_grad():
        for p in space.parameters():
            p.normal_()
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(int(torch.randint(0, 100, ())))
                if m.affine:
                    m.weight.normal_()
                    m.bias.normal_()


def learners(kind: str, K: int, seed: int = 0, dtype=torch.float64, task: Task = DIGITS):
    torch.manual_seed(seed)
    spaces, nets = [], []
    for _ in range(K):
        space = CONFIGS[kind]().build(task).to(dtype)
        if kind.startswith("p_darts"):
            with torch.no_grad():
                for p in space.parameters():
                    p.normal_()
            space.enter_phase(1)
        net = space.new_network().to(dtype)
        randomize(net, space)
        spaces.append(space)
        nets.append(net)
    return spaces, nets


def batch(n: int = 6, dtype=torch.float64, task: Task = DIGITS, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, task.in_channels, task.image_size, task.image_size, generator=g, dtype=dtype)
    return x, torch.arange(n) % task.num_classes


def plain_step(spaces, nets, x, y):
    for s in spaces:
        s.zero_grad()
    logits = [net(x, s()) for s, net in zip(spaces, nets)]
    sum(F.cross_entropy(z, y) for z in logits).backward()
    arch_grads = [[torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in s.parameters()] for s in spaces]
    return torch.stack(logits).detach(), arch_grads


def fused_step(spaces, fused, x, y):
    for s in spaces:
        s.zero_grad()
    logits = fused(x, [s() for s in spaces])
    sum(F.cross_entropy(z, y) for z in logits).backward()
    arch_grads = [[torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in s.parameters()] for s in spaces]
    return logits.detach(), arch_grads


def assert_same(spaces, nets, fused, x, y, atol: float, rtol: float = 0.0) -> None:
    fused_logits, fused_arch = fused_step(spaces, fused, x, y)
    plain_logits, plain_arch = plain_step(spaces, nets, x, y)
    torch.testing.assert_close(fused_logits, plain_logits, atol=atol, rtol=rtol)
    for k, net in enumerate(nets):
        for a, b in zip(fused_arch[k], plain_arch[k]):
            torch.testing.assert_close(a, b, atol=atol, rtol=rtol)
        grads = fused.learner_grads(k)
        named = dict(net.named_parameters())
        assert set(grads) == set(named)
        for name, p in named.items():
            torch.testing.assert_close(grads[name], p.grad, atol=atol, rtol=rtol, msg=lambda m: f"learner {k} {name}: {m}")
        exported = fused.learner_state_dict(k)
        assert list(exported) == list(net.state_dict())
        for name, value in net.state_dict().items():  # BN running stats and counters after the forward
            torch.testing.assert_close(exported[name], value, atol=atol, rtol=rtol, msg=lambda m: f"learner {k} {name}: {m}")


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("K", [1, 2])
@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_fused_equals_plain_in_float64(kind: str, K: int, train: bool) -> None:
    spaces, nets = learners(kind, K)
    for net in nets:
        net.train(train)
    fused = FusedDartsNetwork.from_networks(nets)
    assert fused.training is train
    assert_same(spaces, nets, fused, *batch(), atol=1e-10)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_rewritten_depthwise_convs_equal_plain(kind: str) -> None:
    # float64 would take the direct convs; force fused_conv's rewrites (8 → 4 → 2 pixels: the
    # polyphase, channels-last and cropped-kernel paths all run).
    spaces, nets = learners(kind, 2, seed=2)
    fused = FusedDartsNetwork.from_networks(nets, depthwise=True)
    assert_same(spaces, nets, fused, *batch(), atol=1e-10)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k,dilation", [(3, 1), (5, 1), (3, 2), (5, 2)])
def test_depthwise_rewrites_are_exact(k: int, dilation: int, stride: int) -> None:
    padding = dilation * (k - 1) // 2
    for size in range(1, 10):
        x = torch.randn(3, 4, size, size + 1, dtype=torch.float64, requires_grad=True)
        w = torch.randn(4, 1, k, k, dtype=torch.float64, requires_grad=True)
        direct = F.conv2d(x, w, None, stride, padding, dilation, 4)
        rewritten = depthwise_conv(x, w, stride, padding, dilation, rewrite=True)
        g = torch.randn_like(direct)
        torch.testing.assert_close(rewritten, direct, atol=1e-12, rtol=0)
        for a, b in zip(torch.autograd.grad(rewritten, (x, w), g), torch.autograd.grad(direct, (x, w), g)):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


UNUSUAL = {
    "only_none": lambda: DartsConfig(channels=4, layers=3, nodes=2, primitives=["none"]),
    "only_skip": lambda: DartsConfig(channels=4, layers=3, nodes=2, primitives=["skip_connect"]),
    "one_node_pool_and_none": lambda: DartsConfig(channels=4, layers=3, nodes=1, primitives=["none", "max_pool_3x3"]),
    "single_reduction_cell": lambda: DartsConfig(channels=4, layers=1, nodes=2),
    "one_channel_per_part": lambda: PCDartsConfig(channels=4, layers=2, nodes=2, partial_channels=4),
}


@pytest.mark.parametrize("kind", sorted(UNUSUAL))
def test_unusual_configurations(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CONFIGS, kind, UNUSUAL[kind])
    spaces, nets = learners(kind, 2)
    fused = FusedDartsNetwork.from_networks(nets, depthwise=True)
    assert_same(spaces, nets, fused, *batch(), atol=1e-10)


def test_p_darts_learners_keep_different_ops_and_still_fuse() -> None:
    # The point of the P-DARTS case: after pruning, learners' edges offer different op subsets.
    spaces, _ = learners("p_darts_phase_1", 2)
    assert spaces[0].kept_ops("normal") != spaces[1].kept_ops("normal")
    assert all(len(ops) == 3 for ops in spaces[0].kept_ops("normal"))


def test_three_learners_and_a_second_step() -> None:
    spaces, nets = learners("darts", 3, seed=5)
    fused = FusedDartsNetwork.from_networks(nets)
    x, y = batch(5)
    assert_same(spaces, nets, fused, x, y, atol=1e-10)
    # Running statistics carried over from the first forward keep agreeing.
    assert_same(spaces, nets, fused, x.flip(0), y, atol=1e-10)


@pytest.mark.parametrize("kind", ["darts", "pc_darts", "p_darts_phase_1"])
def test_odd_spatial_size(kind: str) -> None:
    task = Task(num_classes=5, in_channels=3, image_size=7)  # 7 → 4 → 2 through the reductions
    spaces, nets = learners(kind, 2, task=task)
    fused = FusedDartsNetwork.from_networks(nets, depthwise=True)
    assert_same(spaces, nets, fused, *batch(4, task=task), atol=1e-10)


def test_float32_within_tolerance() -> None:
    # float32 sums in another order: measured differences are at most 1e-6 (5e-6 of a tensor's
    # largest entry); the bound leaves a tenfold margin.
    for kind in ("darts", "pc_darts", "p_darts_phase_1"):
        spaces, nets = learners(kind, 2, dtype=torch.float32)
        fused = FusedDartsNetwork.from_networks(nets)
        assert_same(spaces, nets, fused, *batch(16, dtype=torch.float32), atol=1e-5, rtol=1e-5)


def test_state_dict_round_trip_is_exact() -> None:
    spaces, nets = learners("pc_darts", 2)
    fused = FusedDartsNetwork.from_networks(nets)
    fresh = [s.new_network().double() for s in spaces]
    fused.write_back(fresh)
    for net, copy in zip(nets, fresh):
        original, back = net.state_dict(), copy.state_dict()
        assert list(original) == list(back)
        for key in original:
            assert torch.equal(original[key], back[key]), key
    # A plain state dict in, the same out.
    fused.load_learner_state_dict(1, nets[0].state_dict())
    assert all(torch.equal(a, b) for a, b in zip(fused.learner_state_dict(1).values(), nets[0].state_dict().values()))
    with pytest.raises(ValueError, match="missing"):
        fused.load_learner_state_dict(0, {k: v for k, v in nets[0].state_dict().items() if "stem" not in k})


@pytest.mark.parametrize("max_norm", [0.05, 1e6])
def test_learner_grad_norms_and_clipping_match_clip_grad_norm(max_norm: float) -> None:
    spaces, nets = learners("darts", 2, seed=3)
    fused = FusedDartsNetwork.from_networks(nets)
    x, y = batch()
    fused_step(spaces, fused, x, y)
    plain_step(spaces, nets, x, y)
    plain_norms = torch.stack([nn.utils.clip_grad_norm_(net.parameters(), max_norm) for net in nets])
    torch.testing.assert_close(fused.learner_grad_norms(), plain_norms, atol=1e-10, rtol=0)
    assert plain_norms[0] != plain_norms[1]
    torch.testing.assert_close(fused.clip_learner_grad_norms_(max_norm), plain_norms, atol=1e-10, rtol=0)
    for k, net in enumerate(nets):
        grads = fused.learner_grads(k)
        for name, p in net.named_parameters():
            torch.testing.assert_close(grads[name], p.grad, atol=1e-12, rtol=0)


def test_per_learner_values_spread_over_each_learners_slices() -> None:
    spaces, nets = learners("pc_darts", 3, seed=6)
    fused = FusedDartsNetwork.from_networks(nets)
    values = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    with torch.no_grad():
        for p in fused.parameters():
            p.mul_(fused.per_learner(p, values))
    for k, net in enumerate(nets):
        exported = fused.learner_state_dict(k)
        for name, p in net.named_parameters():
            assert torch.equal(exported[name], p.detach() * values[k]), name
    # learner_norms of any parameter-shaped tensors: here the weights themselves.
    flat = [torch.cat([p.detach().flatten() for p in net.parameters()]) for net in nets]
    expected = torch.stack([f.norm() * values[k].abs() for k, f in enumerate(flat)])
    torch.testing.assert_close(fused.learner_norms(lambda p: p.detach()), expected, atol=1e-10, rtol=1e-12)


OPTIMISERS = {
    "sgd": (lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=3e-4), "momentum_buffer"),
    "adam": (lambda params: torch.optim.Adam(params, lr=1e-2, betas=(0.5, 0.999), weight_decay=1e-3), "exp_avg_sq"),
}


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_one_optimiser_over_fused_parameters_equals_per_learner_optimisers(name: str) -> None:
    make, state_key = OPTIMISERS[name]
    spaces, nets = learners("pc_darts", 2, seed=4)
    fused = FusedDartsNetwork.from_networks(nets)
    fused_opt = make(fused.parameters())
    plain_opts = [make(net.parameters()) for net in nets]
    x, y = batch()
    for step in range(2):  # the second step uses the optimiser state
        fused.zero_grad()
        fused_step(spaces, fused, x, y)
        fused.clip_learner_grad_norms_(5.0)
        fused_opt.step()
        for net, opt in zip(nets, plain_opts):
            opt.zero_grad()
        plain_step(spaces, nets, x, y)
        for net, opt in zip(nets, plain_opts):
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
    for k, (net, opt) in enumerate(zip(nets, plain_opts)):
        exported = fused.learner_state_dict(k)
        for key, value in net.state_dict().items():
            torch.testing.assert_close(exported[key], value, atol=1e-10, rtol=0, msg=lambda m: f"{key}: {m}")
        # The optimiser state, too, reads out (and back in) per learner under plain names.
        state = fused.learner_tensors(k, lambda p: fused_opt.state[p][state_key])
        for key, p in net.named_parameters():
            torch.testing.assert_close(state[key], opt.state[p][state_key], atol=1e-10, rtol=0)
        fused.load_learner_tensors(k, {key: torch.zeros_like(v) for key, v in state.items()}, lambda p: fused_opt.state[p][state_key])
        assert all(v.abs().sum() == 0 for v in fused.learner_tensors(k, lambda p: fused_opt.state[p][state_key]).values())


def test_skip_dropout_draws_per_element_and_follows_set_skip_dropout() -> None:
    p = 0.5
    torch.manual_seed(0)
    spaces = [pdarts_config(skip_dropout=p).build(DIGITS).double() for _ in range(2)]
    nets = [s.new_network().double() for s in spaces]  # phase 0: skip_connect on every edge
    fused = FusedDartsNetwork.from_networks(nets)
    dropouts = [m for m in fused.modules() if isinstance(m, SkipDropout)]
    assert dropouts and all(d.p == p for d in dropouts)
    seen = []
    hooks = [d.register_forward_hook(lambda mod, inp, out: seen.append((inp[0], out))) for d in dropouts]
    x, _ = batch()
    archs = [s() for s in spaces]
    with torch.no_grad():
        fused(x, archs)
        assert seen
        kept = torch.cat([(out != 0).flatten() for _, out in seen]).double()
        assert abs(kept.mean().item() - (1 - p)) < 0.05
        for inp, out in seen:
            nz = out != 0
            torch.testing.assert_close(out[nz], inp[nz] / (1 - p))
        # Off (rate 0, or eval mode): the fused net is the plain one exactly.
        set_skip_dropout(fused, 0.0)
        for net in nets:
            set_skip_dropout(net, 0.0)
        seen.clear()
        torch.testing.assert_close(fused(x, archs), torch.stack([n(x, a) for n, a in zip(nets, archs)]), atol=1e-10, rtol=0)
        assert not seen
    for h in hooks:
        h.remove()


class CountConvs(TorchFunctionMode):
    """Counts conv calls (the fused pointwise convs are batched matmuls)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func in (F.conv2d, torch.matmul):
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_fused_runs_fewer_convolutions_and_none_is_skipped() -> None:
    spaces, nets = learners("darts", 2)
    fused = FusedDartsNetwork.from_networks(nets, depthwise=False)
    x, _ = batch()
    with torch.no_grad(), CountConvs() as fused_calls:
        fused(x, [s() for s in spaces])
    # Per wave: 2 sep convs (2 depthwise + 2 pointwise each) + 2 dil convs (1 + 1), and the
    # stride-2 skip (one conv for both halves) in a reduction cell's first wave; per cell the two
    # preprocessings; one stem. `none` has no module and no call.
    cells = fused.cells
    expected = 1 + sum(2 + c.nodes * 12 + (1 if c.reduction else 0) for c in cells)
    assert fused_calls.count == expected
    assert all("none" not in ops for c in cells for ops in c.waves)
    with torch.no_grad(), CountConvs() as plain_calls:
        for s, n in zip(spaces, nets):
            n(x, s())
    assert plain_calls.count > 4 * fused_calls.count


def test_refuses_networks_of_different_structure() -> None:
    _, darts = learners("darts", 1)
    pc = PCDartsConfig(channels=4, layers=3, nodes=3, partial_channels=2).build(DIGITS).new_network().double()
    with pytest.raises(ValueError, match="partial-channel"):
        FusedDartsNetwork([darts[0], pc])
    deeper = DartsConfig(channels=4, layers=4, nodes=3).build(DIGITS).new_network().double()
    with pytest.raises(ValueError, match="depths"):
        FusedDartsNetwork([darts[0], deeper])
    spaces, nets = learners("darts", 2)
    fused = FusedDartsNetwork.from_networks(nets)
    with pytest.raises(ValueError, match="2 architecture dicts"):
        fused(batch()[0], [spaces[0]()])
