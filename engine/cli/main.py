"""The `sgl` command. Thin: parse arguments, call the engine, print; cli_common maps errors to exit codes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .common import UserError, console, run_errors, user_errors
from .results import export, make_train_command, report
from ..errors import SpecError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option(
    "--plugin", "plugins", multiple=True, metavar="MODULE",
    help="Import this Python module (from sys.path / PYTHONPATH) before the command, for components "
    "it registers. Repeatable. Specs cannot import modules; only installed sgl.plugins entry points load by themselves.",
)
@click.version_option(package_name="sgl", prog_name="sgl")
@click.pass_context
def main(ctx: click.Context, debug: bool, plugins: tuple[str, ...]) -> None:
    """sgl: Small-Group Learning neural architecture search from one YAML spec."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if plugins:
        _import_plugins(plugins, debug)


def _import_plugins(modules: tuple[str, ...], debug: bool) -> None:
    """The only way to import an arbitrary module: asked for on the command line, never by a file."""
    from sgl.registry import core

    for module in modules:
        try:
            core.import_plugin(module)
        except Exception as exc:  # the user's module: its failure is their input error
            if debug:
                raise
            raise UserError(f"--plugin {module}: cannot import it: {type(exc).__name__}: {exc}") from None


@main.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@user_errors
def validate(specs: tuple[Path, ...]) -> None:
    """Check specs: keys, types, ranges, names, files and the plan. Prints every problem at once."""
    import sgl

    failures = []
    for path in specs:
        try:
            plan = sgl.plan(path)
        except SpecError as exc:
            failures.extend(exc.problems)
            continue
        click.echo(f"ok: {path} ({_count(len(plan.learners), 'learner')}, {_count(len(plan.stages), 'stage')}, "
                   f"{_count(plan.total_epochs, 'search epoch')})")
        for warning in plan.warnings:
            click.echo(f"warning: {path}: {warning}", err=True)
    if failures:
        raise SpecError(failures)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@main.command("plan")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "dot"]), default="text", show_default=True)
@click.option("--estimate", is_flag=True, help="Time each kind of iteration on this machine and project the run's wall time.")
@click.option("--iterations", type=click.IntRange(min=1), default=3, show_default=True, help="Iterations timed per kind (--estimate).")
@user_errors
def plan_command(spec: Path, overrides: tuple[str, ...], fmt: str, estimate: bool, iterations: int) -> None:
    """Show the run plan a spec compiles to (overrides as key.path=value)."""
    import json

    from ..plan import view as plan_view
    from ..plan.compile import compile_spec

    compiled = compile_spec(spec, overrides)
    plan = compiled.plan
    cost = None
    if estimate:
        from ..run.estimate import estimate as measure

        cost = measure(compiled, iterations=iterations)
    if fmt == "json":
        data = plan_view.plan_dict(plan)
        if cost is not None:
            data["estimate"] = cost.to_dict()
        click.echo(json.dumps(data, indent=2, default=str))
    elif fmt == "dot":
        click.echo(plan_view.plan_dot(plan), nl=False)
    else:
        plan_view.plan_text(plan, console())
        if cost is not None:
            from ..run.estimate import render

            click.echo(render(cost))


_run_options = [
    click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), help="Write the run here instead of <output>/<name>/<timestamp>."),
    click.option("--overwrite", is_flag=True, help="Replace --run-dir if it exists."),
    click.option("--stop-after", type=click.IntRange(min=1), help="Stop cleanly after this many epochs in total (continue with sgl resume)."),
    click.option("--quiet", "-q", is_flag=True, help="No progress display."),
]


def _with_options(options):
    def apply(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@_with_options(_run_options)
@user_errors
@run_errors
def run(spec: Path, overrides: tuple[str, ...], run_dir: Path | None, overwrite: bool, stop_after: int | None, quiet: bool) -> None:
    """Run a spec: search (and derive / evaluate) as its stages say. Overrides as key.path=value."""
    import sgl

    sgl.run(spec, overrides, run_dir=run_dir, overwrite=overwrite, stop_after=stop_after, progress=not quiet)
    _exit_if_distributed()


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--stop-after", type=click.IntRange(min=1), help="Stop cleanly after this many epochs in total.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@user_errors
@run_errors
def resume(run_dir: Path, stop_after: int | None, quiet: bool) -> None:
    """Continue a run from its last checkpoint; the run directory holds everything needed."""
    import sgl

    sgl.resume(run_dir, stop_after=stop_after, progress=not quiet)
    _exit_if_distributed()


def _exit_if_distributed() -> None:
    """Several processes sometimes abort at interpreter exit after finishing (a known PyTorch issue
    with gloo): everything is written and flushed by now, so leave without the interpreter's teardown."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@main.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout.")
def schema(output: Path | None) -> None:
    """JSON Schema of the spec, registered components included (for editors)."""
    from sgl import registry

    from ..spec.schema import schema_text

    registry.load_plugins()
    text = schema_text()
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@main.command()
@click.argument("kind", required=False)
def components(kind: str | None) -> None:
    """List the registered components (of one KIND) with their fields."""
    from sgl import registry

    from .components import print_components
    from ..errors import did_you_mean

    if kind is not None and kind not in registry.KINDS:
        raise UserError(f"unknown kind {kind!r}{did_you_mean(kind, registry.KINDS)}; known: {', '.join(registry.KINDS)}")
    registry.load_plugins()
    print_components(console(), kind)


main.add_command(report)
main.add_command(export)
main.add_command(make_train_command(run))

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
