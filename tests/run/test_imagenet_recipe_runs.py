"""The SGL ImageNet recipes run end to end, shrunk to fake data: the search with two PC-DARTS learners
(specs/paper/sgl_pcdarts_imagenet.yaml) derives a genotype file, and the evaluation of a genotype file
from a run directory (specs/paper/eval_sgl_imagenet.yaml) trains it. How they plan:
tests/plan/test_paper_recipes_plan.py."""

from __future__ import annotations

import json

import pytest

from conftest import SPECS
from sgl.engine.run.executor import RunOptions
from sgl.engine.rundir.session import run_spec

SEARCH = SPECS / "paper" / "sgl_pcdarts_imagenet.yaml"
EVALUATE = SPECS / "paper" / "eval_sgl_imagenet.yaml"

#: Fake 32x32 images (the ImageNet stem takes them to 4x4), tiny networks, a few epochs.
FAKE = ["data.dataset={name: fake, image_size: 32, num_classes: 4, train_size: 80, test_size: 16}",
        "data.batch_size=16", "data.eval_batch_size=40", "run.cpu=true", "run.log_every=4"]
TINY_EVAL = ["epochs=2", "channels=4", "layers=3", "batch_size=8",
             "schedule={name: linear, min_lr: 0.0, warmup_epochs: 1, tail_epochs: 1}"]
SHRUNK_SEARCH = [
    *FAKE,
    *(f"learners.{name}.{key}" for name in ("learner1", "learner2") for key in ("channels=4", "layers=3", "nodes=1")),
    "stages.0.epochs=1", "stages.1.epochs=2", "stages.1.arch_start=1",
    *(f"stages.3.{item}" for item in TINY_EVAL),
]


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sgl_imagenet") / "search"
    return run_spec(SEARCH, SHRUNK_SEARCH, RunOptions(run_dir=run_dir, progress=False))


def test_the_shrunk_search_runs_derives_and_evaluates(search_run):
    summary = json.loads((search_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_done"] == 3
    genotype = json.loads((search_run / "genotypes" / "learner1.json").read_text())
    assert genotype["space"] == "pc_darts"
    (evaluation,) = summary["evaluations"]
    assert evaluation["stage"] == "evaluate" and evaluation["learner"] == "learner1"


def test_the_evaluation_trains_the_genotype_file_of_a_run_directory(search_run, tmp_path):
    genotype = search_run / "genotypes" / "learner1.json"
    overrides = [*FAKE, f"stages.0.genotype={genotype}", *(f"stages.0.{item}" for item in TINY_EVAL)]
    run_dir = run_spec(EVALUATE, overrides, RunOptions(run_dir=tmp_path / "evaluate", progress=False))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and not summary.get("expectations")
    (evaluation,) = summary["evaluations"]
    assert evaluation["genotype"] == str(genotype)
    assert evaluation["genotype_json"] == json.loads(genotype.read_text())
