"""`sgl report`: figures of the documented sizes, an HTML page and its Markdown twin, group statistics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sgl.engine.results.report import ALPHA_FIGSIZE, CURVE_FIGSIZE, DPI, write_report
from sgl.registry.spaces.genotype import DEFAULT_PRIMITIVES
from sgl.registry.spaces.published import DARTS_V2, PC_DARTS

EDGES = 14  # 4 nodes


def _softmax(row: list[float]) -> list[float]:
    top = max(row)
    exp = [math.exp(v - top) for v in row]
    return [v / sum(exp) for v in exp]


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def make_run(root: Path, name: str, seed: int, *, test_error: float | None = None, learners=("alice", "bob"),
             metrics: bool = True, device: str = "cpu", hypergradient: str = "first_order",
             histories: tuple[str, ...] | None = None) -> Path:
    """A run directory written by hand in the formats of docs/run-directory.md."""
    run = root / name / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"name": name, "spec": "spec.yaml", "base_dir": str(root), "overrides": [], "seed": seed}))
    summary = {
        "name": name, "status": "completed", "dataset": "digits", "hypergradient": hypergradient, "seed": seed,
        "epochs_done": 3, "distributed": {"processes": 1},
        "learners": {
            k: {"kind": "darts", "searchable": True, "val_acc": {"W": 0.9, "V": 0.91}, "test_acc": {"W": 0.88 + 0.01 * i, "V": 0.9},
                "genotype": f"genotypes/{k}.json", "params_M": 0.05}
            for i, k in enumerate(learners)
        },
        "search_cost": {"device": device, "hours": 0.01, "device_hours": 0.01, "wall_seconds": 36.0},
        "evaluations": [],
    }
    if test_error is not None:
        summary["evaluations"].append({
            "stage": "evaluate", "learner": learners[0], "genotype": f"genotypes/{learners[0]}.json",
            "genotype_json": PC_DARTS.to_json(), "dataset": "digits", "epochs": 3,
            "test_error_final": test_error, "test_error_best": test_error - 0.1,
            "test_acc_final": 1 - test_error / 100, "test_acc_best": 1 - (test_error - 0.1) / 100,
            "params_M": 3.3, "madds_M": 528.0, "device": device, "num_processes": 1, "hours": 0.02,
            "device_hours": 0.02, "wall_seconds": 72.0, "model": "models/evaluate.pt",
        })
    (run / "summary.json").write_text(json.dumps(summary))
    if not metrics:
        return run

    records, step = [], 0
    for epoch in range(3):
        for it in range(4):
            for i, k in enumerate(learners):
                records.append({"kind": "iter", "phase": "search", "epoch": epoch, "step": step, "learner": k,
                                "W/loss": 2.3 / (1 + step) + 0.1 * i, "W/acc": 0.1 + 0.05 * step,
                                "V/loss": 2.2 / (1 + step), "V/acc": 0.1 + 0.06 * step, "lr/W": 0.025, "lr/V": 0.025, "time": step})
            step += 1
        for i, k in enumerate(learners):
            records.append({"kind": "epoch", "phase": "search", "epoch": epoch, "learner": k,
                            "train/W/loss": 1.0 / (epoch + 1), "train/W/acc": 0.5 + 0.1 * epoch,
                            "train/V/loss": 0.9 / (epoch + 1), "train/V/acc": 0.55 + 0.1 * epoch,
                            "val/W/acc": 0.45 + 0.1 * epoch + 0.02 * i, "val/V/acc": 0.5 + 0.1 * epoch,
                            "lr/W": 0.02, "lr/V": 0.02, "entropy/normal": 2.0, "entropy/reduce": 2.0, "time": 10 * epoch})
    for epoch in range(3):
        records.append({"kind": "eval_epoch", "stage": "evaluate", "epoch": epoch, "train/loss": 2.0 - 0.5 * epoch,
                        "train/acc": 0.3 + 0.2 * epoch, "test/acc": 0.25 + 0.2 * epoch, "lr": 0.025, "time": 5.0 * epoch})
    records_text = "".join(json.dumps(r) + "\n" for r in records) + '{"kind": "iter", "torn'  # a killed run's last line
    (run / "metrics.jsonl").write_text(records_text)

    for i, k in enumerate(learners):
        DARTS_V2.save(run / "genotypes" / f"{k}.json")
        if histories is not None and k not in histories:
            continue
        history = []
        for epoch in range(3):
            alpha = {cell: [_softmax([0.1 * epoch * ((e + o + i + c) % 3) for o in range(len(DEFAULT_PRIMITIVES))])
                            for e in range(EDGES)] for c, cell in enumerate(("normal", "reduce"))}
            history.append({"epoch": epoch, "genotype": DARTS_V2.to_json(), "alpha": alpha,
                            "primitives": list(DEFAULT_PRIMITIVES), "entropy": {"normal": 2.0, "reduce": 2.0}})
        _write_jsonl(run / "genotypes" / f"{k}.history.jsonl", history)
    return run


def _png(path: Path) -> np.ndarray:
    from matplotlib import image

    return image.imread(path)


def _size(figsize: tuple[float, float]) -> tuple[int, int]:
    return round(figsize[1] * DPI), round(figsize[0] * DPI)  # rows, columns


def test_report_on_a_tiny_run_writes_every_figure_and_the_page(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", "tiny", 0, test_error=12.5, histories=("alice",))
    out = tmp_path / "report"
    result = write_report([run], out)

    figures = {p.name for p in result["figures"]}
    label = "tiny-seed0"
    expected = {f"{label}_loss", f"{label}_accuracy", f"{label}_eval",
                *(f"{label}_alpha_alice_{c}" for c in ("normal", "reduce")),
                *(f"{label}_{k}_{c}" for k in ("alice", "bob", "eval-evaluate") for c in ("normal", "reduce"))}
    for stem in expected:
        assert f"{stem}.png" in figures and f"{stem}.svg" in figures, stem
        assert (out / "figures" / f"{stem}.svg").stat().st_size > 0

    pngs = sorted((out / "figures").glob("*.png"))
    assert len(pngs) == len(expected)
    for png in pngs:
        pixels = _png(png)
        assert pixels.ndim == 3 and pixels.shape[2] in (3, 4), png.name
        assert float(pixels[..., :3].std()) > 0.01, f"{png.name} is blank"
        if png.stem.endswith(("_loss", "_accuracy", "_eval")):
            assert pixels.shape[:2] == _size(CURVE_FIGSIZE), png.name
        elif "_alpha_" in png.stem:
            assert pixels.shape[:2] == _size(ALPHA_FIGSIZE), png.name
        else:  # cell diagrams are sized by the cell
            assert min(pixels.shape[:2]) > 50, png.name

    page = result["html"].read_text()
    md = result["markdown"].read_text()
    assert result["html"] == out / "report.html" and result["markdown"] == out / "report.md"
    for text in (page, md):
        assert label in text and "12.50" in text and "12.40" in text  # final and best test error
        assert "final" in text and "best" in text and "CPU-hours" in text and "Params (M)" in text
        assert f"figures/{label}_alpha_alice_normal.png" in text
    assert str(tmp_path) not in page.split("<h2>Run")[0]  # figures are referenced relatively
    assert page.count("<img") == md.count("![")


def test_report_without_evaluation_labels_the_search_error_and_cost_in_gpu_days(tmp_path: Path) -> None:
    run = make_run(tmp_path, "search_only", 1, metrics=False, device="cuda")
    result = write_report([run], run)  # into the run directory itself
    (row,) = result["rows"]
    assert row["test_error_final"] == pytest.approx(100 - 90.0) and row["test_error_best"] is None
    assert "search network" in row["source"] and "alice/V" in row["source"]
    assert row["search_cost"] == pytest.approx(0.01 / 24) and row["search_cost_unit"] == "GPU-days"
    md = (run / "report.md").read_text()
    assert "0.000417 GPU-days" in md
    assert (run / "report.html").exists()


def test_groups_of_runs_show_mean_and_std(tmp_path: Path) -> None:
    runs = [make_run(tmp_path, "sgl", s, test_error=e, metrics=False) for s, e in zip((0, 1, 2), (2.5, 2.7, 2.9))]
    runs += [make_run(tmp_path, "darts", s, test_error=e, learners=("alice",), metrics=False, hypergradient="darts_unrolled")
             for s, e in zip((0, 1, 2), (3.0, 3.0, 3.3))]
    result = write_report(runs, tmp_path / "out")
    groups = {g["group"]: g for g in result["groups"]}
    assert set(groups) == {"sgl", "darts"}
    assert groups["sgl"]["n"] == 3 and groups["sgl"]["test_error_final"] == "2.70 ± 0.20"
    assert groups["darts"]["test_error_final"] == "3.10 ± 0.17" and groups["darts"]["seeds"] == [0, 1, 2]
    assert groups["sgl"]["methods"] == ["sgl (first_order, K=2)"]
    assert groups["darts"]["methods"] == ["darts (darts_unrolled, K=1)"]
    md = result["markdown"].read_text()
    assert "2.70 ± 0.20" in md and "3.10 ± 0.17" in md and "mean ± std" in md
    png = tmp_path / "out" / "figures" / "groups_test_error.png"
    assert _png(png).shape[:2] == _size(CURVE_FIGSIZE)

    # Explicit groups override the spec names: here, seeds 0 and 1 of both specs against seed 2.
    explicit = write_report([], tmp_path / "out2", groups={"first": [runs[0], runs[1]], "second": [runs[2]]})
    by_group = {g["group"]: g for g in explicit["groups"]}
    assert by_group["first"]["test_error_final"] == "2.60 ± 0.14" and by_group["second"]["test_error_final"] == "2.90"
    assert len(explicit["rows"]) == 3


def test_not_a_run_directory(tmp_path: Path) -> None:
    from sgl.engine.results.report import ReportError

    with pytest.raises(ReportError, match="not an sgl run directory"):
        write_report([tmp_path], tmp_path / "out")


def test_report_command(tmp_path: Path) -> None:
    import click
    from click.testing import CliRunner

    from sgl.engine.cli.results import report

    cli = click.Group(commands=[report])
    runs = [make_run(tmp_path, "sgl", s, test_error=e, metrics=False) for s, e in ((0, 2.5), (1, 2.7))]
    other = make_run(tmp_path, "darts", 0, test_error=3.0, learners=("alice",), metrics=False)
    result = CliRunner().invoke(cli, ["report", *map(str, runs), "-o", str(tmp_path / "out"),
                                      "--group", f"baseline={tmp_path / 'darts' / '*'}"])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| baseline |" in md and "2.60 ± 0.14" in md and str(other) in md

    result = CliRunner().invoke(cli, ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no such run directory" in result.output
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])  # a folder that is not a run
    assert result.exit_code == 2 and "not an sgl run directory" in result.output
    result = CliRunner().invoke(cli, ["report", "--group", "nolabel"])
    assert result.exit_code == 2 and "LABEL=RUN_DIR" in result.output
