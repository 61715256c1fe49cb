"""`sgl plan --estimate`: each kind of iteration timed on this machine, the whole run projected."""

from __future__ import annotations

import json

from click.testing import CliRunner

from conftest import SPECS
from sgl.engine.cli.main import main

QUICK = ["learners.carol={kind: darts, channels: 4, layers: 3, nodes: 2}", "data.split.train=0.2", "data.split.val=0.2"]
#: The paper's SGL-DARTS recipe on data this machine has, small enough to time in seconds.
PAPER = ["data.dataset={name: digits, size: 8, channels: 3}", "data.batch_size=32",
         "learners.learner1.channels=4", "learners.learner1.layers=3", "learners.learner2.channels=4",
         "learners.learner2.layers=3", "stages.3.channels=4", "stages.3.layers=3", "stages.3.batch_size=32"]


def _estimate(spec, overrides):
    result = CliRunner().invoke(main, ["plan", str(spec), *overrides, "--estimate", "--iterations", "1", "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["estimate"]  # progress goes to stderr


def test_the_quickstart_is_projected_from_its_kinds_of_iteration():
    cost = _estimate(SPECS / "quickstart.yaml", QUICK)
    rows = {(r["stage"], r["what"]): r for r in cost["rows"]}
    assert rows["warmup", "iterations without A"]["count"] == 4  # 1 epoch of 287 // 64 iterations
    assert rows["search", "iterations with A"]["count"] == 3 * 4
    assert rows["search", "iterations with A"]["seconds_each"] > rows["warmup", "iterations without A"]["seconds_each"] > 0
    assert cost["evaluation_seconds"] == 0 and cost["total_seconds"] == cost["search_seconds"] > 0
    assert cost["device"] == "cpu" and cost["device_hours"] > 0


def test_a_paper_recipe_with_its_evaluation_stage():
    cost = _estimate(SPECS / "paper" / "sgl_darts_cifar10.yaml", PAPER)
    rows = {(r["stage"], r["what"]): r for r in cost["rows"]}
    assert rows["search", "iterations with A"]["count"] == 45 * (719 // 32)  # 45 epochs of D_train (719) / batch
    assert rows["evaluate", "evaluation"]["count"] == 600 * (1438 // 32)  # the whole training set, 600 epochs
    assert cost["evaluation_seconds"] > 0 and cost["search_seconds"] > 0


def test_the_text_form_says_wall_time_and_device_hours():
    result = CliRunner().invoke(main, ["plan", str(SPECS / "quickstart.yaml"), *QUICK, "--estimate", "--iterations", "1"])
    assert result.exit_code == 0, result.output
    assert "estimate on this machine (cpu, 1 process(es))" in result.output and "CPU-hours" in result.output
