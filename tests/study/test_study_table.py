"""A study's table from its trials' run directories (made here by hand: no training): one row per
variant with mean ± std (n), the per-seed values, failed trials counted apart, the recipe's
published numbers beside the metric they speak of, in Markdown, LaTeX and CSV, and a figure."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import pytest

from conftest import MINI_SPEC
from sgl.engine.study.manifest import Manifest, StudyDir, TrialRecord
from sgl.engine.study.report import render, write_study_report
from sgl.engine.study.table import read_table

EXPECT = """expect:
  - {metric: learners.alice.test_acc.V, value: 0.95, tolerance: 0.02, source: "Paper, Table 9"}
  - {metric: search_cost.hours, range: [0.0, 1.0], source: "budget"}
"""
#: (λ, seed) -> alice's V test accuracy; None: the trial failed
ACCURACY = {("0.5", "0"): 0.90, ("0.5", "1"): 0.94, ("2.0", "0"): 0.80, ("2.0", "1"): None}


def summary(seed: int, acc: float) -> dict:
    return {"name": "mini", "status": "completed", "dataset": "digits", "hypergradient": "first_order", "seed": seed,
            "epochs_done": 3, "distributed": {"processes": 1},
            "learners": {"alice": {"kind": "darts", "searchable": True, "test_acc": {"W": acc - 0.1, "V": acc},
                                   "params_M": 0.5}},
            "search_cost": {"device": "cpu", "hours": 0.01, "device_hours": 0.01, "wall_seconds": 60.0}}


@pytest.fixture
def study(tmp_path: Path) -> Path:
    trials = []
    for i, ((lam, seed), acc) in enumerate(ACCURACY.items()):
        record = TrialRecord(id=f"t{i:03d}", index=i, values={"loss_weights.pseudo": lam, "seed": seed},
                             overrides=[f"loss_weights.pseudo={lam}", f"seed={seed}"], digest="-",
                             state="completed" if acc is not None else "failed",
                             reason=None if acc is not None else "stopped: non-finite loss")
        run_dir = tmp_path / "trials" / record.id
        run_dir.mkdir(parents=True)
        (run_dir / "spec.resolved.yaml").write_text(MINI_SPEC + EXPECT)
        if acc is not None:
            (run_dir / "summary.json").write_text(json.dumps(summary(int(seed), acc)))
        trials.append(record)
    manifest = Manifest(name="mini", spec=str(tmp_path / "spec.yaml"), base_overrides=[],
                        vary={"loss_weights.pseudo": ["0.5", "2.0"], "seed": ["0", "1"]}, rows=["loss_weights.pseudo"],
                        metrics=["test_error", "learners.alice.test_acc.V", "search_cost"], executor="local",
                        address=None, parallel=2, threads=1, trials=trials)
    StudyDir(tmp_path).write(manifest)
    return tmp_path


def test_rows_are_variants_with_mean_std_and_n(study):
    table = read_table(study)
    first, second = table.rows
    assert first.variant == {"loss_weights.pseudo": "0.5"} and first.counts == "2/2"
    cell = first.cells["learners.alice.test_acc.V"]
    assert cell.values == [("seed=0", 0.90), ("seed=1", 0.94)]
    assert (cell.mean, cell.std) == (pytest.approx(0.92), pytest.approx(statistics.stdev([0.90, 0.94])))
    assert first.cells["test_error"].mean == pytest.approx(100 - 92)  # the best network's: V here
    assert second.counts == "1/2 (1 failed)" and second.cells["test_error"].n == 1
    assert second.cells["test_error"].text() == "20.00 (1)"  # one value: no spread
    assert [p.source for p in first.published["learners.alice.test_acc.V"]] == ["Paper, Table 9"]
    assert "test_error" not in first.published  # no evaluation stage: nothing published about it


def test_markdown_puts_published_numbers_beside_their_metric(study):
    text = render(read_table(study), "md")
    assert ("| loss_weights.pseudo | test error (%) | learners.alice.test_acc.V | learners.alice.test_acc.V, published "
            "| source | search cost (CPU-hours) | search cost (CPU-hours), published | source | trials |") in text
    assert "| 0.5 | 8.00 ± 2.83 (2) | 0.92 ± 0.0283 (2) | 0.95 ± 0.02 | Paper, Table 9 | 0.01 ± 0 (2) | 0 – 1 | " \
           "budget | 2/2 |" in text
    assert "| 2.0 | 20.00 (1) | 0.8 (1) |" in text and "| 1/2 (1 failed) |" in text


def test_csv_and_latex(study):
    rows = list(csv.DictReader(io.StringIO(render(read_table(study), "csv"))))
    assert rows[0]["learners.alice.test_acc.V per seed"] == "seed=0:0.9;seed=1:0.94"
    assert rows[1]["test_error n"] == "1" and rows[1]["trials"] == "1/2 (1 failed)"
    assert rows[0]["learners.alice.test_acc.V published"] == "0.95 ± 0.02"
    latex = render(read_table(study), "latex")
    assert "0.92 $\\pm$ 0.0283 (2)" in latex and "Paper, Table 9" in latex and latex.endswith("\\end{tabular}\n")


def test_the_report_writes_every_format_a_figure_and_a_page(study):
    result = write_study_report(study)
    for name in ("table.md", "table.tex", "table.csv", "report.html", "report.md", "figures/study.png"):
        assert (study / name).is_file(), name
    page = (study / "report.md").read_text()
    assert "stopped: non-finite loss" in page and "| t003 | 2.0 | 1 | failed | – | – | – | – |" in page
    assert result["markdown_table"].read_text() == render(result["table"], "md")
