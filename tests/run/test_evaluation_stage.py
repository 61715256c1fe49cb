"""The evaluation stage: train a genotype from scratch, test it, count its size and cost."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from conftest import DARTS, build_spec, only, run_in
from sgl.engine.errors import Interrupted
from sgl.engine.run.executor import RunOptions
from sgl.engine.rundir.session import resume_run
from sgl.registry.evaluation import build_network
from sgl.registry.spaces.published import DARTS_V2

FIELDS = {
    "stage", "genotype", "genotype_json", "dataset", "epochs", "test_error_final", "test_error_best",
    "test_acc_final", "test_acc_best", "params_M", "madds_M", "device", "device_hours", "wall_seconds",
}

def evaluate(tmp_path: Path, folder: str, *, train: int = 48, epochs: int = 1, channels: int = 8, cutout: int = 4,
             aux: float = 0.4, drop: float = 0.3, **options) -> Path:
    """An evaluation-only run of DARTS_V2 on small fake data (8x8 images, ``train`` to train on, 24 to test)."""
    spec = build_spec(tmp_path / "eval.yaml", {
        "name": "evaluate_only",
        "data": {"dataset": {"name": "fake", "train_size": train, "test_size": 24, "image_size": 8}, "eval_batch_size": 16},
        "stages": [{"type": "evaluate", "name": "eval", "genotype": "DARTS_V2", "epochs": epochs, "channels": channels, "layers": 3,
                    "batch_size": 16, "cutout": cutout, "auxiliary_weight": aux, "drop_path": drop}],
        "run": {"cpu": True},
    })
    return run_in(spec, tmp_path / folder, **options)


def lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_one_epoch_on_fake_data_returns_every_field(tmp_path: Path) -> None:
    run_dir = evaluate(tmp_path, "run")
    (result,) = json.loads((run_dir / "summary.json").read_text())["evaluations"]
    assert FIELDS <= set(result)
    assert result["genotype"] == "DARTS_V2" and result["genotype_json"] == DARTS_V2.to_json()
    assert result["dataset"] == "fake" and result["epochs"] == 1 and result["device"] == "cpu"
    assert 0 <= result["test_acc_final"] <= result["test_acc_best"] <= 1
    assert result["test_error_final"] == pytest.approx(100 * (1 - result["test_acc_final"]))
    assert result["test_error_best"] <= result["test_error_final"]
    assert result["params_M"] > 0 and result["madds_M"] > 0
    assert result["device_hours"] > 0 and result["wall_seconds"] > 0

    records = lines(run_dir)
    assert [(r["kind"], r["stage"], r["epoch"]) for r in records] == [("eval_epoch", "eval", 0)]
    assert {"train/loss", "train/acc", "test/acc", "lr", "drop_path_prob", "time"} <= set(records[0])

    package = torch.load(run_dir / "models" / "eval.pt", weights_only=True)
    net = build_network(package["network"])
    net.load_state_dict(package["state_dict"])

    # A finished run resumed trains nothing and keeps its result.
    resume_run(run_dir, RunOptions(progress=False))
    assert len(lines(run_dir)) == 1
    assert json.loads((run_dir / "summary.json").read_text())["evaluations"] == [result]


def _same_evaluation(a: Path, b: Path) -> None:
    strip = lambda rs: [{k: v for k, v in r.items() if k != "time"} for r in rs]  # noqa: E731
    assert strip(lines(a)) == strip(lines(b))
    ma = torch.load(a / "models" / "eval.pt", weights_only=True)["state_dict"]
    mb = torch.load(b / "models" / "eval.pt", weights_only=True)["state_dict"]
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)


def test_resumes_after_an_epoch_bit_identically(tmp_path: Path) -> None:
    options = dict(train=32, epochs=2, channels=4, cutout=2, aux=0.0, drop=0.2)
    with pytest.raises(Interrupted):
        evaluate(tmp_path, "a", stop_after_epochs=1, **options)
    resume_run(tmp_path / "a", RunOptions(progress=False))
    _same_evaluation(tmp_path / "a", evaluate(tmp_path, "b", **options))
    assert [r["epoch"] for r in lines(tmp_path / "a")] == [0, 1]


def test_resumes_mid_epoch_after_a_signal_bit_identically(tmp_path: Path, monkeypatch) -> None:
    from sgl.engine.run.evaluate import EvaluationStage

    real, calls = EvaluationStage.iteration, {"n": 0}

    def interrupted(self, epoch):
        real(self, epoch)
        calls["n"] += 1
        if calls["n"] == 3:  # the third of four iterations of the first epoch: Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)

    options = dict(train=64, epochs=2, channels=4, cutout=2, aux=0.4, drop=0.2)
    monkeypatch.setattr(EvaluationStage, "iteration", interrupted)
    with pytest.raises(Interrupted):
        evaluate(tmp_path, "a", **options)
    monkeypatch.setattr(EvaluationStage, "iteration", real)
    assert not (tmp_path / "a" / "metrics.jsonl").exists()  # stopped inside the first epoch
    resume_run(tmp_path / "a", RunOptions(progress=False))
    _same_evaluation(tmp_path / "a", evaluate(tmp_path, "b", **options))


def test_learner_genotype_comes_from_the_search(make_spec, tmp_path: Path) -> None:
    data = only(dataset={"name": "fake", "train_size": 64, "test_size": 16, "image_size": 8}, batch_size=16)
    stages = [{"epochs": 1, "steps": ["A", "W"]},
              {"type": "evaluate", "learner": "alice", "epochs": 1, "channels": 4, "layers": 3, "batch_size": 16, "cutout": 0}]
    spec = make_spec(data=data, learners=only(alice=DARTS), loss_weights={"pseudo": 0}, stages=stages)
    run_dir = run_in(spec, tmp_path / "run")
    summary = json.loads((run_dir / "summary.json").read_text())
    (result,) = summary["evaluations"]
    assert result["genotype"] == "genotypes/alice.json" and result["learner"] == "alice"
    assert result["genotype_json"] == json.loads((run_dir / "genotypes" / "alice.json").read_text())


