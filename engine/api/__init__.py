"""sgl: Small-Group Learning neural architecture search from one YAML spec — the Python API.

The same engine as the `sgl` command, for notebooks and scripts (the command is a shell over it):

    import sgl

    spec = sgl.load_spec("specs/quickstart.yaml", ["seed=3"])    # the validated spec (pydantic)
    plan = sgl.plan("specs/quickstart.yaml", ["seed=3"])         # the typed run plan
    run = sgl.run("specs/quickstart.yaml", overrides=["stages.1.epochs=1"])
    run.summary, run.metrics("epoch"), run.genotypes, run.model("alice")
    sgl.open_run(run.dir)                                         # any run directory, later
    study = sgl.study("specs/studies/sgl_ablation_digits.yaml")  # seeds × variants -> a table
    print(study.render("latex")); sgl.open_study(study.dir)       # any study directory, later

Bad input raises ``sgl.SpecError`` listing every problem with its position; a run stopped early
raises ``sgl.Interrupted`` after its checkpoint. Imports are lazy: ``import sgl`` costs nothing until
a function is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

# What these functions raise (a light module: no torch).
from sgl.engine.errors import ExpectationFailed, Interrupted, NonFiniteLoss, RunDirError, SpecError

if TYPE_CHECKING:
    from sgl.engine.plan.types import RunPlan
    from sgl.engine.results.run import Run
    from sgl.engine.run.runner import Runner
    from sgl.engine.study.opened import Study

__all__ = ["ExpectationFailed", "Interrupted", "NonFiniteLoss", "RunDirError", "SpecError", "build_runner", "export",
           "export_all", "load_spec", "open_run", "open_study", "plan", "report", "resume", "resume_study", "run", "study"]


def load_spec(path: str | Path, overrides: Iterable[str] = ()) -> Any:
    """The spec at ``path`` with ``key.path=value`` overrides, validated: the pydantic Spec model."""
    from sgl.engine.specs.load import load_spec as load

    return load(path, list(overrides))[0]


def plan(spec: str | Path, overrides: Iterable[str] = ()) -> RunPlan:
    """The run plan the spec at ``spec`` compiles to (what `sgl plan` shows)."""
    from sgl.engine.plan.compile import compile_spec

    return compile_spec(spec, list(overrides)).plan


def run(spec: str | Path, overrides: Iterable[str] = (), *, run_dir: str | Path | None = None, overwrite: bool = False,
        stop_after: int | None = None, progress: bool = True) -> Run:
    """Run the spec at ``spec`` (`sgl run`) in a new run directory (or ``run_dir``); returns the run.

    A run stopped by ``stop_after`` epochs, Ctrl-C or a signal raises ``Interrupted`` after its
    checkpoint; ``resume`` continues it.
    """
    from sgl.engine.results.pages import run_figures
    from sgl.engine.results.run import Run
    from sgl.engine.rundir.reader import RunFiles
    from sgl.engine.rundir.session import run_spec
    from sgl.engine.run.executor import RunOptions

    options = RunOptions(run_dir=Path(run_dir) if run_dir is not None else None, overwrite=overwrite,
                         stop_after_epochs=stop_after, progress=progress)
    return Run(RunFiles(run_spec(spec, list(overrides), options, figures=run_figures)))


def resume(run_dir: str | Path, *, stop_after: int | None = None, progress: bool = True) -> Run:
    """Continue a run from its last checkpoint (`sgl resume`); returns the run."""
    from sgl.engine.results.pages import run_figures
    from sgl.engine.results.run import Run
    from sgl.engine.rundir.reader import RunFiles
    from sgl.engine.rundir.session import resume_run
    from sgl.engine.run.executor import RunOptions

    options = RunOptions(stop_after_epochs=stop_after, progress=progress)
    return Run(RunFiles(resume_run(run_dir, options, figures=run_figures)))


def open_run(run_dir: str | Path) -> Run:
    """A run directory as Python objects: ``.summary``, ``.metrics()``, ``.genotypes``, ``.model(name)``, ``.plan``."""
    from sgl.engine.results.run import Run

    return Run.open(run_dir)


def build_runner(spec: str | Path, overrides: Iterable[str] = ()) -> Runner:
    """A ready run without a run directory: its learners, batch streams and one search iteration at
    a time (``runner.search_iteration()``), exactly as `sgl run` builds them."""
    from sgl.engine.run.runner import build_runner as build

    return build(spec, overrides)


def report(run_dirs: Iterable[str | Path], out_dir: str | Path, *, groups: dict[str, list[Path]] | None = None) -> dict[str, Any]:
    """Figures, report.html and report.md for these runs under ``out_dir`` (`sgl report`)."""
    from sgl.engine.results.report import write_report

    return write_report([Path(p) for p in run_dirs], Path(out_dir), groups=groups)


def export(run_dir: str | Path, name: str, fmt: str = "pt2", out: str | Path | None = None, *,
           network: str | None = None) -> Path:
    """Export one network of learner (or evaluate stage) ``name`` of a run; returns the file. By
    default the trained network of an evaluate stage, else the derived network of a searchable
    learner (the architecture found), else a fixed learner's network."""
    from sgl.engine.results.export import export_model

    return export_model(run_dir, name, fmt, out, network=network)


def export_all(run_dir: str | Path, learners: list[str] | None = None, fmt: str = "pt2", out_dir: str | Path | None = None,
               *, network: str | None = None, sizes: dict[str, int | None] | None = None, say: Any = None) -> list[Path]:
    """`sgl export`: each learner's files into ``out_dir`` (``<run_dir>/export``) — a searchable
    learner's genotype, derived network and (if evaluated) trained network, a fixed learner's network."""
    from sgl.engine.results.export import export_run

    return export_run(run_dir, learners, fmt, out_dir, network=network, sizes=sizes, say=say)


def study(spec: str | Path, overrides: Iterable[str] = (), *, vary: Iterable[str] = (), executor: str | None = None,
          address: str | None = None, parallel: int | None = None, threads: int | None = None,
          study_dir: str | Path | None = None, plugins: Iterable[str] = (), progress: bool = True) -> Study:
    """Run the spec's study (`sgl study`): its ``study:`` section (``vary`` entries ``KEY=[V, ...]``
    add to it), each trial ``sgl run spec <overrides>`` in the study directory; returns the study."""
    from sgl.engine.study.driver import start_study
    from sgl.engine.study.opened import Study

    return Study(start_study(spec, list(overrides), list(vary), executor=executor, address=address, parallel=parallel,
                             threads=threads, study_dir=study_dir, plugins=list(plugins), progress=progress))


def resume_study(study_dir: str | Path, *, executor: str | None = None, address: str | None = None,
                 retry_failed: bool = False, progress: bool = True) -> Study:
    """Continue a study (`sgl study --resume`): finished trials are kept, the others run or resume."""
    from sgl.engine.study.driver import resume_study as resume_it
    from sgl.engine.study.opened import Study

    return Study(resume_it(study_dir, executor=executor, address=address, retry_failed=retry_failed,
                           progress=progress))


def open_study(study_dir: str | Path) -> Study:
    """A study directory: ``.trials``, ``.table()``, ``.render("md" | "latex" | "csv")``, ``.run(trial)``."""
    from sgl.engine.study.opened import Study

    return Study(study_dir)
