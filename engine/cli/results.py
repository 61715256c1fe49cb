"""The commands `sgl report`, `sgl export` and `sgl train` (added to the `sgl` group by cli/main.py).

Bad input (a path that is no run, an unknown learner or format, a spec that is not
evaluation-only) exits with code 2 and a one-line message, like the other commands.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import click

from .common import UserError, user_errors


def _user_error(message: str) -> click.ClickException:
    return UserError(message)


def _parse_groups(values: tuple[str, ...]) -> dict[str, list[Path]]:
    """``LABEL=PATH[,PATH...]``, each PATH a run directory or a glob of them."""
    groups: dict[str, list[Path]] = {}
    for value in values:
        label, sep, paths = value.partition("=")
        if not sep or not label or not paths:
            raise _user_error(f"--group {value!r}: expected LABEL=RUN_DIR[,RUN_DIR...] (globs allowed)")
        members = groups.setdefault(label, [])
        for item in paths.split(","):
            matches = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
            if not matches:
                raise _user_error(f"--group {label}: {item!r} matches no run directory")
            members += [Path(m) for m in matches]
    return groups


@click.command("report")
@click.argument("run_dirs", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.html, report.md and figures/ (default: the run directory for one run, ./sgl-report for several).")
@click.option("--group", "groups", multiple=True, metavar="LABEL=RUN_DIR[,RUN_DIR...]",
              help="Aggregate these runs (globs allowed) as one group; repeatable. Other runs group by spec name.")
@click.option("--format", "fmt", type=click.Choice(["md", "latex", "csv"]), default=None,
              help="A study directory's table printed in this format (default md); table.md/.tex/.csv are all written.")
@user_errors
def report(run_dirs: tuple[Path, ...], output: Path | None, groups: tuple[str, ...], fmt: str | None) -> None:
    """Figures, tables and an HTML page (with a Markdown twin) for one or more runs, or a study.

    Several runs of one spec (seeds) are summarised as mean ± std; a study directory gives its table.
    """
    import sgl

    from .study import report_if_study

    if report_if_study(run_dirs, output, fmt, bool(groups)):
        return
    parsed = _parse_groups(groups)
    if not run_dirs and not parsed:
        raise _user_error("give at least one run directory")
    for path in [*run_dirs, *(p for members in parsed.values() for p in members)]:
        if not os.path.isdir(path):  # never raises (a path too long, say)
            raise _user_error(f"no such run directory: {str(path)!r}")
    count = len({p.resolve() for p in [*run_dirs, *(p for m in parsed.values() for p in m)]})
    out = output or (run_dirs[0] if count == 1 and run_dirs else Path("sgl-report"))
    result = sgl.report(run_dirs, out, groups=parsed or None)
    pngs = sum(1 for p in result["figures"] if p.suffix == ".png")
    click.echo(f"wrote {result['html']} and {result['markdown']} ({pngs} figures in {out / 'figures'})")
    if result["failed_expectations"]:
        from ..expectations import describe

        lines = [f"  {path}: {describe(r)}" for path, r in result["failed_expectations"]]
        click.echo("not as their specs expect:\n" + "\n".join(lines), err=True)
        click.get_current_context().exit(1)


@click.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--learner", "-l", "learners", multiple=True,
              help="A learner, or an evaluation stage that trained a network; repeatable (default: every learner).")
@click.option("--format", "fmt", type=click.Choice(["pt2", "pt", "torchscript", "onnx", "genotype"]), default="pt2",
              show_default=True, help="pt2: torch.export (load with torch.export.load(f).module()); pt: weights + "
              "description (sgl's load_model); torchscript (deprecated by PyTorch); onnx (the onnx extra); genotype: JSON.")
@click.option("--network", type=click.Choice(["derived", "trained", "supernet", "W", "V"]), default=None,
              help="Only this network: derived (the architecture found, untrained, sized for evaluation), trained (an "
              "evaluate stage's), supernet (the search network, architecture baked in), W / V (a search network). "
              "Default: a searchable learner's genotype, derived and (if evaluated) trained networks; a fixed learner's network.")
@click.option("--channels", type=click.IntRange(min=1), help="Initial channels of the derived network (default: its evaluate stage's, else the darts protocol's).")
@click.option("--layers", type=click.IntRange(min=1), help="Cells of the derived network (default: as --channels).")
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), help="Folder for the files (default: RUN_DIR/export).")
@user_errors
def export(run_dir: Path, learners: tuple[str, ...], fmt: str, network: str | None, channels: int | None,
           layers: int | None, output: Path | None) -> None:
    """Export a run's networks, each file named for what it is (alice.derived.pt2, alice.trained.pt2, ...)."""
    import sgl

    sizes = {"channels": channels, "layers": layers}
    paths = sgl.export_all(run_dir, list(learners) or None, fmt, output, network=network, sizes=sizes,
                           say=lambda text: click.echo(text, err=True))
    for path in paths:
        click.echo(f"wrote {path}")


def check_evaluation_only(spec_path: Path, overrides: tuple[str, ...]) -> None:
    """Raise a UserError unless every stage of the spec is an evaluation stage."""
    import sgl

    plan = sgl.plan(spec_path, overrides)
    others = [f"{s.name} ({s.type})" for s in plan.stages if s.type != "evaluate"]
    if others:
        raise _user_error(
            f"{spec_path}: `sgl train` runs evaluation-only specs, but this one also has {', '.join(others)}; "
            "use `sgl run` for searches"
        )


def make_train_command(run_command: click.Command) -> click.Command:
    """`sgl train SPEC [OVERRIDES]`: `sgl run` for specs whose stages are all evaluation stages.

    It takes exactly `sgl run`'s arguments and options and invokes it after the check.
    """

    @click.pass_context
    @user_errors
    def delegate(ctx: click.Context, **kwargs: Any) -> Any:
        check_evaluation_only(Path(kwargs["spec"]), tuple(kwargs.get("overrides") or ()))
        return ctx.invoke(run_command, **kwargs)

    return click.Command(
        "train", params=list(run_command.params), callback=delegate,
        help="Train genotypes from scratch and test them: `sgl run` for evaluation-only specs (overrides as key.path=value).",
    )
