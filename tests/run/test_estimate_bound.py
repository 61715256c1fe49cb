"""`sgl plan --estimate` says what it does as it goes and keeps to its bound: its budget or a tenth of
the run it projects, whichever is less (one sample of each kind of work is always taken)."""

from __future__ import annotations

from click.testing import CliRunner

from conftest import DARTS
from sgl.engine.cli.main import main


class FakeClock:
    """perf_counter for the estimate: every reading advances a quarter second, so every sample
    takes 0.25 s and the bound is met at a known point, whatever the machine's load."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.25
        return self.now


def _estimate(make_spec, monkeypatch, overrides=(), **options):
    from sgl.engine.plan.compile import compile_spec
    from sgl.engine.run import estimate as module

    spec = make_spec(learners={"alice": DARTS}, data={"split": {"train": 0.2, "val": 0.1}})
    compiled = compile_spec(spec, list(overrides))
    monkeypatch.setattr(module, "time", FakeClock())
    said: list[str] = []
    return module.estimate(compiled, say=said.append, **options), said


def test_the_estimate_stops_at_a_tenth_of_the_projected_run(make_spec, monkeypatch) -> None:
    from sgl.engine.run.estimate import SHARE

    result, said = _estimate(make_spec, monkeypatch, iterations=1000, budget=600)
    # a small run: a tenth of it is the bound, not the 600 s budget
    assert result.bound == SHARE * result.seconds() < 600
    assert all(r.samples < 1001 for r in result.rows)
    # past the first pass (every kind once), no sample starts after the bound: at most one runs past it
    assert result.own_seconds <= max(result.first_pass, result.bound) + result.longest + 0.25
    assert said[0].startswith("estimate: setting up") and any("search · iterations with A" in s for s in said)
    assert said[-1].startswith("estimate: done in")


def test_a_budget_caps_it_and_more_samples_come_while_it_allows(make_spec, monkeypatch) -> None:
    # a long run (many epochs) with a small budget: the budget is the bound
    result, _ = _estimate(make_spec, monkeypatch, ["stages.1.epochs=200"], iterations=1000, budget=5)
    assert result.bound == 5 and result.first_pass < 5
    samples = {(r.stage, r.what): r.samples for r in result.rows}
    assert samples["search", "iterations with A"] > 1 and samples["warmup", "iterations without A"] > 1
    assert result.own_seconds <= 5 + result.longest + 0.25
    # with time for everything, each kind is timed `iterations` times after its warm-up
    result, _ = _estimate(make_spec, monkeypatch, ["stages.1.epochs=200"], iterations=1, budget=600)
    assert {r.samples for r in result.rows if r.what != "data and networks"} == {2}


def test_the_command_prints_progress_on_stderr_and_the_estimate_on_stdout(make_spec) -> None:
    spec = make_spec(learners={"alice": DARTS}, data={"split": {"train": 0.2, "val": 0.1}})
    result = CliRunner().invoke(main, ["plan", str(spec), "--estimate", "--budget", "5"])
    assert result.exit_code == 0, result.output
    assert "estimate: set up in" in result.stderr and "estimate: warmup · iterations without A:" in result.stderr
    assert "estimate: done in" in result.stderr
    assert "in all" in result.stdout and "this estimate took" in result.stdout and "estimate:" not in result.stdout
