"""What defines a run — its spec as given (spec.yaml), as resolved (spec.resolved.yaml, what a resume
runs) and its plan (plan.json) — recorded as digests in run.json when the run is set up.

Whenever a run's definition is read again (resume, export, report), the files must still be what
was recorded: a resume of an edited spec.resolved.yaml would continue with values that spec.yaml,
plan.txt and run.json contradict. A run.json from before digests is accepted, with a note.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path
from typing import Any, Callable

from ..errors import RunDirError, SpecError
from ..plan.compile import Compiled, compile_spec
from ..plan.view import plan_json
from ..plan.view import resolved_yaml as spec_as_run
from .layout import RunDir

DIGESTED = ("spec.yaml", "spec.resolved.yaml", "plan.json")
#: Larger than any spec or plan: such a file was replaced, not edited (and is not read whole).
_MAX_BYTES = 10_000_000


def resolved_yaml(compiled: Compiled) -> str:
    """spec.resolved.yaml: the validated spec with every default filled and the overrides applied."""
    # A study section is no part of a run: each trial of a study is the spec without it.
    return spec_as_run(compiled.spec, exclude=frozenset({"study"}))


def digest(name: str, data: bytes) -> str:
    """The digest of a defining file. plan.json's leaves out its warnings, which depend on the
    machine (its memory, where the data is), not on the run."""
    if name == "plan.json":
        try:
            plan = json.loads(data)
        except ValueError:
            plan = None
        if isinstance(plan, dict):
            plan.pop("warnings", None)
            data = json.dumps(plan, sort_keys=True).encode("utf-8")
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digests(texts: dict[str, str]) -> dict[str, str]:
    """What run.json records: the digest of each defining file's text."""
    return {name: digest(name, texts[name].encode("utf-8")) for name in DIGESTED}


def _current(path: Path, name: str) -> str | None:
    """The digest of the file now; None when it is missing (a set-up a kill cut short)."""
    try:
        if not path.is_file():
            return None
        if path.stat().st_size > _MAX_BYTES:
            return "too large"
        return digest(name, path.read_bytes())
    except OSError:
        return "unreadable"


def check_unchanged(rundir: RunDir, info: dict[str, Any], edited: Callable[[], Compiled]) -> list[str]:
    """Notes about the definition; RunDirError naming what changed when a defining file is not what
    run.json recorded (``edited`` compiles the run as its files are now, to name the values)."""
    recorded = info.get("digests")
    if not isinstance(recorded, dict):
        return [f"{rundir.run_info.name} records no digests of the run's spec and plan (a run begun by an earlier "
                "sgl): edits to them cannot be detected"]
    changed = [name for name in DIGESTED
               if name in recorded and _current(rundir.path / name, name) not in (None, recorded[name])]
    if not changed:
        return []
    detail = ""
    if "spec.resolved.yaml" in changed and "plan.json" not in changed:
        values = _plan_changes(rundir, edited)
        if values:
            detail = f": {'; '.join(values)}"
    files = " and ".join(changed)
    raise RunDirError(
        f"{str(rundir.path)!r}: {files} changed since the run began (run.json records what {'it' if len(changed) == 1 else 'they'} "
        f"held){detail}. A run continues only as it began: undo the edit, or start a new run with the changed spec")


def _plan_changes(rundir: RunDir, edited: Callable[[], Compiled], limit: int = 5) -> list[str]:
    """The plan values the edit changed (``key.path: before → now``), from plan.json and the edited spec."""
    try:
        before = json.loads(rundir.plan_json.read_text(encoding="utf-8"))
        now = json.loads(plan_json(edited().plan))
    except (SpecError, RunDirError, OSError, ValueError):
        return []
    found: list[str] = []
    _differences(before, now, (), found)
    return found[:limit] + ([f"and {len(found) - limit} more"] if len(found) > limit else [])


def _differences(a: Any, b: Any, path: tuple[Any, ...], found: list[str]) -> None:
    if path == ("warnings",):
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            _differences(a.get(key), b.get(key), (*path, key), found)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b)):
            _differences(x, y, (*path, index), found)
    elif a != b:
        found.append(f"{'.'.join(map(str, path))}: {json.dumps(a)} → {json.dumps(b)}")


def from_original(rundir: RunDir, info: dict[str, Any], require_data: bool = False) -> tuple[Compiled, str]:
    """The run's definition from its original spec file and overrides, for a set-up a kill cut short
    before spec.resolved.yaml was written: ``(compiled, the spec's text)``, refused unless it gives
    exactly what run.json recorded."""
    recorded = info.get("digests") if isinstance(info.get("digests"), dict) else {}
    spec = Path(str(info.get("spec") or ""))
    overrides = [str(o) for o in info.get("overrides") or []]
    again = (f"start it again with `{shlex.join(['sgl', 'run', str(spec), *overrides])} --run-dir "
             f"{shlex.quote(str(rundir.path))} --overwrite`")
    stopped = f"{str(rundir.path)!r} was stopped while it was being set up, before its {rundir.resolved_spec.name} was written"
    try:
        text = spec.read_bytes()[: _MAX_BYTES + 1]
    except OSError as exc:
        raise RunDirError(f"{stopped}, and its spec {str(spec)!r} cannot be read now ({exc.strerror or exc}); {again}") from None
    if not recorded or digest("spec.yaml", text) != recorded.get("spec.yaml"):
        raise RunDirError(f"{stopped}, and its spec {str(spec)!r} has changed since; {again}")
    compiled = compile_spec(spec, overrides, base_dir=Path(str(info.get("base_dir") or spec.parent)),
                            require_data=require_data)
    if digest("spec.resolved.yaml", resolved_yaml(compiled).encode("utf-8")) != recorded.get("spec.resolved.yaml"):
        raise RunDirError(f"{stopped}, and its spec resolves differently now (a file it extends changed?); {again}")
    return compiled, text.decode("utf-8", errors="replace")
