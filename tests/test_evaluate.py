"""The evaluation stage: train a genotype from scratch, test it, count its size and cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sgl.engine.evaluate import build_network, evaluate_genotype, network_cost, network_info
from sgl.engine.rundir import RunDir
from sgl.engine.spec import spec_model
from sgl.registry.spaces.genotype import DARTS_V2
from sgl.registry.task import Task

FIELDS = {
    "stage", "genotype", "genotype_json", "dataset", "epochs", "test_error_final", "test_error_best",
    "test_acc_final", "test_acc_best", "params_M", "madds_M", "device", "device_hours", "wall_seconds",
}


def make_spec(train_size: int = 48, **stage):
    """An evaluation-only spec on small fake data (8x8 images, 48 train, 24 test)."""
    values = {"type": "evaluate", "name": "eval", "genotype": "DARTS_V2", "epochs": 1, "channels": 8,
              "layers": 3, "batch_size": 16, "cutout": 4, **stage}
    return spec_model().model_validate({
        "name": "evaluate_only",
        "data": {"dataset": {"name": "fake", "train_size": train_size, "test_size": 24, "image_size": 8}, "eval_batch_size": 16},
        "stages": [values],
    })


@pytest.fixture(scope="module")
def accelerator():
    from accelerate import Accelerator

    return Accelerator(cpu=True)


def test_one_epoch_on_fake_data_returns_every_field(tmp_path: Path, accelerator) -> None:
    spec = make_spec()
    stage = spec.stages[0]
    rundir = RunDir(tmp_path)
    result = evaluate_genotype(stage, spec, base_dir=tmp_path, accelerator=accelerator, rundir=rundir, progress=None, seed=0)
    rundir.close()
    assert FIELDS <= set(result)
    assert result["genotype"] == "DARTS_V2" and result["genotype_json"] == DARTS_V2.to_json()
    assert result["dataset"] == "fake" and result["epochs"] == 1 and result["device"] == "cpu"
    assert 0 <= result["test_acc_final"] <= result["test_acc_best"] <= 1
    assert result["test_error_final"] == pytest.approx(100 * (1 - result["test_acc_final"]))
    assert result["test_error_best"] <= result["test_error_final"]
    assert result["params_M"] > 0 and result["madds_M"] > 0
    assert result["device_hours"] > 0 and result["wall_seconds"] > 0
    json.dumps(result)  # goes into summary.json as is

    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["stage"], r["epoch"]) for r in lines] == [("eval_epoch", "eval", 0)]
    assert {"train/loss", "train/acc", "test/acc", "lr", "time"} <= set(lines[0])

    package = torch.load(tmp_path / "models" / "eval.pt", weights_only=True)
    net = build_network(package["network"])
    net.load_state_dict(package["state_dict"])

    # Running the finished stage again returns its result from the checkpoint, training nothing.
    again = evaluate_genotype(stage, spec, base_dir=tmp_path, accelerator=accelerator, rundir=RunDir(tmp_path), seed=0)
    assert again == result
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1


def test_resumes_from_its_checkpoint(tmp_path: Path, accelerator) -> None:
    spec = make_spec(train_size=32, epochs=2, channels=4, auxiliary_weight=0.0, drop_path=0.0, cutout=0)
    stage = spec.stages[0]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # Stop after the first epoch, as the executor does on a signal or --stop-after.

    class Stop(Exception):
        pass

    def stop(done: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        evaluate_genotype(stage, spec, base_dir=tmp_path, accelerator=accelerator, rundir=RunDir(tmp_path / "a"), seed=3, after_epoch=stop)
    (tmp_path / "a" / "metrics.jsonl").write_text("")  # the executor cut it back to its own checkpoint
    resumed = evaluate_genotype(stage, spec, base_dir=tmp_path, accelerator=accelerator, rundir=RunDir(tmp_path / "a"), seed=3)
    straight = evaluate_genotype(stage, spec, base_dir=tmp_path, accelerator=accelerator, rundir=RunDir(tmp_path / "b"), seed=3)
    assert resumed["test_acc_final"] == straight["test_acc_final"]
    a = torch.load(tmp_path / "a" / "models" / "eval.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "models" / "eval.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [0, 1]


def test_darts_v2_at_the_paper_size_has_3_3m_parameters() -> None:
    stage = make_spec(channels=36, layers=20, auxiliary_weight=0.4).stages[0]
    task = Task(num_classes=10, in_channels=3, image_size=32)
    net = build_network(network_info(stage, DARTS_V2, task))
    cost = network_cost(net, task)
    assert round(cost["params_M"], 1) == 3.3, cost
    assert 450 < cost["madds_M"] < 600, cost  # about 528M multiply-adds on a 32x32 image


def test_learner_genotype_comes_from_the_run(tmp_path: Path, accelerator) -> None:
    spec = spec_model().model_validate({
        "name": "search_then_evaluate",
        "data": {"dataset": {"name": "fake", "train_size": 32, "test_size": 16, "image_size": 8}},
        "learners": {"alice": {"kind": "darts", "channels": 4, "layers": 3, "nodes": 2}},
        "stages": [{"type": "evaluate", "learner": "alice", "epochs": 1, "channels": 4, "layers": 3,
                    "batch_size": 16, "cutout": 0}],
    })
    with pytest.raises(ValueError, match="derive stage"):
        evaluate_genotype(spec.stages[0], spec, base_dir=tmp_path, accelerator=accelerator, rundir=RunDir(tmp_path), seed=0)
    genotype = DARTS_V2
    genotype.save(tmp_path / "genotypes" / "alice.json")
    result = evaluate_genotype(spec.stages[0], spec, base_dir=tmp_path, accelerator=accelerator, rundir=RunDir(tmp_path), seed=0)
    assert result["genotype"] == "genotypes/alice.json" and result["learner"] == "alice"


def test_train_command_takes_evaluation_only_specs(tmp_path: Path) -> None:
    import click
    from click.testing import CliRunner

    from sgl.engine.cli_report import make_train_command

    calls = []

    @click.command("run")
    @click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
    @click.argument("overrides", nargs=-1)
    @click.option("--overwrite", is_flag=True)
    def run(spec, overrides, overwrite):
        calls.append((spec.name, overrides, overwrite))

    cli = click.Group(commands=[make_train_command(run)])
    evaluation = tmp_path / "eval.yaml"
    evaluation.write_text("name: e\ndata: {dataset: fake}\nstages:\n  - {type: evaluate, genotype: DARTS_V2, epochs: 1}\n")
    result = CliRunner().invoke(cli, ["train", str(evaluation), "stages.0.epochs=2", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert calls == [("eval.yaml", ("stages.0.epochs=2",), True)]

    search = tmp_path / "search.yaml"
    search.write_text("name: s\nlearners: {a: {kind: darts}}\nloss_weights: {pseudo: 0}\n"
                      "stages:\n  - {name: search, epochs: 1, steps: [A, W]}\n  - {type: evaluate, learner: a}\n")
    result = CliRunner().invoke(cli, ["train", str(search)])
    assert result.exit_code == 2 and "sgl run" in result.output and "search (train)" in result.output
    result = CliRunner().invoke(cli, ["train", str(evaluation), "stages.0.epochz=2"])
    assert result.exit_code == 2 and "epochz" in result.output
    assert len(calls) == 1
