"""One trial's next step, read from its run directory, and what its end means.

A trial is started as ``sgl run SPEC <overrides> --run-dir STUDY/trials/<trial> -q`` and continued
as ``sgl resume STUDY/trials/<trial> -q``; which one, the run directory says (not the manifest,
which a kill may have left behind): a completed summary means done; a run.json means a run that
was set up and continues from its last checkpoint; anything else starts from the top (a folder a
kill left half set up is replaced: nothing in it had run).
"""

from __future__ import annotations

import signal
from pathlib import Path

from ..errors import RunDirError, SpecError, StudyError
from ..plan.compile import compile_spec
from ..rundir.claim import RunLock
from ..rundir.layout import RunDir
from ..summary import Summary, SummaryUnreadable
from .manifest import Manifest, StudyDir, TrialRecord
from .trials import digest

#: Exit codes (and signals) that mean a trial was stopped, not that it failed: it continues on resume.
STOPPED = {130, -signal.SIGINT, -signal.SIGTERM}


def summary_of(run_dir: Path) -> Summary | None:
    try:
        return RunDir(run_dir, writer=False).read_summary()
    except SummaryUnreadable:
        return None


def completed(run_dir: Path) -> bool:
    summary = summary_of(run_dir)
    return summary is not None and summary.status == "completed"


def busy(run_dir: Path) -> bool:
    """Whether another process holds the trial's run directory (a trial still running elsewhere)."""
    if not (run_dir / RunLock.NAME).exists():
        return False
    try:
        RunLock.take(run_dir).release()
    except RunDirError:
        return True
    return False


def command(study: StudyDir, manifest: Manifest, trial: TrialRecord) -> list[str]:
    """The `sgl` arguments that take the trial on from where its run directory stands (absolute
    paths: a Ray worker does not share the driver's working directory)."""
    run_dir = study.trial(trial.id).resolve()
    plugins = [arg for module in manifest.plugins for arg in ("--plugin", module)]
    if (run_dir / "run.json").is_file():
        return [*plugins, "resume", str(run_dir), "-q"]
    args = [*plugins, "run", manifest.spec, *manifest.overrides(trial), "--run-dir", str(run_dir), "-q"]
    if run_dir.is_dir() and any(run_dir.iterdir()):
        args.append("--overwrite")  # set up by a killed start, before anything ran: ours to replace
    return args


def not_started(study: StudyDir, manifest: Manifest) -> list[TrialRecord]:
    return [t for t in manifest.trials if t.state not in ("completed", "failed")
            and not (study.trial(t.id) / "run.json").is_file()]


def check_unchanged(manifest: Manifest, trial: TrialRecord) -> None:
    """A trial that starts after the study began must run what the study planned: the spec file
    may have been edited since (checked for every such trial before a resumed study starts any)."""
    try:
        now = digest(compile_spec(manifest.spec, manifest.overrides(trial)))
    except SpecError as exc:
        first = str(exc.problems[0]) if exc.problems else "it no longer compiles"
        raise StudyError(f"trial {trial.id} cannot start: the study's spec no longer compiles with its overrides "
                         f"({first}); restore {manifest.spec} as it was when the study began") from None
    if now != trial.digest:
        raise StudyError(f"trial {trial.id} cannot start: {manifest.spec} changed since the study began, so the "
                         "trial would not run what the study planned; restore the spec as it was, or start a new "
                         "study (sgl study SPEC)")


def outcome(study: StudyDir, trial: TrialRecord, code: int) -> tuple[str, str | None]:
    """The trial's state after its process ended with ``code``, and why when it failed."""
    run_dir = study.trial(trial.id)
    summary = summary_of(run_dir)
    status = summary.status if summary is not None else None
    if status == "completed":
        return "completed", ("completed, outside its spec's expect:" if code == 1 else None)
    if code in STOPPED or status == "interrupted":
        return "interrupted", None
    return "failed", reason(study.trial_log(trial.id), code)


def reason(log: Path, code: int) -> str:
    """The last words of the trial's latest attempt (the CLI's one-line message), or its exit."""
    try:
        text = log.read_bytes()[-20_000:].decode("utf-8", errors="replace")
    except OSError:
        text = ""
    attempt = text.rsplit("\n=== ", 1)[-1].splitlines()[1:]
    lines = [line.strip() for line in attempt if line.strip()]
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        cause = f"killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")
        return cause + (f"; last output: {lines[-1][:300]}" if lines else "")
    if lines:
        return lines[-1][:500]
    return f"exit code {code}"
