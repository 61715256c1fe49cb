"""A 2 × 2 study run by real processes: on this machine (local executor) and on a local Ray instance,
each trial an ordinary run, bit-identical to the same `sgl run` alone and between the executors;
its table in Markdown, LaTeX and CSV, and `sgl report` / `sgl resume` / `sgl.open_study` on it."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, build_spec, checkpoint_weights, run_metrics

#: Two DARTS learners on a tenth of digits (conftest's base), seeds × λ, two deterministic metrics.
STUDY = {"vary": {"seed": [0, 1], "loss_weights.pseudo": [0.5, 2.0]},
         "table": {"metrics": ["test_error", "learners.alice.test_acc.V", "params"]}}


def sgl(*args: str, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sgl.engine.cli.main", *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})}, timeout=timeout)


def assert_same_run(a: Path, b: Path) -> None:
    assert run_metrics(a) == run_metrics(b)
    wa, wb = checkpoint_weights(a), checkpoint_weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), [k for k in wa if not torch.equal(wa[k], wb[k])]


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("study")
    spec = build_spec(tmp / "spec.yaml", study=STUDY)
    result = sgl("study", str(spec), "--study-dir", str(tmp / "local"), "-q")
    return spec, tmp / "local", result


def test_a_local_study_runs_every_trial_as_an_ordinary_run(local):
    spec, study, result = local
    assert result.returncode == 0, result.stderr
    manifest = json.loads((study / "study.json").read_text())
    assert manifest["executor"] == "local" and manifest["parallel"] * manifest["threads"] <= os.cpu_count()
    assert [t["state"] for t in manifest["trials"]] == ["completed"] * 4
    for trial in manifest["trials"]:
        run_dir = study / "trials" / trial["id"]
        info = json.loads((run_dir / "run.json").read_text())
        assert info["overrides"] == [*trial["overrides"], f"run.threads={manifest['threads']}"]
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    # the table: one row per λ, mean ± std (n) over the two seeds
    assert "| loss_weights.pseudo | test error (%) | learners.alice.test_acc.V | params (M) | trials |" in result.stdout
    assert result.stdout.count("(2) |") == 6 and result.stdout.count("| 2/2 |") == 2
    assert (study / "table.md").read_text() in result.stdout
    assert (study / "figures" / "study.png").is_file() and (study / "report.html").is_file()


def test_a_trial_is_bit_identical_to_the_same_run_alone(local, tmp_path):
    spec, study, _ = local
    trial = json.loads((study / "study.json").read_text())["trials"][3]
    info = json.loads((study / "trials" / trial["id"] / "run.json").read_text())
    alone = tmp_path / "alone"
    result = sgl("run", str(spec), *info["overrides"], "--run-dir", str(alone), "-q")
    assert result.returncode == 0, result.stderr
    assert_same_run(study / "trials" / trial["id"], alone)


def test_report_formats_and_the_python_api(local):
    import sgl as api

    spec, study, _ = local
    opened = api.open_study(study)
    table = opened.table()
    assert [row.variant for row in table.rows] == [{"loss_weights.pseudo": "0.5"}, {"loss_weights.pseudo": "2.0"}]
    cell = table.rows[0].cells["test_error"]
    assert cell.n == 2 and [rep for rep, _ in cell.values] == ["seed=0", "seed=1"]
    runs = [opened.run(t.id) for t in opened.trials if t.values["loss_weights.pseudo"] == "0.5"]
    # test_error of a search: 100 − the best test accuracy of a learner's result network (the one its
    # architecture was learned through: V with stage 2, as the report says)
    best = [max(r.summary.learners[name].test_acc[learner.final_net] for name, learner in r.plan.learners.items())
            for r in runs]
    assert cell.mean == pytest.approx(sum(100 - 100 * b for b in best) / 2)
    result = sgl("report", str(study), "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["loss_weights.pseudo"] for r in rows] == ["0.5", "2.0"]
    assert float(rows[0]["test_error mean"]) == cell.mean and rows[0]["test_error n"] == "2"
    assert rows[0]["test_error per seed"].startswith("seed=0:")
    latex = sgl("report", str(study), "--format", "latex").stdout
    assert latex.startswith("\\begin{tabular}") and "$\\pm$" in latex and "loss\\_weights.pseudo" in latex
    # any trial is an ordinary run directory
    trial_dir = opened.trial_dir(opened.trials[0].id)
    assert sgl("report", str(trial_dir)).returncode == 0
    # a complete study resumes to nothing new
    again = sgl("resume", str(study), "-q")
    assert again.returncode == 0, again.stderr
    assert all(t["attempts"] == 1 for t in json.loads((study / "study.json").read_text())["trials"])


def test_the_same_study_on_a_local_ray_instance_gives_the_same_trials(local, tmp_path):
    pytest.importorskip("ray")
    spec, study, _ = local
    result = sgl("study", str(spec), "--executor", "ray", "--study-dir", str(tmp_path / "ray"), "-q")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "ray" / "study.json").read_text())
    assert manifest["executor"] == "ray"
    assert manifest["threads"] == json.loads((study / "study.json").read_text())["threads"]
    for trial in manifest["trials"]:
        assert_same_run(study / "trials" / trial["id"], tmp_path / "ray" / "trials" / trial["id"])
    assert (tmp_path / "ray" / "table.md").read_text() == (study / "table.md").read_text()
