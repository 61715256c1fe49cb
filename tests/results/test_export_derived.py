"""`sgl export` of a finished run: each searchable learner's derived network (the architecture
found, as an evaluate stage builds it), its genotype, the trained network where an evaluate stage
ran; files named for what they are, loadable in plain PyTorch as the README shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sgl.engine.cli.main import main

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = (REPO / "specs" / "quickstart.yaml", (
    "data.split.train=0.1", "data.split.val=0.1", "stages.1.epochs=1", "run.log_every=3", "run.cpu=true", "expect=[]",
))


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory) -> Path:
    import sgl

    spec, overrides = QUICKSTART
    return sgl.run(spec, overrides, run_dir=tmp_path_factory.mktemp("quick") / "run", progress=False).dir


def _digits(n: int) -> torch.Tensor:
    from sklearn.datasets import load_digits

    images = torch.tensor(load_digits().images[:n], dtype=torch.float32) / 16.0
    return images.unsqueeze(1)  # N x 1 x 8 x 8, as the run's data


def _meta(path: Path) -> dict:
    extra = {"sgl.json": ""}
    torch.export.load(str(path), extra_files=extra)
    return json.loads(extra["sgl.json"])


def test_export_of_the_quickstart_writes_each_searchable_learners_derived_network(quickstart_run: Path) -> None:
    result = CliRunner().invoke(main, ["export", str(quickstart_run), "--channels", "8", "--layers", "5"])
    assert result.exit_code == 0, result.output
    out = quickstart_run / "export"
    assert sorted(p.name for p in out.iterdir()) == [
        "alice.derived.pt2", "alice.genotype.json", "bob.derived.pt2", "bob.genotype.json", "carol.network.pt2"]
    assert f"wrote {out / 'alice.derived.pt2'}" in result.stdout
    for learner in ("alice", "bob"):
        # as the README shows: plain PyTorch, no sgl needed to run it
        net = torch.export.load(str(out / f"{learner}.derived.pt2")).module()
        logits = net(_digits(5))
        assert logits.shape == (5, 10) and torch.isfinite(logits).all()
        meta = _meta(out / f"{learner}.derived.pt2")
        assert meta["what"] == "derived" and meta["trained"] is False and meta["learner"] == learner
        assert (meta["channels"], meta["layers"]) == (8, 5) and meta["overridden"] == ["channels", "layers"]
        assert "darts protocol's defaults" in meta["sizes_from"]
        genotype = json.loads((out / f"{learner}.genotype.json").read_text())
        assert genotype == json.loads((quickstart_run / "genotypes" / f"{learner}.json").read_text())
    carol = _meta(out / "carol.network.pt2")
    assert carol["what"] == "network" and carol["trained"] is True and carol["net"] == "V"


def test_a_derived_network_without_an_evaluate_stage_has_the_darts_protocols_sizes(quickstart_run: Path, tmp_path: Path) -> None:
    from sgl.engine.results.models import load_model
    from sgl.registry.evaluation import DartsProtocol

    result = CliRunner().invoke(main, ["export", str(quickstart_run), "-l", "alice", "--network", "derived",
                                       "--format", "pt", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    path = tmp_path / "alice.derived.pt"
    package = torch.load(path, weights_only=True)
    defaults = DartsProtocol()
    assert (package["network"]["channels"], package["network"]["layers"]) == (defaults.channels, defaults.layers)
    assert package["export"]["what"] == "derived" and package["export"]["overridden"] == []
    assert load_model(path)(_digits(2)).shape == (2, 10)


def test_an_evaluated_learner_also_gets_its_trained_network_sized_by_its_stage(make_spec, tmp_path: Path) -> None:
    import sgl

    stages = [{"name": "search", "epochs": 1, "steps": ["A", "W", "PL", "V"]}, {"name": "derive"},
              {"name": "evaluate", "learner": "alice", "epochs": 1, "channels": 4, "layers": 3, "batch_size": 32}]
    spec = make_spec(stages=stages)
    run = sgl.run(spec, run_dir=tmp_path / "run", progress=False).dir
    paths = sgl.export_all(run, ["alice"])
    assert sorted(p.name for p in paths) == ["alice.derived.pt2", "alice.genotype.json", "alice.trained.pt2"]
    trained, derived = _meta(run / "export" / "alice.trained.pt2"), _meta(run / "export" / "alice.derived.pt2")
    assert trained["what"] == "trained" and trained["trained"] is True and trained["stage"] == "evaluate"
    assert (derived["channels"], derived["layers"]) == (4, 3) and "evaluate stage 'evaluate'" in derived["sizes_from"]
    from sgl.engine.results.models import load_model

    evaluated = load_model(run / "models" / "evaluate.pt")
    x = _digits(3)
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(str(run / "export" / "alice.trained.pt2")).module()(x), evaluated(x))


def test_export_says_what_is_wrong(quickstart_run: Path) -> None:
    result = CliRunner().invoke(main, ["export", str(quickstart_run), "-l", "carol", "--network", "derived"])
    assert result.exit_code == 2 and "'carol' has no genotype" in result.output
    result = CliRunner().invoke(main, ["export", str(quickstart_run), "-l", "alice", "--network", "trained"])
    assert result.exit_code == 2 and "no evaluation stage" in result.output
