"""DARTS, PC-DARTS and P-DARTS search spaces: supernet shapes, shared α, gradients, pruning, genotypes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sgl.registry.spaces import DartsConfig, PCDartsConfig, PDartsConfig, PDartsPhase
from sgl.registry.spaces.supernet import DartsNetwork, MixedOp, SkipDropout
from sgl.registry.spaces.genotype import Genotype
from sgl.registry.spaces.p_darts import PDartsSpace, limit_skip_connect, prune_ops, set_skip_dropout
from sgl.registry.spaces.partial import PartialMixedOp, channel_shuffle, node_softmax
from sgl.registry.task import Task

DIGITS = Task(num_classes=10, in_channels=1, image_size=8)

PHASES = [
    PDartsPhase(layers=3, ops=8, skip_dropout=0.1),
    PDartsPhase(layers=4, ops=4, skip_dropout=0.4),
    PDartsPhase(layers=5, ops=1, skip_dropout=0.7),
]


def make_config(kind: str, **kw):
    kw.setdefault("channels", 4)
    if kind == "darts":
        return DartsConfig(**kw)
    if kind == "pc_darts":
        return PCDartsConfig(**kw)
    layers = kw.pop("layers", 3)
    phases = [PDartsPhase(layers=layers, ops=8, skip_dropout=0.1), *PHASES[1:]]
    return PDartsConfig(phases=kw.pop("phases", phases), **kw)


KINDS = ["darts", "pc_darts", "p_darts"]


def loss_of(space, net, x: torch.Tensor) -> torch.Tensor:
    # Cross-entropy, not a plain sum: with batch-statistics BN everywhere the batch sum of the
    # logits hardly depends on α, which would hide a broken gradient path.
    labels = torch.arange(x.shape[0]) % 10
    return F.cross_entropy(net(x, space()), labels)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers,nodes", [(3, 2), (5, 4), (5, 3)])
def test_supernet_output_and_cells_on_8x8(kind: str, layers: int, nodes: int) -> None:
    torch.manual_seed(0)
    space = make_config(kind, layers=layers, nodes=nodes).build(DIGITS)
    net = space.new_network()
    assert isinstance(net, DartsNetwork)
    assert len(net.cells) == layers
    assert [c.reduction for c in net.cells].count(True) == 2
    assert {c.cell_type for c in net.cells} == {"normal", "reduce"}
    assert all(len(c.edges) == nodes * (nodes + 3) // 2 for c in net.cells)
    out = net(torch.randn(3, 1, 8, 8), space())
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("task,size", [(Task(10, 1, 9), 9), (Task(7, 3, 32), 32)])
def test_supernet_on_odd_and_colour_inputs(kind: str, task: Task, size: int) -> None:
    torch.manual_seed(0)
    space = make_config(kind, layers=3, nodes=2).build(task)
    out = space.new_network()(torch.randn(2, task.in_channels, size, size), space())
    assert out.shape == (2, task.num_classes)


@pytest.mark.parametrize("nodes,edges", [(2, 5), (4, 14)])
def test_architecture_parameter_shapes(nodes: int, edges: int) -> None:
    darts = make_config("darts", nodes=nodes).build(DIGITS)
    assert dict((n, tuple(p.shape)) for n, p in darts.named_parameters()) == {
        "alphas_normal": (edges, 8),
        "alphas_reduce": (edges, 8),
    }
    pc = make_config("pc_darts", nodes=nodes).build(DIGITS)
    shapes = dict((n, tuple(p.shape)) for n, p in pc.named_parameters())
    assert shapes["betas_normal"] == shapes["betas_reduce"] == (edges,)
    arch = pc()
    assert arch["normal_edges"].shape == (edges,)
    pc_plain = make_config("pc_darts", nodes=nodes, edge_normalization=False).build(DIGITS)
    assert sorted(n for n, _ in pc_plain.named_parameters()) == ["alphas_normal", "alphas_reduce"]
    assert "normal_edges" not in pc_plain()
    # A narrower primitive list narrows α; init_scale scales it.
    small = make_config("darts", nodes=nodes, primitives=["none", "skip_connect"], init_scale=1e-6).build(DIGITS)
    assert small.alphas_normal.shape == (edges, 2)
    assert small.alphas_normal.abs().max() < 1e-4


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_reaches_every_architecture_parameter(kind: str) -> None:
    torch.manual_seed(1)
    space = make_config(kind, layers=3, nodes=2).build(DIGITS)
    net = space.new_network()
    loss_of(space, net, torch.randn(6, 1, 8, 8)).backward()
    for name, p in space.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", KINDS)
def test_w_and_v_networks_share_the_architecture(kind: str) -> None:
    torch.manual_seed(2)
    space = make_config(kind, layers=3, nodes=2).build(DIGITS)
    w_net, v_net = space.new_network().eval(), space.new_network().eval()
    net_params = {id(p) for net in (w_net, v_net) for p in net.parameters()}
    assert not net_params & {id(p) for p in space.parameters()}
    assert not any("alpha" in n or "beta" in n for n, _ in w_net.named_parameters())
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        before = w_net(x, space()), v_net(x, space())
        for p in space.parameters():
            p.add_(torch.randn_like(p))
        after = w_net(x, space()), v_net(x, space())
    assert not torch.allclose(before[0], after[0])
    assert not torch.allclose(before[1], after[1])


@pytest.mark.parametrize("kind", KINDS)
def test_new_network_is_deterministic_given_the_seed(kind: str) -> None:
    space = make_config(kind, layers=3, nodes=2).build(DIGITS)
    torch.manual_seed(5)
    a = space.new_network().state_dict()
    torch.manual_seed(5)
    b = space.new_network().state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_channel_shuffle_interleaves_groups() -> None:
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_partial_mixed_op_splits_channels_and_shuffles() -> None:
    # Normal edge: the first 8/4 = 2 channels go through skip_connect weighted by 2, the rest bypass.
    op = PartialMixedOp(8, 1, ["skip_connect"], k=4)
    x = torch.arange(8.0).view(1, 8, 1, 1).expand(1, 8, 3, 3)
    out = op(x, torch.tensor([2.0]))
    # Before the shuffle: [0·2, 1·2, 2, 3, 4, 5, 6, 7]; the shuffle takes channels 0, 2, 4, 6, 1, 3, 5, 7.
    assert out[0, :, 0, 0].tolist() == [0, 2, 4, 6, 2, 3, 5, 7]
    # Reduction edge: the bypass is a 2x2 max-pool, with ceil(H/2) rows on odd sizes as the ops have.
    op = PartialMixedOp(8, 2, ["none"], k=4)
    x = torch.randn(2, 8, 5, 5)
    out = op(x, torch.tensor([1.0]))
    assert out.shape == (2, 8, 3, 3)
    unshuffled = channel_shuffle(out, 2)  # a shuffle by 4 of 8 channels is undone by one by 2
    assert torch.equal(unshuffled[:, :2], torch.zeros(2, 2, 3, 3))
    assert torch.equal(unshuffled[:, 2:], F.max_pool2d(x[:, 2:], 2, 2, ceil_mode=True))


def test_edge_weights_are_a_softmax_per_node() -> None:
    betas = torch.tensor([0.0, 1.0, 0.0, 0.0, 2.0, 5.0, 5.0, 5.0, 5.0])  # nodes of 2, 3 and 4 edges
    w = node_softmax(betas, 3)
    assert torch.allclose(w[:2], torch.softmax(betas[:2], 0))
    assert torch.allclose(w[2:5], torch.softmax(betas[2:5], 0))
    assert torch.allclose(w[5:], torch.full((4,), 0.25))


def test_pc_darts_genotype_ranks_edges_by_op_times_edge_weight() -> None:
    space = make_config("pc_darts", nodes=2).build(DIGITS)
    with torch.no_grad():
        space.alphas_normal.zero_()
        space.alphas_normal[:, 4] = 1.0  # sep_conv_3x3 wins everywhere, with equal weight
        space.betas_normal.copy_(torch.tensor([0.0, 0.0, 3.0, 0.0, 2.0]))  # node 1 prefers inputs 0, 2
    assert space.architecture().normal == (
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 2)
    )


@pytest.mark.parametrize("kind", KINDS)
def test_genotype_entropy_snapshot(kind: str) -> None:
    torch.manual_seed(3)
    space = make_config(kind, nodes=3).build(DIGITS)
    g = space.architecture()
    assert isinstance(g, Genotype) and g.space == kind
    assert len(g.normal) == len(g.reduce) == 6 and g.normal_concat == (2, 3, 4)
    assert all(op != "none" for op, _ in g.normal + g.reduce)
    assert Genotype.from_json(g.to_json()) == g
    ent = space.entropy()
    assert set(ent) == {"normal", "reduce"}
    assert ent["normal"] == pytest.approx(torch.log(torch.tensor(8.0)).item(), abs=1e-3)  # α ≈ 0: uniform
    snap = space.snapshot()
    assert set(snap) == {"normal", "reduce"} and len(snap["normal"]) == 9 and len(snap["normal"][0]) == 8


def test_darts_genotype_follows_alpha() -> None:
    space = make_config("darts", nodes=2).build(DIGITS)
    with torch.no_grad():
        space.alphas_normal.zero_()
        space.alphas_normal[:, 0] = 9.0  # `none` is ignored by the rule however strong
        space.alphas_normal[1, 5] = 2.0  # node 0: input 1 via sep_conv_5x5 is strongest
        space.alphas_normal[0, 1] = 1.0
        space.alphas_normal[4, 7] = 3.0  # node 1: input 2 via dil_conv_5x5, then input 0
        space.alphas_normal[2, 2] = 1.0
    assert space.architecture().normal == (
        ("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("dil_conv_5x5", 2), ("avg_pool_3x3", 0)
    )


# --- P-DARTS ---------------------------------------------------------------------------------


def test_prune_ops_keeps_the_strongest_and_never_none_alone() -> None:
    names = [["none", "skip_connect", "sep_conv_3x3"]] * 3
    weights = [[0.5, 0.2, 0.3], [0.1, 0.6, 0.3], [0.2, 0.4, 0.4]]
    assert prune_ops(weights, names, 2) == [[0, 2], [1, 2], [1, 2]]  # `none` competes normally
    assert prune_ops(weights, names, 1) == [[2], [1], [2]]  # ...but never survives alone; ties: later column (#23)


def test_enter_phase_prunes_by_alpha_and_carries_values() -> None:
    torch.manual_seed(4)
    space = make_config("p_darts", nodes=2, layers=3, on_grow="carry").build(DIGITS)
    assert space.num_phases == 3 and space.phase == 0
    rows = torch.tensor(
        [
            [7.0, 6, 5, 4, 3, 2, 1, 0],  # keeps none, max_pool, avg_pool, skip
            [0.0, 1, 2, 3, 4, 5, 6, 7],  # keeps sep_conv_3x3 .. dil_conv_5x5
            [0.0, 9, 0, 8, 0, 7, 0, 6],  # keeps the odd columns
            [5.0, 0, 0, 0, 0, 0, 0, 4],
            [1.0, 1, 1, 1, 2, 2, 2, 2],
        ]
    )
    rows[3, 1:7] = torch.tensor([-1.0, -2, 3, -3, 2, -4])  # keeps none, skip, sep_conv_5x5, dil_conv_5x5
    with torch.no_grad():
        space.alphas_normal.copy_(rows)
        space.alphas_reduce.copy_(rows.flip(1))
    old_param = space.alphas_normal
    space.enter_phase(1)
    assert space.phase == 1 and space.layers == 4
    assert space.alphas_normal is not old_param and space.alphas_normal.requires_grad
    assert space.kept_ops("normal") == [
        ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"],
        ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"],
        ["max_pool_3x3", "skip_connect", "sep_conv_5x5", "dil_conv_5x5"],
        ["none", "skip_connect", "sep_conv_5x5", "dil_conv_5x5"],
        ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"],
    ]
    assert space.alphas_normal.tolist() == [
        [7.0, 6, 5, 4], [4.0, 5, 6, 7], [9.0, 8, 7, 6], [5.0, 3, 2, 4], [2.0, 2, 2, 2]
    ]
    assert space.kept_ops("reduce")[0] == ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
    assert space.alphas_reduce[0].tolist() == [4.0, 5, 6, 7]
    # The full-width snapshot puts pruned ops at 0 and keeps the columns' meaning.
    snap = space.snapshot()["normal"]
    assert snap[0][4:] == [0.0] * 4 and sum(snap[0]) == pytest.approx(1.0)

    net = space.new_network()
    assert len(net.cells) == 4
    assert all(len(edge.ops) == 4 for cell in net.cells for edge in cell.edges)
    assert net.cells[0].edges[2].primitives == ("max_pool_3x3", "skip_connect", "sep_conv_5x5", "dil_conv_5x5")
    assert net(torch.randn(2, 1, 8, 8), space()).shape == (2, 10)

    # Last phase (one op): edge 0's strongest is `none`, so its best real op stays instead; edge 4's
    # four equal α keep the last, as P-DARTS' get_min_k does (#23).
    space.enter_phase(2)
    assert [ops for ops in space.kept_ops("normal")] == [
        ["max_pool_3x3"], ["dil_conv_5x5"], ["max_pool_3x3"], ["dil_conv_5x5"], ["dil_conv_5x5"]
    ]
    assert space.alphas_normal.tolist() == [[6.0], [7.0], [9.0], [4.0], [2.0]]
    assert len(space.new_network().cells) == 5


def test_enter_phase_order_and_checkpoint_round_trip() -> None:
    torch.manual_seed(6)
    space = make_config("p_darts", nodes=2).build(DIGITS)
    with pytest.raises(ValueError):
        space.enter_phase(2)
    space.enter_phase(1)
    space.enter_phase(1)  # the current phase again: nothing changes
    assert space.phase == 1 and space.alphas_normal.shape == (5, 4)
    state = space.state_dict()
    fresh = make_config("p_darts", nodes=2).build(DIGITS)
    fresh.load_state_dict(state)
    assert fresh.phase == 1 and fresh.layers == 4
    assert torch.equal(fresh.alphas_normal, space.alphas_normal)
    assert fresh.kept_ops("reduce") == space.kept_ops("reduce")
    assert fresh.architecture() == space.architecture()
    assert [n for n, _ in fresh.named_parameters()] == ["alphas_normal", "alphas_reduce"]


def test_skip_dropout_follows_the_phase_and_can_be_scheduled() -> None:
    space = make_config("p_darts", nodes=2).build(DIGITS)
    net = space.new_network()
    drops = [m for m in net.modules() if isinstance(m, SkipDropout)]
    # One per stride-1 skip-connect: every normal-cell edge, and the node-to-node edges of reduce cells.
    assert len(drops) == 1 * 5 + 2 * 1
    assert {m.p for m in drops} == {0.1}
    set_skip_dropout(net, 0.05)
    assert {m.p for m in drops} == {0.05}
    space.enter_phase(1)
    assert {m.p for m in space.new_network().modules() if isinstance(m, SkipDropout)} <= {0.4}
    # DARTS' own mixed op has no dropout.
    assert not any(isinstance(m, SkipDropout) for m in MixedOp(4, 1, ["skip_connect"]).modules())


PRIMS = ["none", "skip_connect", "sep_conv_3x3"]
# Two nodes: node 0 reads edges 0, 1 (inputs 0, 1); node 1 reads edges 2, 3, 4 (inputs 0, 1, 2).
SKIPPY = [
    [0.1, 0.6, 0.3],
    [0.1, 0.5, 0.4],
    [0.1, 0.7, 0.2],
    [0.2, 0.3, 0.5],
    [0.1, 0.55, 0.35],
]


def _cell(weights):
    from sgl.registry.spaces.genotype import derive_genotype

    return derive_genotype(weights, weights, PRIMS, 2, "p_darts").normal


def test_limit_skip_connect_by_hand() -> None:
    # The DARTS rule picks four skip-connects: edges 0 (.6), 1 (.5), 2 (.7), 4 (.55).
    assert _cell(SKIPPY) == (("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 0), ("skip_connect", 2))
    # At most 2: drop edge 1's skip (.5, weakest; sep .4 replaces it), then edge 4's (.55): its
    # sep (.35) now loses to edge 3's sep (.5), so node 1 switches input 2 for input 1.
    two = limit_skip_connect(SKIPPY, PRIMS, 2, 2)
    assert _cell(two) == (("skip_connect", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1))
    assert two[1][1] == two[4][1] == 0.0 and two[0] == SKIPPY[0] and SKIPPY[1][1] == 0.5  # input untouched
    # At most 1: edge 0's skip (.6) goes too; node 0 now reads sep from input 1 (.4), then input 0 (.3).
    assert _cell(limit_skip_connect(SKIPPY, PRIMS, 2, 1)) == (
        ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1)
    )
    assert limit_skip_connect(SKIPPY, PRIMS, 2, 4) == SKIPPY
    # No alternative op on an edge: the skip-connects stay, and the loop ends.
    only_skip = [[0.4, 0.6]] * 5
    assert _cell_two(limit_skip_connect(only_skip, ["none", "skip_connect"], 2, 0)).count("skip_connect") == 4


def _cell_two(weights):
    from sgl.registry.spaces.genotype import derive_genotype

    return [op for op, _ in derive_genotype(weights, weights, ["none", "skip_connect"], 2, "p_darts").normal]


def test_p_darts_genotype_limits_skip_connect_in_the_normal_cell_only() -> None:
    cfg = make_config("p_darts", nodes=3, max_skip_connect=1)
    space = cfg.build(DIGITS)
    with torch.no_grad():
        for alpha in (space.alphas_normal, space.alphas_reduce):
            alpha.zero_()
            alpha[:, 3] = 5.0  # skip_connect everywhere
            alpha[:, 4] = torch.linspace(0, 1, alpha.shape[0])
    g = space.architecture()
    assert [op for op, _ in g.normal].count("skip_connect") == 1
    assert [op for op, _ in g.reduce].count("skip_connect") == 6
    assert isinstance(space, PDartsSpace) and g.space == "p_darts"


def test_pdarts_skip_dropout_schedule_follows_the_reference():
    import math

    from sgl.registry.spaces.p_darts import skip_dropout_rate

    # 25-epoch phase, A-steps from epoch 10, rate 0.4, decay 0.2 (P-DARTS' train_search.py)
    assert skip_dropout_rate(0.4, 0, 25, 10, 0.2) == pytest.approx(0.4 * 24 / 25)
    assert skip_dropout_rate(0.4, 9, 25, 10, 0.2) == pytest.approx(0.4 * 15 / 25)
    assert skip_dropout_rate(0.4, 10, 25, 10, 0.2) == pytest.approx(0.4)
    assert skip_dropout_rate(0.4, 15, 25, 10, 0.2) == pytest.approx(0.4 * math.exp(-1.0))


def test_pdarts_configure_epoch_sets_the_networks_dropout():
    from sgl.registry.spaces import PDartsConfig
    from sgl.registry.spaces.supernet import SkipDropout

    cfg = PDartsConfig(channels=4, nodes=2, phases=[{"layers": 3, "ops": 8, "skip_dropout": 0.5}])
    space = cfg.build(Task(num_classes=10, in_channels=1, image_size=8))
    net = space.new_network()
    space.configure_epoch(net, epoch=0, epochs=4, arch_start=2)
    rates = [m.p for m in net.modules() if isinstance(m, SkipDropout)]
    assert rates and all(r == pytest.approx(0.5 * 3 / 4) for r in rates)
