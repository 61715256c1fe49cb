"""A spec is data: its `plugins:` names installed entry points and never imports a module.

Arbitrary modules are imported only when the command line asks (`sgl --plugin MODULE`).
"""

from __future__ import annotations

import json
import sys
import uuid

import pytest
from click.testing import CliRunner

from conftest import DARTS, MINI_SPEC, build_spec, only, problems, where, write_spec
from sgl import registry
from sgl.engine.cli.main import main
from sgl.registry import core

PLUGIN = '''
from typing import Literal
from pydantic import Field, PositiveInt
from sgl.registry import register
from sgl.registry.models import ModelConfig


@register("model", "policy_mlp")
class PolicyMLPConfig(ModelConfig):
    """A perceptron from a test plugin."""

    kind: Literal["policy_mlp"] = "policy_mlp"
    hidden: PositiveInt = Field(8, description="Hidden units.")
'''

#: A module that leaves a mark when it runs: it must never run because a spec names it.
EVIL = 'import pathlib\npathlib.Path({marker!r}).write_text("ran")\n'


class _EntryPoint:
    def __init__(self, name: str, value: str):
        self.name, self.value = name, value

    def load(self):
        import importlib

        return importlib.import_module(self.value.split(":")[0])


@pytest.fixture
def module_dir(tmp_path, monkeypatch, clean_registry):
    """A folder on sys.path to write modules into (their registrations are undone afterwards)."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def _module(folder, text: str, stem: str = "sgl_test_policy") -> str:
    name = f"{stem}_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(text, encoding="utf-8")
    return name


def _install(monkeypatch, *entry_points: _EntryPoint) -> None:
    monkeypatch.setattr(core.metadata, "entry_points", lambda group: list(entry_points) if group == core.PLUGIN_GROUP else [])


def _invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_plugins_this_is_refused_and_the_module_never_runs(tmp_path, clean_registry):
    sys.modules.pop("this", None)
    path = write_spec(tmp_path, MINI_SPEC + "plugins: [this]\n")
    result = _invoke("validate", str(path))
    assert result.exit_code == 2
    assert result.output.startswith(f"{where(path, 'this')}: plugins.0: no installed sgl.plugins entry point 'this'")
    assert "Beautiful is better than ugly" not in result.output  # the Zen of Python, printed on import
    assert "this" not in sys.modules


def test_a_module_next_to_the_spec_is_not_run(tmp_path, module_dir):
    marker = tmp_path / "ran"
    evil = _module(module_dir, EVIL.format(marker=str(marker)))
    (tmp_path / f"{evil}.py").write_text(EVIL.format(marker=str(marker)), encoding="utf-8")
    path = write_spec(tmp_path, MINI_SPEC + f"plugins:\n  - {evil}\n")
    lines = problems(path)
    assert lines == [
        f"{where(path, evil)}: plugins.0: no installed sgl.plugins entry point {evil!r} (installed: none); "
        "a spec only names installed plugins, to import any other module use `sgl --plugin MODULE`"
    ]
    assert not marker.exists() and evil not in sys.modules


def test_an_installed_entry_point_is_accepted_by_name_and_by_module(make_spec, module_dir, monkeypatch):
    name = _module(module_dir, PLUGIN)
    _install(monkeypatch, _EntryPoint("policy", name))
    for listed in ("policy", name):
        path = make_spec(learners=only(alice=DARTS, m={"kind": "policy_mlp", "hidden": 4}), plugins=[listed])
        assert problems(path) == []
    assert "policy_mlp" in registry.names("model")


def test_an_unknown_name_lists_the_installed_plugins(tmp_path, module_dir, monkeypatch):
    name = _module(module_dir, PLUGIN)
    _install(monkeypatch, _EntryPoint("policy", name))
    path = write_spec(tmp_path, MINI_SPEC + "plugins: [policy, polcy]\n")
    assert problems(path) == [
        f"{where(path, 'polcy')}: plugins.1: no installed sgl.plugins entry point 'polcy' (installed: policy ({name})); "
        "a spec only names installed plugins, to import any other module use `sgl --plugin MODULE`"
    ]


def test_cli_plugin_option_imports_a_module_from_sys_path(make_spec, module_dir):
    name = _module(module_dir, PLUGIN)
    path = make_spec(learners={"bob": only(kind="policy_mlp")})
    assert _invoke("validate", str(path)).exit_code == 2  # without it the kind is unknown
    result = _invoke("--plugin", name, "validate", str(path))
    assert result.exit_code == 0, result.output
    assert name in sys.modules and "policy_mlp" in registry.names("model")
    # A spec may then name the module it needs.
    named = make_spec("named.yaml", learners={"bob": only(kind="policy_mlp")}, plugins=[name])
    assert _invoke("--plugin", name, "validate", str(named)).exit_code == 0


def test_cli_plugin_option_is_repeatable_and_a_bad_module_is_a_clean_error(make_spec, module_dir):
    first, second = _module(module_dir, PLUGIN), _module(module_dir, "raise RuntimeError('broken on purpose')\n")
    path = make_spec()
    result = _invoke("--plugin", first, "--plugin", second, "validate", str(path))
    assert result.exit_code == 2
    assert result.output == f"--plugin {second}: cannot import it: RuntimeError: broken on purpose\n"
    assert first in sys.modules
    result = _invoke("--plugin", "sgl_test_no_such_module", "validate", str(path))
    assert result.exit_code == 2 and "No module named 'sgl_test_no_such_module'" in result.output


def test_resume_reads_the_run_directory_spec_under_the_same_policy(tmp_path, module_dir):
    """`sgl resume` compiles spec.resolved.yaml with the same loader: a module it names never runs."""
    marker = tmp_path / "ran"
    evil = _module(module_dir, EVIL.format(marker=str(marker)))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"base_dir": str(tmp_path)}), encoding="utf-8")
    build_spec(run_dir / "spec.resolved.yaml", plugins=[evil])
    result = _invoke("resume", str(run_dir))
    assert result.exit_code == 2
    assert f"plugins.0: no installed sgl.plugins entry point {evil!r}" in result.output
    assert not marker.exists()
