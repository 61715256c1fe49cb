"""The `sgl` command's spine: validate, plan, schema, components; exit codes; no torch at start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MINI_SPEC, REPO, SPECS, where, write_spec
from sgl.engine.specs.schema import schema_text


def sgl(*args: str, cwd: Path = REPO, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *python, "-m", "sgl.engine.cli.main", *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_validate_every_shipped_spec():
    specs = sorted(str(p.relative_to(REPO)) for p in SPECS.glob("**/*.yaml"))
    assert len(specs) > 10  # the quickstart, the paper's recipes, baselines and mixes
    result = sgl("validate", *specs)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [line for line in result.stdout.splitlines() if line.startswith("ok: ")]
    assert len(result.stdout.splitlines()) == len(specs)
    assert "ok: specs/quickstart.yaml (3 learners, 3 stages, 4 search epochs)" in result.stdout


def test_bad_spec_exits_2_with_one_clean_line(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC + "optim:\n  weights:\n    name: sgd\n    momentun: 0.9\n")
    result = sgl("validate", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"{where(path, 'momentun')}: optim.weights.momentun: unknown key (did you mean 'momentum'?)"]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_debug_shows_the_traceback(make_spec):
    result = sgl("--debug", "validate", str(make_spec(seed=-1)))
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "SpecError" in result.stderr
    assert "seed: input should be greater than or equal to 0" in result.stderr


def test_validate_reports_every_file(tmp_path):
    good = write_spec(tmp_path, MINI_SPEC, "good.yaml")
    bad = write_spec(tmp_path, MINI_SPEC.replace("kind: darts", "kind: dartz", 1), "bad.yaml")
    worse = write_spec(tmp_path, "name: [\n", "worse.yaml")
    result = sgl("validate", str(bad), str(good), str(worse))
    assert result.returncode == 2
    assert result.stdout == f"ok: {good} (2 learners, 3 stages, 3 search epochs)\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{where(bad, 'dartz')}: learners.alice.kind: unknown learner kind 'dartz'")
    assert lines[1].startswith(f"{worse}:1:8: YAML syntax error")  # the end of its text, not the line after


def test_missing_spec_file_exits_2(tmp_path):
    result = sgl("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "cannot read spec" in result.stderr and "Traceback" not in result.stderr


def test_plan_names_every_learner_and_step():
    result = sgl("plan", "specs/quickstart.yaml")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for learner in ("alice", "bob", "carol"):
        assert f"  {learner}: " in out
        for step in ("W", "PL", "V"):
            assert f"{step}[{learner}]" in out
    assert "A[alice]" in out and "A[bob]" in out and "A[carol]" not in out
    for phase in ("warmup", "search", "derive"):
        assert phase in out
    assert "learns from bob, carol" in out


def test_plan_with_overrides_and_formats():
    result = sgl("plan", "specs/quickstart.yaml", "stages.0.epochs=2", "learners.alice.channels=16", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["stages"][0]["epochs"] == 2 and data["stages"][1]["first_epoch"] == 2
    assert data["learners"]["alice"]["config"]["channels"] == 16
    dot = sgl("plan", "specs/quickstart.yaml", "--format", "dot")
    assert dot.returncode == 0 and dot.stdout.startswith('digraph "quickstart"')


def test_plan_bad_override_exits_2():
    result = sgl("plan", "specs/quickstart.yaml", "optim.arch.lrr=6e-4")
    assert result.returncode == 2
    assert result.stderr == "<override 1: optim.arch.lrr=6e-4>: optim.arch.lrr: unknown key (did you mean 'lr'?)\n"


def test_plan_error_exits_2(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("{name: derive}", "{name: evaluate, learner: alise}"))
    result = sgl("plan", str(path))
    assert result.returncode == 2
    assert result.stderr == f"{where(path, 'alise')}: stages.2.learner: no learner named 'alise' (did you mean 'alice'?)\n"


def test_components_lists_the_catalogue():
    result = sgl("components", "search_space")
    assert result.returncode == 0, result.stderr
    for name in ("darts", "pc_darts", "p_darts"):
        assert name in result.stdout
    assert "partial_channels" in result.stdout
    bad = sgl("components", "spaces")
    assert bad.returncode == 2 and "unknown kind 'spaces'" in bad.stderr and "Traceback" not in bad.stderr


def test_usage_errors_exit_2():
    assert sgl("validate").returncode == 2
    assert sgl("no-such-command").returncode == 2


def test_cli_schema_prints_and_writes_the_same_text(tmp_path):
    out = tmp_path / "schema.json"
    cmd = [sys.executable, "-m", "sgl.engine.cli.main"]
    printed = subprocess.run([*cmd, "schema"], capture_output=True, text=True, cwd=REPO, check=True).stdout
    subprocess.run([*cmd, "schema", "-o", str(out)], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(printed) == json.loads(out.read_text(encoding="utf-8"))
    assert out.read_text(encoding="utf-8") == schema_text()


def _imported(stderr: str) -> set[str]:
    """Module names from `python -X importtime` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


@pytest.mark.parametrize("args", [("--help",), ("validate", "specs/quickstart.yaml"), ("plan", "specs/quickstart.yaml")])
def test_start_up_does_not_import_torch(args):
    result = sgl(*args, python=("-X", "importtime"))
    assert result.returncode == 0, result.stderr[-2000:]
    modules = _imported(result.stderr)
    assert "sgl.engine.cli.main" in modules or "sgl.engine" in modules  # importtime output was read
    heavy = sorted(m for m in modules if m.split(".")[0] in ("torch", "torchvision", "accelerate", "matplotlib", "sklearn"))
    assert heavy == [], f"`sgl {' '.join(args)}` imports {heavy[:5]}"


def test_console_script_runs():
    script = Path(sys.executable).with_name("sgl")
    if not script.exists():
        pytest.skip("the sgl console script is not installed next to this interpreter")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "validate" in result.stdout and "plan" in result.stdout
