"""`sgl plan --resolved` (or --print-config): the spec as it would run, defaults filled and overrides
applied — printed, or written to a file that runs unchanged from wherever it is."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from ruamel.yaml import YAML

from sgl.engine.cli.main import main


def _plan_json(spec: Path, *overrides: str) -> dict:
    result = CliRunner().invoke(main, ["plan", str(spec), *overrides, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_print_config_fills_defaults_and_applies_overrides(make_spec) -> None:
    spec = make_spec()
    for flag in ("--resolved", "--print-config"):
        result = CliRunner().invoke(main, ["plan", str(spec), "optim.arch.lr=0.0007", flag])
        assert result.exit_code == 0, result.output
        data = YAML(typ="safe").load(result.stdout)
        assert data["optim"]["arch"]["lr"] == 0.0007  # the override
        assert data["run"]["checkpoint_every"] == 10.0 and data["hypergradient"]["method"] == "first_order"  # defaults
        assert data["learners"]["alice"]["nodes"] == 2 and "stem_multiplier" in data["learners"]["alice"]


def test_the_written_spec_runs_unchanged_from_another_folder(make_spec, tmp_path: Path) -> None:
    genotype = tmp_path / "genotypes" / "mine.json"
    genotype.parent.mkdir()
    from sgl.registry.spaces.published import DARTS_V2

    DARTS_V2.save(genotype)
    stages = [{"name": "search", "epochs": 1, "steps": ["A", "W", "PL", "V"]},
              {"name": "evaluate", "genotype": "genotypes/mine.json", "epochs": 1, "channels": 4, "layers": 3}]
    spec = make_spec(stages=stages, run={"output": "runs"})
    out = tmp_path / "elsewhere" / "deeper" / "resolved.yaml"
    result = CliRunner().invoke(main, ["plan", str(spec), "seed=7", "--resolved", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {out}"
    data = YAML(typ="safe").load(out.read_text())
    assert data["run"]["output"] == "../../runs" and data["stages"][1]["genotype"] == "../../genotypes/mine.json"
    original, rewritten = _plan_json(spec, "seed=7"), _plan_json(out)
    assert (out.parent / rewritten["run"]["output"]).resolve() == (spec.parent / original["run"]["output"]).resolve()
    assert rewritten["stages"][1]["given_as"] == "../../genotypes/mine.json"
    for plan in (original, rewritten):
        plan["run"].pop("output")
        plan["stages"][1].pop("given_as")  # how the spec named the genotype file: its path from there
    assert rewritten == original  # the same plan, to the last value (the genotype read from the same file)


def test_output_needs_resolved(make_spec, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plan", str(make_spec()), "-o", str(tmp_path / "x.yaml")])
    assert result.exit_code == 2 and "--resolved" in result.output
