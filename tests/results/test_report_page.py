"""The report of a real (tiny) run, as a reader sees it: rendered by headless Chromium where one is
installed, every figure loaded; figures drawn once (the run's own are reused); the spec as run on
the page; metric names as the run logs them; legends that leave the curves alone."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    """A tiny SGL run with its figures drawn at its end (as for a tracker), then `sgl report` into it."""
    import sgl
    from conftest import build_spec
    from sgl.engine.results.pages import run_figures

    root = tmp_path_factory.mktemp("page")
    spec = build_spec(root / "spec.yaml")
    run = sgl.run(spec, run_dir=root / "run", progress=False).dir
    run_figures(run)  # what the recorder draws at the end of a run with trackers
    return run


def _stamps(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_the_report_reuses_the_runs_figures_and_draws_none_twice(reported: Path) -> None:
    from click.testing import CliRunner

    from sgl.engine.cli.main import main

    before = _stamps(reported / "figures")
    result = CliRunner().invoke(main, ["report", str(reported)])
    assert result.exit_code == 0, result.output
    after = _stamps(reported / "figures")
    assert after == before  # nothing drawn again, nothing added: the derive stage's cells are the report's
    assert any(name.startswith("cell_alice_normal") for name in after)
    page = (reported / "report.html").read_text()
    assert 'src="figures/cell_alice_normal.png"' in page and "test-run_alice_normal" not in page


def test_the_page_has_the_spec_as_run_and_the_runs_metric_names(reported: Path) -> None:
    page = (reported / "report.html").read_text()
    markdown = (reported / "report.md").read_text()
    resolved = (reported / "spec.resolved.yaml").read_text()
    for text in (page, markdown):
        assert "Spec as run" in text and "val/W/acc (%)" in text and "test/V/acc (%)" in text
        assert "Result network" in text and "test/V/acc)" in text  # the headline names its network
    assert "checkpoint_every: 10.0" in resolved and "checkpoint_every: 10.0" in page and "checkpoint_every: 10.0" in markdown
    assert "<table>" in page and "{% " not in page and "{{" not in page  # rendered from the template


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _chromium(browser: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def test_headless_chromium_renders_the_page_with_every_figure_loaded(reported: Path, tmp_path: Path) -> None:
    browser = _browser()
    if browser is None:
        pytest.skip(f"no headless browser found (looked for {', '.join(BROWSERS)}; Debian: apt-get install chromium)")
    page = (reported / "report.html").as_uri()
    dom = _chromium(browser, tmp_path, "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    images = re.findall(r"<img [^>]*>", dom.stdout)
    assert len(images) >= 8  # loss, accuracy, α maps and cells of two learners
    body = re.search(r"<body( [^>]*)>", dom.stdout).group(1)
    assert f'data-figures-loaded="{len(images)}"' in body and 'data-figures-broken="0"' in body, body
    shot = tmp_path / "page.png"
    done = _chromium(browser, tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", page)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (2400, 1280) and shot.stat().st_size > 50_000 and float(pixels[..., :3].std()) > 0.05


def test_a_page_away_from_its_figures_says_so(reported: Path, tmp_path: Path) -> None:
    browser = _browser()
    if browser is None:
        pytest.skip("no headless browser found")
    moved = tmp_path / "report.html"
    moved.write_text((reported / "report.html").read_text())
    dom = _chromium(browser, tmp_path, "--dump-dom", moved.as_uri())
    assert '<p class="missing">' in dom.stdout and 'data-figures-loaded="0"' in dom.stdout
