"""The planner: the checks it makes (positioned in the spec) and the graph it derives."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from conftest import DARTS, MINI_SPEC, SEARCH, SPECS, only, problems, where, write_spec
from sgl.engine.plan import view as plan_view
from sgl.engine.plan.compile import compile_spec
from sgl.engine.plan.build import learner_seed


def plan_of(path, overrides=()):
    return compile_spec(path, overrides).plan


ONE_LEARNER = """
name: solo
data: {dataset: digits, batch_size: 32}
learners:
  alice: {kind: darts, channels: 4, layers: 3, nodes: 2}
loss_weights: {labeled: 1.0, pseudo: 1.0}
stages:
  - {name: search, epochs: 2, steps: [A, W, PL, V]}
"""


# --------------------------------------------------------------------------- checks


def test_pseudo_weight_with_one_learner(tmp_path):
    path = write_spec(tmp_path, ONE_LEARNER)
    assert problems(path) == [
        f"{where(path, 'pseudo: 1.0', offset=len('pseudo: '))}: loss_weights.pseudo: λ = 1.0 > 0 needs at least two learners "
        "to learn from each other; set it to 0 for a single learner",
        f"{where(path, '[A, W, PL, V]')}: stages.0.steps: PL makes pseudo-labels that no V-step uses in this stage",
    ]
    # the fix it suggests works: a single learner, no pseudo-labels, no PL step
    fixed = write_spec(tmp_path, ONE_LEARNER.replace("pseudo: 1.0", "pseudo: 0").replace("PL, ", ""), "fixed.yaml")
    assert problems(fixed) == []


def test_a_step_needs_a_searchable_learner(tmp_path):
    path = write_spec(
        tmp_path,
        """
        name: t
        learners:
          carol: {kind: torchvision}
          dave: {kind: genotype, genotype: DARTS_V2}
        stages:
          - {epochs: 2, steps: [A, W, PL, V]}
        """,
    )
    assert problems(path) == [
        f"{where(path, '[A, W')}: stages.0.steps: an A-step needs a searchable learner (kind darts, p_darts, pc_darts, ...)"
    ]


def test_pl_after_v(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("[A, W, PL, V]", "[A, W, V, PL]"))
    assert problems(path) == [f"{where(path, '[A, W, V, PL]')}: stages.1.steps: PL must come before V: V reads this iteration's pseudo-labels"]


def test_v_without_pl_while_pseudo_weight_positive(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("[A, W, PL, V]", "[A, W, V]"))
    assert problems(path) == [
        f"{where(path, '[A, W, V]')}: stages.1.steps: V learns from the peers' pseudo-labels: add PL before V (or set loss_weights.pseudo: 0)"
    ]
    fixed = write_spec(tmp_path, MINI_SPEC.replace("[A, W, PL, V]", "[A, W, V]") + "loss_weights: {pseudo: 0}\n", "fixed.yaml")
    assert problems(fixed) == []


def test_pl_without_a_v_step_that_uses_it(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("[W]}", "[W, PL]}"))
    assert problems(path) == [f"{where(path, '[W, PL]')}: stages.0.steps: PL makes pseudo-labels that no V-step uses in this stage"]


def test_stage_two_without_any_loss(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("[A, W, PL, V]", "[A, W, V]") + "loss_weights: {labeled: 0, pseudo: 0}\n")
    assert problems(path) == [f"{where(path, '{labeled')}: loss_weights: stage 2 would have no loss: both weights are zero"]


@pytest.mark.parametrize("arch_start", [2, 3])
def test_arch_start_must_be_below_epochs(tmp_path, arch_start):
    path = write_spec(tmp_path, MINI_SPEC.replace("epochs: 2,", f"epochs: 2, arch_start: {arch_start},"))
    assert problems(path) == [
        f"{where(path, f'arch_start: {arch_start}', offset=len('arch_start: '))}: stages.1.arch_start: "
        f"arch_start ({arch_start}) must be below epochs (2): no A-step would run"
    ]
    ok = write_spec(tmp_path, MINI_SPEC.replace("epochs: 2,", "epochs: 2, arch_start: 1,"), "ok.yaml")
    assert problems(ok) == []


def test_training_stage_needs_learners(tmp_path):
    path = write_spec(tmp_path, "name: t\nstages: [{epochs: 1, steps: [W]}]\n")
    assert problems(path) == [f"{path}:1:1: learners: a training stage needs at least one learner"]


PDARTS = """
name: pd
data: {dataset: digits, batch_size: 32}
learners:
  p: {kind: p_darts, channels: 4, nodes: 2}
  q: {kind: darts, channels: 4, layers: 3, nodes: 2}
stages:
  - {name: warmup, epochs: 1, steps: [W]}
  - {name: phase1, epochs: 2, steps: [A, W, PL, V]}
  - {name: phase2, epochs: 2, steps: [A, W, PL, V]}
  - {name: phase3, epochs: 2, steps: [A, W, PL, V]}
"""


def test_p_darts_phases_must_match_stages_with_a_steps(tmp_path):
    ok = write_spec(tmp_path, PDARTS, "ok.yaml")
    plan = plan_of(ok)
    assert plan.learners["p"].growing_phases == 3 and plan.learners["q"].growing_phases == 1
    assert [s.growing_phase for s in plan.stages] == [{"p": 0, "q": 0}, {"p": 0, "q": 0}, {"p": 1, "q": 0}, {"p": 2, "q": 0}]
    # each phase builds new networks whose schedules span the phase (the warm-up belongs to phase 1)
    assert plan.learners["p"].networks["W"].horizons == (3, 2, 2)
    assert plan.learners["p"].networks["V"].horizons == (2, 2, 2)
    assert plan.learners["q"].networks["V"].horizons == (6,)

    short = write_spec(tmp_path, PDARTS.replace("  - {name: phase3, epochs: 2, steps: [A, W, PL, V]}\n", ""), "short.yaml")
    assert problems(short) == [
        f"{where(short, '{kind: p_darts')}: learners.p: 3 growing phases, but the spec has 2 stage(s) with A-steps; "
        "give one such stage per phase, or name each stage's growing_phase (1, 2, ...)"
    ]


def test_p_darts_with_explicit_phases(tmp_path):
    text = PDARTS.replace(
        "p: {kind: p_darts, channels: 4, nodes: 2}",
        "p:\n    kind: p_darts\n    channels: 4\n    nodes: 2\n    phases:\n      - {layers: 3, ops: 8}\n      - {layers: 4, ops: 4}",
    )
    path = write_spec(tmp_path, text)
    assert problems(path) == [
        f"{where(path, 'kind: p_darts')}: learners.p: 2 growing phases, but the spec has 3 stage(s) with A-steps; "
        "give one such stage per phase, or name each stage's growing_phase (1, 2, ...)"
    ]


def test_evaluate_unknown_learner_did_you_mean(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("{name: derive}", "{name: evaluate, learner: alise, epochs: 1}"))
    assert problems(path) == [f"{where(path, 'alise')}: stages.2.learner: no learner named 'alise' (did you mean 'alice'?)"]


def test_evaluate_fixed_learner(tmp_path):
    text = MINI_SPEC.replace("bob: {kind: darts, channels: 4, layers: 3, nodes: 2}", "bob: {kind: torchvision}")
    path = write_spec(tmp_path, text.replace("{name: derive}", "{name: evaluate, learner: bob}"))
    assert problems(path) == [f"{where(path, 'bob}')}: stages.2.learner: learner 'bob' is fixed: it has no genotype to evaluate"]


def test_evaluate_named_genotype_and_own_learner_are_fine(make_spec):
    evaluate = [{"name": "evaluate", "learner": "alice"}, {"name": "final", "type": "evaluate", "genotype": "DARTS_V2"}]
    plan = plan_of(make_spec(stages=[*SEARCH, *evaluate]))
    assert [(s.type, getattr(s, "learner", None)) for s in plan.stages[2:]] == [("derive", None), ("evaluate", "alice"), ("evaluate", None)]
    assert plan.stages[3].protocol.protocol == "darts" and plan.stages[4].given_as == "DARTS_V2"
    edges = {(e.src, e.dst) for e in plan.edges if e.dst.startswith("evaluate:")}
    assert edges == {("A[alice]", "evaluate:evaluate"), ("A[alice]", "evaluate:final"), ("A[bob]", "evaluate:final")}


def test_batch_larger_than_d_train(tmp_path):
    # digits: 1,797 images, 20% test -> 1,438 training images; 10% of them -> 143 in D_train
    path = write_spec(tmp_path, MINI_SPEC.replace("batch_size: 32}", "batch_size: 200, split: {train: 0.1, val: 0.5}}"))
    assert problems(path) == [f"{where(path, '200')}: data.batch_size: batch size 200 is larger than D_train (143 examples)"]


def test_batch_larger_than_d_val_with_a_steps(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("batch_size: 32}", "batch_size: 200, split: {train: 0.5, val: 0.1}}"))
    assert problems(path) == [f"{where(path, '200')}: data.batch_size: batch size 200 is larger than D_val (143 examples)"]
    # without A-steps (and D_u = train) D_val is never read
    no_a = write_spec(
        tmp_path,
        MINI_SPEC.replace("batch_size: 32}", "batch_size: 200, split: {train: 0.5, val: 0.1}}").replace("[A, W, PL, V]", "[W, PL, V]"),
        "no_a.yaml",
    )
    assert problems(no_a) == []


# --------------------------------------------------------------------------- the graph


def test_quickstart_plan_peers_edges_order():
    plan = plan_of(SPECS / "quickstart.yaml")
    learners = plan.learners
    assert list(learners) == ["alice", "bob", "carol"]
    assert [lp.searchable for lp in learners.values()] == [True, True, False]
    assert learners["alice"].peers == ("bob", "carol")
    assert learners["bob"].peers == ("alice", "carol")
    assert learners["carol"].peers == ("alice", "bob")
    assert [lp.arch_net for lp in learners.values()] == ["V", "V", None]
    assert all(tuple(lp.networks) == ("W", "V") for lp in learners.values())
    assert all({n: net.horizons for n, net in lp.networks.items()} == {"W": (4,), "V": (3,)} for lp in learners.values())

    warmup, search, derive = plan.stages
    assert (warmup.name, warmup.first_epoch, warmup.epochs, warmup.arch_from_epoch) == ("warmup", 0, 1, None)
    assert warmup.order == ("W[alice]", "W[bob]", "W[carol]")
    assert (search.first_epoch, search.epochs, search.arch_from_epoch) == (1, 3, 1)
    assert search.order == (
        "A[alice]", "A[bob]",
        "W[alice]", "W[bob]", "W[carol]",
        "PL[alice]", "PL[bob]", "PL[carol]",
        "V[alice]", "V[bob]", "V[carol]",
    )
    assert (warmup.streams, search.streams) == (("train",), ("train", "unlabeled", "val"))
    assert search.stepped == tuple(sorted((k, n) for k in learners for n in ("W", "V")))
    assert derive.type == "derive"
    assert plan.total_epochs == 4

    edges = {(e.src, e.dst, e.kind) for e in plan.edges}
    assert edges == {
        *((f"W[{k}]", f"PL[{k}]", "data") for k in learners),
        *((f"PL[{j}]", f"V[{k}]", "data") for k in learners for j in learners if j != k),
        ("V[alice]", "A[alice]", "grad"),
        ("V[bob]", "A[bob]", "grad"),
        ("A[alice]", "derive:derive", "data"),
        ("A[bob]", "derive:derive", "data"),
    }
    assert {n.id for n in plan.nodes} == {*search.order, "derive:derive"}
    assert plan.hypergradient.method == "first_order"


def test_quickstart_passes_per_iteration():
    plan = plan_of(SPECS / "quickstart.yaml")
    assert plan.passes == {
        "W": {"forward": 3, "backward": 3},
        "PL": {"forward": 3, "backward": 0},
        "V": {"forward": 6, "backward": 3},  # each V also runs on x_u
        "A": {"forward": 2, "backward": 2},
    }


def test_optimizer_step_arithmetic():
    plan = plan_of(SPECS / "quickstart.yaml")
    # digits: 1797 - round(0.2 * 1797) = 1438 training images; D_train = floor(0.5 * 1438) = 719
    assert plan.data.examples == {"train": 719, "val": 719}
    iterations = 719 // 64
    warmup, search, _ = plan.stages
    assert warmup.iterations_per_epoch == search.iterations_per_epoch == iterations == 11
    assert warmup.optimizer_steps == 3 * 1 * iterations  # three W-steps per iteration
    # six W/V steps per iteration for 3 epochs, plus two A-steps for the epochs A runs
    assert search.optimizer_steps == 6 * 3 * iterations + 2 * 3 * iterations == 264
    delayed = plan_of(SPECS / "quickstart.yaml", ["stages.1.arch_start=2", "data.batch_size=100"])
    iterations = 719 // 100
    assert delayed.stages[1].arch_from_epoch == 3
    assert delayed.stages[1].optimizer_steps == 6 * 3 * iterations + 2 * 1 * iterations


def test_unknown_dataset_size_leaves_counts_open(make_spec):
    plan = plan_of(make_spec(data={"dataset": "imagenet_folder"}))
    assert plan.data.examples == {"train": None, "val": None}
    assert plan.stages[0].iterations_per_epoch is None and plan.stages[0].optimizer_steps is None


def test_plain_darts_is_one_learner_without_stage_two(make_spec):
    path = make_spec(learners=only(alice=DARTS), loss_weights={"pseudo": 0}, stages=[{"name": "search", "epochs": 2, "steps": ["A", "W"]}])
    plan = plan_of(path)
    (lp,) = plan.learners.values()
    assert (tuple(lp.networks), lp.arch_net, lp.peers) == (("W",), "W", ())
    assert plan.stages[0].order == ("A[alice]", "W[alice]")
    assert {(e.src, e.dst, e.kind) for e in plan.edges} == {("W[alice]", "A[alice]", "grad")}
    assert set(plan.passes) == {"W", "A"}


def test_zero_pseudo_weight_drops_peers_and_pseudo_labels(make_spec):
    warmup, search, derive = SEARCH
    plan = plan_of(make_spec(loss_weights={"pseudo": 0}, stages=[warmup, {**search, "steps": ["A", "W", "V"]}, derive]))
    assert all(lp.peers == () for lp in plan.learners.values())
    assert not any(n.step == "PL" for n in plan.nodes)
    assert plan.passes["V"] == {"forward": 2, "backward": 2}  # no extra pass on x_u


# --------------------------------------------------------------------------- seeds


def test_learner_seeds_are_stable_and_distinct():
    plan = plan_of(SPECS / "quickstart.yaml")
    seeds = {k: lp.seed for k, lp in plan.learners.items()}
    assert len(set(seeds.values())) == 3
    # stable across runs, processes and versions: resuming and reproducing depend on it
    assert seeds == {"alice": 616620123, "bob": 627922358, "carol": 831573755}
    assert all(0 <= s < 2**31 for s in seeds.values())
    # a learner's seed depends on the run seed and its name, not on the other learners
    fewer = plan_of(SPECS / "quickstart.yaml", ["learners.dave.kind=darts", "learners.dave.channels=4"])
    assert {k: fewer.learners[k].seed for k in seeds} == seeds
    reseeded = plan_of(SPECS / "quickstart.yaml", ["seed=1"])
    assert all(reseeded.learners[k].seed != s for k, s in seeds.items())
    assert reseeded.learners["alice"].seed == learner_seed(1, "alice")


# --------------------------------------------------------------------------- views


def test_plan_views_name_every_learner_and_step():
    plan = plan_of(SPECS / "quickstart.yaml")
    console = Console(record=True, width=200, file=io.StringIO())
    plan_view.plan_text(plan, console)
    text = console.export_text()
    for name in plan.learners:
        assert f"{name}:" in text
    for node in plan.nodes:
        if node.step in "AWPLV":
            assert node.id in text
    assert "derive" in text and "264" in text
    # the plan shows what execution will use: optimizers, schedules and their horizons
    assert "W: sgd (lr 0.05), schedule cosine over 4 ep" in text and "V: sgd (lr 0.05), schedule cosine over 3 ep" in text

    data = json.loads(plan_view.plan_json(plan))
    assert list(data["learners"]) == ["alice", "bob", "carol"]
    assert data["stages"][1]["order"] == list(plan.stages[1].order)
    assert data["learners"]["alice"]["networks"]["W"]["horizons"] == [4]
    assert data["learners"]["alice"]["config"]["kind"] == "darts"
    assert data["hypergradient"] == {"method": "first_order", "running_stats": "keep"}

    dot = plan_view.plan_dot(plan)
    assert dot.startswith('digraph "quickstart" {') and dot.rstrip().endswith("}")
    assert '"1/PL[bob]" -> "1/V[alice]"' in dot


def test_a_supernet_too_large_for_this_machine_is_a_warning_not_an_error():
    fine = plan_of(SPECS / "quickstart.yaml")
    assert fine.warnings == ()
    huge = plan_of(SPECS / "quickstart.yaml", ["learners.alice.channels=2048", "data.dataset={name: digits, size: 64, channels: 3}"])
    (warning,) = huge.warnings
    assert warning.startswith("learners.alice: its supernet needs about ") and "GiB" in warning and "batch 64" in warning


def test_the_activation_estimate_matches_the_measured_darts_search():
    from sgl.registry import Task
    from sgl.registry.spaces import DartsConfig, PCDartsConfig

    cifar = Task(num_classes=10, in_channels=3, image_size=32)
    # measured: one DARTS learner, 8 cells of C=16 on 32x32, batch 64: ~11 GB at its peak
    assert 9e9 < DartsConfig(channels=16, layers=8).activation_bytes(cifar, 64) < 13e9
    # partial channels keep about 1/K of the mixed ops' activations
    darts = DartsConfig(channels=16, layers=8).activation_bytes(cifar, 64)
    assert PCDartsConfig(channels=16, layers=8, partial_channels=4).activation_bytes(cifar, 64) < darts / 3
