"""The fused supernets are the default path (issue #19): every searchable learner whose space has a
fused implementation gets it, ``run.fused: false`` keeps the plain networks, and the engine's
search through either agrees — to 1e-10 in float64 over several iterations and a P-DARTS phase
change, and up to half-precision rounding under CPU autocast."""

from __future__ import annotations

import torch

from conftest import write_spec
from sgl.engine.run.runner import build_runner

SPEC = """
name: fused_default
seed: 0
data: {dataset: digits, batch_size: 16, split: {train: 0.1, val: 0.1}}
learners:
  alice: {kind: darts, channels: 4, layers: 3, nodes: 2}
  bob: {kind: pc_darts, channels: 4, layers: 3, nodes: 2, partial_channels: 2}
  pat: {kind: p_darts, channels: 4, nodes: 2, phases: [{layers: 3, ops: 8}, {layers: 4, ops: 3}]}
  carol: {kind: genotype, genotype: DARTS_V2, channels: 4, layers: 2}
optim: {arch: {name: sgd, lr: 0.05}}
stages:
  - {name: phase1, epochs: 1, steps: [A, W, PL, V]}
  - {name: phase2, epochs: 1, steps: [A, W, PL, V]}
  - {name: derive}
run: {cpu: true}
"""

SEARCHED = ("alice", "bob", "pat")


def _largest_difference(a, b) -> dict[str, float]:
    out = {}
    for name in SEARCHED:
        la, lb = a.learners[name], b.learners[name]
        diff = max(float((x - y).detach().abs().max()) for x, y in zip(la.space.arch_parameters(), lb.space.arch_parameters()))
        for net in ("W", "V"):
            sa, sb = la.nets[net].module.state_dict(), lb.nets[net].module.state_dict()
            assert sa.keys() == sb.keys(), name  # the fused network speaks the plain network's state_dict
            diff = max(diff, *(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa))
        out[name] = diff
    return out


def _in_float64(runner) -> None:
    """Batches in float64 (the digits are stored in float32), for networks built in float64."""
    for stream in runner.streams.values():
        stream.next = (lambda draw: lambda: tuple(t.double() if t.is_floating_point() else t for t in draw()))(stream.next)


def test_the_fused_networks_are_the_default_and_false_keeps_the_plain_ones(tmp_path):
    spec = write_spec(tmp_path, SPEC)
    default, plain = build_runner(spec), build_runner(spec, ["run.fused=false"])
    for name in SEARCHED:
        assert default.plan.learners[name].fused and not plain.plan.learners[name].fused
        assert type(default.learners[name].nets["W"].module).__name__ == "FusedSupernet"
        assert type(plain.learners[name].nets["W"].module).__name__ == "DartsNetwork"
    assert type(default.learners["carol"].nets["W"].module).__name__ == "NetworkCIFAR"  # a fixed learner is as it was


def test_fused_and_plain_searches_agree_in_float64_across_a_phase_change(tmp_path):
    spec = write_spec(tmp_path, SPEC)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # networks and architectures built in float64
    try:
        plain, fused = build_runner(spec, ["run.fused=false"]), build_runner(spec, ["run.fused=true"])
    finally:
        torch.set_default_dtype(default)
    _in_float64(plain)
    _in_float64(fused)
    for stage in ("phase1", "phase2"):
        for _ in range(2):
            plain.search_iteration(stage)
            fused.search_iteration(stage)
        assert fused.learners["pat"].space.phase == plain.learners["pat"].space.phase == int(stage[-1]) - 1
        differences = _largest_difference(plain, fused)
        assert all(d < 1e-10 for d in differences.values()), (stage, differences)
    assert all(plain.learners[n].architecture() == fused.learners[n].architecture() for n in SEARCHED)


def test_fused_and_plain_searches_agree_under_cpu_autocast(tmp_path):
    # bf16 only: Accelerate applies no fp16 autocast on the CPU (the run computes in float32 and says
    # so); the fused ops under fp16 autocast are checked directly in tests/registry/test_fused_autocast.py.
    spec = write_spec(tmp_path, SPEC)
    overrides = ["run.mixed_precision=bf16"]
    plain, fused = build_runner(spec, ["run.fused=false", *overrides]), build_runner(spec, ["run.fused=true", *overrides])
    # The first phase without A-steps: both enter P-DARTS' second phase from the same α, so both
    # prune to the same ops (half-precision rounding could otherwise tip a close pruning).
    plain.search_iteration("phase1", arch=False)
    fused.search_iteration("phase1", arch=False)
    for _ in range(2):
        plain.search_iteration("phase2")
        fused.search_iteration("phase2")
    assert fused.learners["pat"].space.phase == 1
    losses = plain.losses("phase2"), fused.losses("phase2")
    assert losses[0].keys() == losses[1].keys()
    for key, value in losses[0].items():
        assert abs(losses[1][key] - value) <= 0.02 * abs(value), (key, losses)
    # Values near 1 (BN running variances, α, weights) that bf16 rounds to 2^-8 ≈ 0.004; each path
    # rounds differently (the fused one sums in float32, the plain one in bf16) and drifts from its
    # float32 run by up to 0.025 (measured) over these three iterations: they differ by up to the sum.
    differences = _largest_difference(plain, fused)
    assert all(d < 0.05 for d in differences.values()), differences
