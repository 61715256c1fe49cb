"""What every `sgl` command shares: the user-error exception, error-to-exit-code mapping, the console.

Exit codes: 0 success (or stopped as asked), 1 a run failed (e.g. a non-finite loss), 2 bad input
(spec, paths, arguments), 130 interrupted. Bad input never prints a traceback unless --debug.
"""

from __future__ import annotations

import errno
import functools
import pickle

import click

from ..errors import ExpectationFailed, ExportError, Interrupted, NonFiniteLoss, PeerLost, ReportError, RunDirError, SpecError, os_error

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class UserError(click.ClickException):
    """An error in what the user gave us: printed as is, exit code 2."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file=None) -> None:
        click.echo(self.message, err=True)


def debug() -> bool:
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return bool(obj and obj.get("debug"))


def console():
    from ..run.progress import make_console

    return make_console()


def user_errors(fn):
    """Spec problems, run-directory, export and report errors become one clean message, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SpecError as exc:
            if debug():
                raise
            raise UserError("\n".join(map(str, exc.problems))) from None
        except (RunDirError, ExportError, ReportError) as exc:
            if debug():
                raise
            raise UserError(f"error: {exc}") from None
        except pickle.UnpicklingError as exc:  # a dataset file that is not what it claims
            if debug():
                raise
            raise UserError(f"error: {exc}") from None
        except OSError as exc:  # a path given that cannot be read or written (missing, too long, no access)
            if debug():
                raise
            raise UserError(f"error: {os_error(exc)}") from None

    wrapper.user_errors = True  # type: ignore[attr-defined]  (every command has it: tests/cli checks)
    return wrapper


def resume_hint(exc: BaseException) -> str:
    """The exact command that continues the run ``exc`` stopped, or why there is none."""
    import shlex

    run_dir = getattr(exc, "run_dir", None)
    if run_dir is None:
        return "no run directory had been made: nothing to resume, run it again"
    return f"continue with `sgl resume {shlex.quote(str(run_dir))}`"


def _leave(ctx: click.Context, code: int) -> None:
    """Exit with ``code``; several processes leave without the interpreter's teardown, which can
    hang or abort in gloo after a failure (everything is written and flushed by then)."""
    import os
    import sys

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    ctx.exit(code)


def run_errors(fn):
    """Exit codes of runs: 1 failed (a non-finite loss, a full disk), 2 an output that cannot be
    written, 130 interrupted (also by a second Ctrl-C, or one before the run began), 0 stopped by
    --stop-after. The reason is printed even with -q."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        try:
            return fn(*args, **kwargs)
        except (NonFiniteLoss, PeerLost) as exc:
            if debug():
                raise
            click.echo(f"stopped: {exc}", err=True)
            _leave(ctx, 1)
        except KeyboardInterrupt as exc:
            if debug():
                raise
            if getattr(exc, "run_dir", None) is None:
                click.echo("interrupted before the run began: nothing was written", err=True)
            else:
                click.echo("interrupted: stopped at once, without a checkpoint of the current iteration; "
                           f"{resume_hint(exc)} (from the last checkpoint)", err=True)
            _leave(ctx, EXIT_INTERRUPTED)
        except OSError as exc:
            if debug():
                raise
            where = f" ({exc.filename})" if exc.filename else ""
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise UserError(f"error: cannot write{where}: {exc.strerror or exc}") from None
            remedy = "free some space, then" if exc.errno == errno.ENOSPC else "fix the cause, then"
            kept = f"the last checkpoint is kept: {remedy} " if getattr(exc, "run_dir", None) is not None else ""
            click.echo(f"failed: {exc.strerror or exc}{where}; {kept}{resume_hint(exc)}", err=True)
            ctx.exit(1)
        except ExpectationFailed as exc:
            if debug():
                raise
            click.echo("the run finished, but not as its spec expects:\n" + "\n".join(f"  {line}" for line in exc.lines), err=True)
            _leave(ctx, 1)
        except Interrupted as exc:
            if kwargs.get("quiet") and not kwargs.get("stop_after"):
                click.echo(f"stopped: {exc}", err=True)  # a stop not asked for by --stop-after: say how to go on
            _leave(ctx, 0 if kwargs.get("stop_after") else EXIT_INTERRUPTED)

    return wrapper
