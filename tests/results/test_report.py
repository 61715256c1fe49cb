"""Reports of runs: figures of the documented sizes, an HTML page and its Markdown twin, group statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import write_run_dir
from sgl.engine.results.report import ALPHA_FIGSIZE, CURVE_FIGSIZE, DPI, write_report


def _png(path: Path) -> np.ndarray:
    from matplotlib import image

    return image.imread(path)


def _size(figsize: tuple[float, float]) -> tuple[int, int]:
    return round(figsize[1] * DPI), round(figsize[0] * DPI)  # rows, columns


def test_report_on_a_tiny_run_writes_every_figure_and_the_page(tmp_path: Path) -> None:
    run = write_run_dir(tmp_path / "runs", "tiny", 0, test_error=12.5, histories=("alice",))
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
    run = write_run_dir(tmp_path, "search_only", 1, metrics=False, device="cuda")
    result = write_report([run], run)  # into the run directory itself
    (row,) = result["rows"]
    assert row["test_error_final"] == pytest.approx(100 - 90.0) and row["test_error_best"] is None
    assert "search network" in row["source"] and "alice/V" in row["source"]
    assert row["search_cost"] == pytest.approx(0.01 / 24) and row["search_cost_unit"] == "GPU-days"
    md = (run / "report.md").read_text()
    assert "0.000417 GPU-days" in md
    assert (run / "report.html").exists()


def test_groups_of_runs_show_mean_and_std(tmp_path: Path) -> None:
    runs = [write_run_dir(tmp_path, "sgl", s, test_error=e, metrics=False) for s, e in zip((0, 1, 2), (2.5, 2.7, 2.9))]
    runs += [write_run_dir(tmp_path, "darts", s, test_error=e, learners=("alice",), metrics=False, hypergradient="darts_unrolled")
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


