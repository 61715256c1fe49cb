"""The results commands on the command line: `sgl train` takes evaluation-only specs, `sgl export` and
`sgl report` turn bad input into exit code 2."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from conftest import write_run_dir


def test_train_command_takes_evaluation_only_specs(make_spec) -> None:
    from sgl.engine.cli.results import make_train_command

    calls = []

    @click.command("run")
    @click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
    @click.argument("overrides", nargs=-1)
    @click.option("--overwrite", is_flag=True)
    def run(spec, overrides, overwrite):
        calls.append((spec.name, overrides, overwrite))

    cli = click.Group(commands=[make_train_command(run)])
    evaluation = make_spec("eval.yaml", base={"name": "e", "data": {"dataset": "fake"},
                                              "stages": [{"type": "evaluate", "genotype": "DARTS_V2", "epochs": 1}]})
    result = CliRunner().invoke(cli, ["train", str(evaluation), "stages.0.epochs=2", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert calls == [("eval.yaml", ("stages.0.epochs=2",), True)]

    search = make_spec("search.yaml", base={"name": "s", "learners": {"a": {"kind": "darts"}}, "loss_weights": {"pseudo": 0},
                                            "stages": [{"name": "search", "epochs": 1, "steps": ["A", "W"]},
                                                       {"type": "evaluate", "learner": "a"}]})
    result = CliRunner().invoke(cli, ["train", str(search)])
    assert result.exit_code == 2 and "sgl run" in result.output and "search (train)" in result.output
    result = CliRunner().invoke(cli, ["train", str(evaluation), "stages.0.epochz=2"])
    assert result.exit_code == 2 and "epochz" in result.output
    assert len(calls) == 1


def test_export_command_reports_bad_input_with_exit_code_2(tmp_path: Path) -> None:
    from sgl.engine.cli.results import export

    cli = click.Group(commands=[export])
    result = CliRunner().invoke(cli, ["export", str(tmp_path), "--learner", "alice", "--format", "pt"])
    assert result.exit_code == 2 and "not an sgl run directory" in result.output
    result = CliRunner().invoke(cli, ["export", str(tmp_path), "--learner", "alice", "--format", "keras"])
    assert result.exit_code == 2


def test_report_command(tmp_path: Path) -> None:
    from sgl.engine.cli.results import report

    cli = click.Group(commands=[report])
    runs = [write_run_dir(tmp_path, "sgl", s, test_error=e, metrics=False) for s, e in ((0, 2.5), (1, 2.7))]
    other = write_run_dir(tmp_path, "darts", 0, test_error=3.0, learners=("alice",), metrics=False)
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
