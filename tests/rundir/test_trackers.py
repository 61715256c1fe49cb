"""run.trackers: a quickstart run reports to TensorBoard, MLflow (its local SQLite store) and W&B
(offline files), each inside the run directory, read back with the tracker's own Python API."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The quickstart shrunk (a tenth of digits, one search epoch), with three trackers.
QUICKSTART = (REPO / "specs" / "quickstart.yaml", (
    "data.split.train=0.1", "data.split.val=0.1", "stages.1.epochs=1", "run.log_every=3", "run.cpu=true",
    "expect=[]", "run.trackers=[tensorboard, mlflow, wandb]",
))

pytest.importorskip("mlflow", reason="the test extra installs MLflow: pip install -e '.[test]'")
pytest.importorskip("wandb", reason="the test extra installs W&B: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory) -> Path:
    import sgl

    for key in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_API_KEY"):  # the defaults under test
        os.environ.pop(key, None)
    spec, overrides = QUICKSTART
    run = sgl.run(spec, overrides, run_dir=tmp_path_factory.mktemp("tracked") / "run", progress=False)
    return run.dir


def test_mlflow_reads_metrics_params_and_artifacts_from_the_run_directory(tracked_run: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    store = tracked_run / "trackers" / "mlflow"
    assert (store / "mlflow.db").is_file()
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == tracked_run.name and run.info.status == "FINISHED"
    # the resolved spec is the run's params
    assert run.data.params["name"] == "quickstart"
    assert run.data.params["learners.alice.channels"] == "4"
    assert run.data.params["data.split.train"] == "0.1"
    assert json.loads(run.data.params["run.trackers"])[1]["name"] == "mlflow"
    # every metric line: iter (per step) and epoch lines (per epoch) of every learner
    client = MlflowClient()
    history = client.get_metric_history(run.info.run_id, "epoch/alice/val/W/acc")
    assert [m.step for m in history] == [0, 1]
    lines = [json.loads(line) for line in (tracked_run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in lines if r["kind"] == "epoch" and r["learner"] == "alice"]
    assert [m.value for m in history] == pytest.approx([r["val/W/acc"] for r in epochs])
    iters = client.get_metric_history(run.info.run_id, "iter/carol/W/loss")
    assert len(iters) == sum(1 for r in lines if r["kind"] == "iter" and r["learner"] == "carol")
    # artifacts: each epoch's genotype, the figures, the spec as run and the summary
    def listed(folder: str | None = None) -> set[str]:
        return {a.path for a in client.list_artifacts(run.info.run_id, folder)}

    assert {"genotypes/alice/epoch_001.json", "genotypes/alice/epoch_002.json"} <= listed("genotypes/alice")
    assert {"spec.resolved.yaml", "summary.json"} <= listed()
    figures = listed("figures")
    assert any(p.endswith("_accuracy.png") for p in figures) and "figures/cell_alice_normal.png" in figures
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="genotypes/alice/epoch_002.json"))
    assert json.loads(local.read_text()) == json.loads((tracked_run / "genotypes" / "alice.json").read_text())
    assert str(run.info.artifact_uri).startswith((store / "artifacts").resolve().as_uri())


def _wandb_records(path: Path) -> list:
    """The records of an offline W&B run file (W&B's own protobuf records in its LevelDB-style log)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, position, pending, out = path.read_bytes(), 32768, 7, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if kind == 0 and length == 0:
            break
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def test_wandb_offline_files_hold_config_metrics_and_files(tracked_run: Path) -> None:
    files = list((tracked_run / "trackers" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    records = _wandb_records(files[0])
    runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {_key(item): json.loads(item.value_json) for item in runs[0].config.update}
    assert config["name"] == "quickstart" and config["learners"]["alice"]["channels"] == 4
    history = [{_key(i): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    epochs = [h for h in history if "epoch/bob/val/W/acc" in h]
    assert [h["epoch/x"] for h in epochs] == [0, 1]
    genotypes = [h for h in history if "genotype/alice" in h]
    assert [h["genotype/x"] for h in genotypes] == [1, 2] and "normal" in genotypes[-1]["genotype/alice"]
    saved = {f.path for r in records if r.WhichOneof("record_type") == "files" for f in r.files.files}
    assert {"spec.resolved.yaml", "summary.json", "figures/cell_alice_normal.png"} <= saved


def test_tensorboard_gets_the_metrics_too(tracked_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked_run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0}).Reload()
    assert "epoch/alice/val/W/acc" in events.Tags()["scalars"]


def test_a_missing_tracker_is_one_line_naming_the_extra(tmp_path: Path, make_spec, monkeypatch) -> None:
    from click.testing import CliRunner

    from sgl.engine.cli.main import main
    from sgl.engine.rundir import trackers

    spec = make_spec(run={"cpu": True, "trackers": ["tensorboard", {"name": "aim", "experiment": "x"}]})
    monkeypatch.setattr(trackers, "installed", lambda name: name != "aim")
    result = CliRunner().invoke(main, ["run", str(spec), "--run-dir", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: run.trackers: aim is not installed; install this project's aim extra: pip install -e '{REPO}[aim]'"
    assert not (tmp_path / "run").exists()


def test_trackers_are_checked_where_the_spec_says(spec_file) -> None:
    from conftest import problems

    path = spec_file("""
name: t
data: {dataset: digits}
learners: {alice: {kind: darts}}
stages: [{name: search, epochs: 1, steps: [W]}]
run: {trackers: [tensorboard, mlfow, tensorboard]}
""")
    found = problems(path, plan=False)
    assert any("run.trackers.1" in p and "mlfow" in p for p in found), found


def test_the_default_is_tensorboard_as_run_tensorboard_says(make_spec) -> None:
    import sgl

    assert [(t.name, t.required) for t in sgl.plan(make_spec()).run.trackers] == [("tensorboard", False)]
    assert sgl.plan(make_spec(run={"tensorboard": "off"})).run.trackers == ()
    plan = sgl.plan(make_spec(run={"trackers": [{"name": "wandb", "options": {"mode": "offline"}}]}))
    (tracker,) = plan.run.trackers
    assert (tracker.name, tracker.experiment, tracker.options, tracker.required) == ("wandb", "test", {"mode": "offline"}, True)


def test_a_resumed_run_continues_the_same_mlflow_run(tmp_path: Path) -> None:
    import mlflow

    from sgl.engine.plan.settings import TrackerPlan
    from sgl.engine.rundir.layout import RunDir
    from sgl.engine.rundir.trackers import Trackers

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    rundir = RunDir(tmp_path / "run")
    rundir.path.mkdir()
    plans = (TrackerPlan("mlflow", "resumed", None, {}, required=True),)
    for epoch in (0, 1):  # the run, then its resume: each process starts the trackers anew
        trackers = Trackers(rundir, plans)
        trackers.start({"name": "resumed", "seed": 3})
        trackers.log({"val/W/acc": 0.5 + epoch / 10}, "epoch", "alice", epoch)
        trackers.finish()
    ids = json.loads((rundir.trackers / "ids.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{rundir.trackers / 'mlflow' / 'mlflow.db'}")
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.run_id == ids["mlflow"] and run.data.params == {"name": "resumed", "seed": "3"}
    history = mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "epoch/alice/val/W/acc")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.6)]
