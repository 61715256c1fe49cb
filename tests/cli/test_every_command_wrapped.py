"""Issue #20: every `sgl` command goes through the one error wrapper (7), and a path too long for the
file system is bad input, not a traceback (8) — then the CLI's arguments, fuzzed: whatever a user
types ends in exit 0, 1 or 2 with words, never a traceback. SGL_FUZZ_EXAMPLES raises the case count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import MINI_SPEC, write_spec
from sgl.engine.cli.main import main

EXAMPLES = int(os.environ.get("SGL_FUZZ_EXAMPLES", "60"))
LONG = "a" * 5000  # far beyond NAME_MAX and PATH_MAX


def sgl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "sgl.engine.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120, env=env)


def _callbacks(command, seen=()):
    """Every command's callback, through groups."""
    for sub in getattr(command, "commands", {}).values():
        yield sub.name, sub.callback
        yield from _callbacks(sub)


def test_every_command_goes_through_the_error_wrapper():
    commands = dict(_callbacks(main))
    assert {"validate", "plan", "run", "resume", "schema", "components", "report", "export", "train"} <= set(commands)
    unwrapped = [name for name, callback in commands.items() if not getattr(callback, "user_errors", False)]
    assert unwrapped == [], f"commands outside cli/common.py's user_errors: {unwrapped}"


def test_schema_to_a_folder_that_does_not_exist_is_a_clean_error(tmp_path):
    result = sgl("schema", "-o", "/no/such/dir/schema.json", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr == "error: No such file or directory: '/no/such/dir/schema.json'\n"


@pytest.mark.parametrize("command", [
    ("validate", f"{LONG}.yaml"), ("plan", f"{LONG}.yaml"), ("run", f"{LONG}.yaml"), ("train", f"{LONG}.yaml"),
    ("resume", LONG), ("report", LONG), ("export", LONG, "--learner", "a"), ("schema", "-o", LONG),
    ("run", "SPEC", "--run-dir", LONG), ("validate", f"{'d/' * 3000}s.yaml"),
])
def test_a_path_too_long_for_the_file_system_is_bad_input(tmp_path, command):
    spec = write_spec(tmp_path, MINI_SPEC)
    args = [str(spec) if a == "SPEC" else a for a in command]
    result = sgl(*args, cwd=tmp_path)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(result.stderr) < 12_000  # the path is shortened or said once, not echoed again and again


def test_a_spec_that_extends_a_path_too_long_is_a_positioned_problem(tmp_path):
    path = write_spec(tmp_path, f"extends: {LONG}.yaml\n" + MINI_SPEC)
    result = sgl("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.startswith(f"{path}:1:10: extends: no such file: "), result.stderr[:300]


# --------------------------------------------------------------------------- fuzzing the arguments


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    """Paths a user might give, from plausible to hostile (no FIFO: reading one with no writer waits, as
    `cat` does, and `sgl validate <(...)` is a pipe that must be read)."""
    root = tmp_path_factory.mktemp("cli-fuzz")
    spec = write_spec(root, MINI_SPEC)
    broken = write_spec(root, "name: [\n", "broken.yaml")
    (root / "folder").mkdir()
    (root / "junk.bin").write_bytes(os.urandom(300))
    (root / "loop").symlink_to(root / "loop")
    not_a_run = root / "not_a_run"
    not_a_run.mkdir()
    (not_a_run / "thesis.tex").write_text("mine")
    half = root / "half_run"
    half.mkdir()
    (half / "run.json").write_text("{not json")
    return {
        "spec": str(spec), "broken": str(broken), "folder": str(root / "folder"),
        "junk": str(root / "junk.bin"), "loop": str(root / "loop"), "not_a_run": str(not_a_run), "half": str(half),
        "missing": str(root / "missing.yaml"), "long": LONG, "deep": "d/" * 3000, "surrogate": "a\udcffb",  # (no NUL: argv cannot carry one)
        "dev_zero": "/dev/zero", "dev_null": "/dev/null", "root": "/", "empty": "", "dash": "-", "out": str(root / "out"),
    }


def _texts() -> st.SearchStrategy[str]:
    argv = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=12)  # argv cannot carry a NUL
    return st.one_of(argv, st.sampled_from(["-1", "0", "1", "999999999999999999999", "nan", "--", "-q",
                                                            "seed=-1", "a.b=", "=", "x" * 300, "\x1b[31m", "é"]))


@st.composite
def invocations(draw, places: dict[str, str]) -> list[str]:
    path = st.one_of(st.sampled_from(sorted(places.values())), _texts())
    command = draw(st.sampled_from(["validate", "plan", "run", "train", "resume", "report", "export", "schema",
                                    "components", "nope", "--help"]))
    args: list[str] = [] if command == "--help" else [command]
    if command in ("validate", "plan", "run", "train"):
        args += draw(st.lists(path, min_size=0, max_size=2))
        args += draw(st.lists(_texts(), max_size=2))  # overrides, or more specs
        if command in ("run", "train"):
            args += draw(st.lists(st.sampled_from(["--run-dir", "--overwrite", "--stop-after", "-q"]), max_size=3))
            args += draw(st.lists(path, max_size=1))
            if places["spec"] in args:
                args += ["seed=-1"]  # never a run that trains: the last override makes the spec invalid
        elif command == "plan":
            args += draw(st.lists(st.sampled_from(["--format", "json", "dot", "text", "xml"]), max_size=2))
    elif command in ("resume", "report", "export"):
        args += draw(st.lists(path.filter(lambda p: p != places["spec"]), max_size=2))
        args += draw(st.lists(st.sampled_from(["--learner", "-l", "alice", "--format", "pt", "onnx", "--network", "W",
                                               "--stop-after", "0", "--group", "a=", "x=" + places["missing"]]),
                              max_size=4))
        args += ["-o", places["out"]] if draw(st.booleans()) else []
    elif command == "schema":
        args += draw(st.sampled_from([[], ["-o"], ["-o", places["folder"]], ["-o", places["missing"] + "/s.json"],
                                      ["-o", LONG], ["-o", places["surrogate"]], ["-o", places["dev_null"]]]))
    elif command == "components":
        args += draw(st.lists(_texts(), max_size=2))
    if draw(st.booleans()):
        args = ["--plugin", "sgl_fuzz_no_such_module"] + args
    return args


def test_fuzzed_arguments_never_give_a_traceback(places, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cwd")
    named: set[str] = set()  # what the commands were given: the only names they may write

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def check(data):
        args = data.draw(invocations(places), label="args")
        named.update(args)
        before = os.getcwd()
        os.chdir(cwd)
        try:
            result = CliRunner().invoke(main, args)
        finally:
            os.chdir(before)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"sgl {args!r} raised {result.exception!r}:\n{result.output[-2000:]}") from result.exception
        assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output[-2000:])
        assert "Traceback" not in result.output, (args, result.output[-3000:])
        if result.exit_code == 2:
            assert result.output.strip(), f"sgl {args!r} exited 2 without a word"

    check()
    written = {p.name for p in cwd.iterdir()} - named
    assert not written, f"fuzzed commands wrote {sorted(written)} where they were run, not as asked"
