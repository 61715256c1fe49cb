"""The `sgl` command. Thin: parse arguments, call the engine, print; cli_common maps errors to exit codes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .common import UserError, console, run_errors, user_errors
from .results import export, make_train_command, report
from .study import study
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
    ctx.obj["plugins"] = plugins  # a study's trials import them too
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
    from ..plan.compile import compile_spec

    failures = []
    for path in specs:
        try:
            compiled = compile_spec(path)
            trials = _trials(path) if compiled.spec.study is not None else 0
        except SpecError as exc:
            failures.extend(exc.problems)
            continue
        plan = compiled.plan
        study = f"; a study of {_count(trials, 'trial')}" if trials else ""
        click.echo(f"ok: {path} ({_count(len(plan.learners), 'learner')}, {_count(len(plan.stages), 'stage')}, "
                   f"{_count(plan.total_epochs, 'search epoch')}{study})")
        for warning in plan.warnings:
            click.echo(f"warning: {path}: {warning}", err=True)
    if failures:
        raise SpecError(failures)


def _trials(path: Path) -> int:
    from ..study.trials import load_study  # imports torch: only for a spec with a study

    return len(load_study(path).trials)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@main.command("plan")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "dot"]), default="text", show_default=True)
@click.option("--resolved", "--print-config", "resolved", is_flag=True,
              help="Print the spec as it would run instead (defaults filled, overrides applied): YAML that `sgl run` runs unchanged.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="With --resolved: write it to this file (its relative paths rebased to name the same files from there).")
@click.option("--estimate", is_flag=True, help="Time each kind of iteration on this machine and project the run's wall time.")
@click.option("--iterations", type=click.IntRange(min=1), default=3, show_default=True, help="Iterations timed per kind (--estimate).")
@click.option("--budget", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="--estimate's own time limit (default: 30 s or a tenth of the projected run, whichever is less).")
@user_errors
def plan_command(spec: Path, overrides: tuple[str, ...], fmt: str, resolved: bool, output: Path | None, estimate: bool,
                 iterations: int, budget: float | None) -> None:
    """Show the run plan a spec compiles to (overrides as key.path=value), or the spec resolved."""
    from ..plan.compile import compile_spec

    if output is not None and not resolved:
        raise UserError("--output writes the resolved spec: add --resolved (or --print-config)")
    compiled = compile_spec(spec, overrides)
    if resolved:
        _print_resolved(compiled, output)
        return
    study = None
    if compiled.spec.study is not None:  # the trials, and with --estimate their cost instead of the spec's own
        from .study import show_study

        study = show_study(spec, overrides, estimate, iterations)
    cost = None
    if estimate and study is None:
        from ..run.estimate import estimate as measure

        cost = measure(compiled, iterations=iterations, budget=budget, say=lambda text: click.echo(text, err=True))
    _show_plan(compiled.plan, fmt, cost, study)


def _print_resolved(compiled, output: Path | None) -> None:
    from ..plan.view import resolved_yaml
    from ..rundir.files import atomic_write_text

    if output is None:
        click.echo(resolved_yaml(compiled.spec), nl=False)
        return
    try:
        atomic_write_text(output, resolved_yaml(compiled.spec, compiled.base_dir, output))
    except OSError as exc:
        raise UserError(f"error: cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output}")


def _show_plan(plan, fmt: str, cost, study) -> None:
    import json

    from ..plan import view as plan_view

    if fmt == "json":
        data = plan_view.plan_dict(plan)
        if cost is not None:
            data["estimate"] = cost.to_dict()
        if study is not None:
            data["study"] = study
        click.echo(json.dumps(data, indent=2, default=str))
    elif fmt == "dot":
        click.echo(plan_view.plan_dot(plan), nl=False)
    else:
        plan_view.plan_text(plan, console())
        if cost is not None:
            from ..run.estimate import render

            click.echo(render(cost))
        if study is not None:
            from .study import print_study

            print_study(study)


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

    if not quiet:
        _note_study(spec)
    sgl.run(spec, overrides, run_dir=run_dir, overwrite=overwrite, stop_after=stop_after, progress=not quiet)
    _exit_if_distributed()


def _note_study(spec: Path) -> None:
    """A run ignores a spec's study: section (each trial of the study is exactly such a run); say so."""
    from ..specs.load import load_document

    try:
        has_study = "study" in load_document(spec).data
    except SpecError:
        return  # the run reports it
    if has_study:
        click.echo(f"note: {spec} has a study: section; sgl run runs the spec once with its own values "
                   f"(sgl study {spec} runs the study's trials)", err=True)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--stop-after", type=click.IntRange(min=1), help="Stop cleanly after this many epochs in total.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@user_errors
@run_errors
def resume(run_dir: Path, stop_after: int | None, quiet: bool) -> None:
    """Continue a run from its last checkpoint (or a study: its missing trials); the directory holds everything needed."""
    import sgl

    from .study import resume_if_study

    if resume_if_study(run_dir, quiet):
        return
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
@user_errors
def schema(output: Path | None) -> None:
    """JSON Schema of the spec, registered components included (for editors)."""
    from sgl import registry

    from ..specs.schema import schema_text

    registry.load_plugins()
    text = schema_text()
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


class _ComponentsCommand(click.Command):
    """`sgl components --help` lists the kinds (from the registry, when the help is shown)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from sgl import registry

        with formatter.section("Kinds"):
            formatter.write_dl([(kind, f"{info.noun}s — a spec names one with {info.key}:")
                                for kind, info in registry.KINDS.items()])


@main.command(cls=_ComponentsCommand)
@click.argument("kind", required=False)
@user_errors
def components(kind: str | None) -> None:
    """List the registered components (of one KIND) with their fields: types as YAML reads them,
    defaults as a spec writes them."""
    from sgl import registry

    from .components import print_components
    from ..errors import did_you_mean

    if kind is not None and kind not in registry.KINDS:
        raise UserError(f"unknown kind {kind!r}{did_you_mean(kind, registry.KINDS)}; known: {', '.join(registry.KINDS)}")
    registry.load_plugins()
    print_components(console(), kind)


main.add_command(report)
main.add_command(study)
main.add_command(export)
main.add_command(make_train_command(run))

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
