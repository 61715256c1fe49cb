"""`sgl study`: run a spec's trials (seeds × variants) and write its table; and what `sgl plan`,
`sgl validate`, `sgl resume` and `sgl report` do with a study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import UserError, console, run_errors, user_errors


def _plugins() -> list[str]:
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return list((obj or {}).get("plugins") or ())


@click.command("study")
@click.argument("spec", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--vary", "vary", multiple=True, metavar="KEY=[V,...]",
              help="Vary this key over these values (a YAML list, or a mapping name: value); repeatable; adds to "
              "or replaces the spec's study.vary.")
@click.option("--executor", type=click.Choice(["local", "ray"]), help="Run the trials here (local, the default) or "
              "as Ray tasks (ray; pip install 'sgl[ray]').")
@click.option("--address", metavar="HOST:PORT", help="The Ray cluster to use (default: a local Ray instance).")
@click.option("--parallel", type=click.IntRange(min=1), help="Trials at once (default: as the cores or GPUs allow).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads per trial (default: the cores divided "
              "among the trials at once).")
@click.option("--study-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the study here instead of <output>/<name>/study-<time>.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Continue this study directory: run what is missing.")
@click.option("--retry-failed", is_flag=True, help="With --resume: run failed trials again (from their checkpoints).")
@click.option("--quiet", "-q", is_flag=True, help="No progress display (events still go to study.log).")
@user_errors
@run_errors
def study(spec: Path | None, overrides: tuple[str, ...], vary: tuple[str, ...], executor: str | None,
          address: str | None, parallel: int | None, threads: int | None, study_dir: Path | None,
          resume_dir: Path | None, retry_failed: bool, quiet: bool) -> None:
    """Run SPEC's study: every combination of its varied values (study.vary, --vary) as an ordinary
    run, a few at a time, then its table (sgl report STUDY_DIR). Kill it anywhere; --resume continues."""
    import sgl

    if resume_dir is not None:
        if spec is not None or overrides or vary or parallel or threads or study_dir:
            raise UserError("--resume STUDY_DIR takes no spec, overrides, --vary, --parallel, --threads or --study-dir: "
                            "the study directory holds them")
        path = sgl.resume_study(resume_dir, executor=executor, address=address, retry_failed=retry_failed,
                                progress=not quiet).dir
    else:
        if spec is None:
            raise UserError("give a spec (sgl study SPEC), or a study to continue (sgl study --resume STUDY_DIR)")
        if retry_failed:
            raise UserError("--retry-failed goes with --resume STUDY_DIR")
        path = sgl.study(spec, overrides, vary=vary, executor=executor, address=address, parallel=parallel,
                         threads=threads, study_dir=study_dir, plugins=_plugins(), progress=not quiet).dir
    finish(path)


def finish(path: Path) -> None:
    """Print the table; exit 1 when a trial failed (the table is written all the same)."""
    import sgl

    opened = sgl.open_study(path)
    click.echo(opened.render("md"))
    click.echo(f"study directory: {path}  (figures and a page: sgl report {path})")
    failed = [t for t in opened.trials if t.state == "failed"]
    if failed:
        lines = "\n".join(f"  {t.id}: {t.reason}" for t in failed)
        click.echo(f"{len(failed)} trial(s) failed; the others are in the table:\n{lines}\n"
                   f"(sgl study --resume {path} --retry-failed runs them again)", err=True)
        click.get_current_context().exit(1)


def resume_if_study(run_dir: Path, quiet: bool) -> bool:
    """`sgl resume STUDY_DIR` continues the study; False when ``run_dir`` is no study."""
    from ..study.manifest import is_study_dir

    if not is_study_dir(run_dir):
        return False
    import sgl

    finish(sgl.resume_study(run_dir, progress=not quiet).dir)
    return True


def report_if_study(run_dirs: tuple[Path, ...], output: Path | None, fmt: str | None, grouped: bool) -> bool:
    """`sgl report STUDY_DIR [--format md|latex|csv]`: write the study's table, figure and page, print
    the table; False when this is no study."""
    from ..study.manifest import is_study_dir

    studies = [p for p in run_dirs if is_study_dir(p)]
    if not studies:
        if fmt is not None:
            raise UserError("--format is for a study directory's table (sgl report STUDY_DIR --format latex)")
        return False
    if len(run_dirs) > 1 or grouped:
        raise UserError(f"{studies[0]} is a study directory: report it alone (its trials are its runs)")
    import sgl

    result = sgl.open_study(studies[0]).report(output)
    from ..study.report import render

    click.echo(render(result["table"], fmt or "md"), nl=False)
    click.echo(f"wrote {result['html']}, {result['markdown']} and table.md, table.tex, table.csv "
               f"({sum(p.suffix == '.png' for p in result['figures'])} figure(s))", err=True)
    return True


def show_study(spec: Path, overrides: tuple[str, ...], estimate: bool, iterations: int) -> dict[str, Any]:
    """The trials `sgl plan` shows for a spec with a study (and their cost, with --estimate)."""
    from ..study.estimate import estimate_study
    from ..study.trials import load_study

    plan = load_study(spec, overrides)
    data: dict[str, Any] = {"trials": [{"trial": t.name, "values": t.labels, "overrides": t.overrides}
                                       for t in plan.trials],
                            "rows": plan.rows, "metrics": list(plan.section.table.metrics),
                            "executor": plan.section.executor}
    if estimate:
        data["estimate"] = estimate_study(plan, iterations=iterations)
    return data


def print_study(data: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"study: {len(data['trials'])} trial(s), {data['executor']} executor; table rows "
                  f"{', '.join(data['rows']) or '(one)'}; metrics {', '.join(data['metrics'])}", title_justify="left")
    table.add_column("trial")
    table.add_column("values (each trial is sgl run SPEC <overrides>; --format json lists the overrides)")
    for trial in data["trials"]:
        overrides = " ".join(trial["overrides"])
        shown = overrides if len(overrides) <= 80 else ", ".join(f"{k}={v}" for k, v in trial["values"].items())
        table.add_row(escape(trial["trial"]), escape(shown))
    console().print(table)
    if "estimate" in data:
        from ..study.estimate import render

        click.echo(render(data["estimate"]))
