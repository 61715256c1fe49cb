"""`sgl components`: types as a spec writer reads them, defaults as YAML, the kinds in --help."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from click.testing import CliRunner

from sgl import registry
from sgl.engine.cli.components import type_name, yaml_text
from sgl.engine.cli.main import main


def test_every_component_reads_as_yaml_not_python() -> None:
    result = CliRunner().invoke(main, ["components"])
    assert result.exit_code == 0, result.output
    for python in ("PosixPath(", "Config(", "Literal", "Optional", "typing.", "NoneType", "protocol protocol"):
        assert python not in result.output, python
    assert "evaluation protocol — in a spec: protocol: darts" in result.output
    assert "dataset — in a spec: name: cifar10" in result.output


def test_a_protocols_fields(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(main, ["components", "protocol"])
    darts = result.output.split("\n\n")[0]  # the first protocol, darts
    lines = {line.split()[0]: line for line in darts.splitlines() if line.startswith("    ")}
    assert "float or null" in lines["grad_clip"] and "5.0" in lines["grad_clip"]
    assert "{name: sgd, lr: 0.025, momentum: 0.9" in lines["optimizer"] and "optimizer (mapping)" in lines["optimizer"]
    assert "one of: auto, cifar, imagenet" in lines["variant"]


def test_types_and_defaults() -> None:
    assert type_name(Optional[float]) == "float or null"
    assert type_name(Literal["a", "b"]) == "one of: a, b"
    assert type_name(tuple[int, ...]) == "list of int" and type_name(Path) == "path"
    assert type_name(dict[str, str | int]) == "mapping of text or int"
    assert yaml_text(Path("data/cifar")) == "data/cifar" and yaml_text(None) == "null" and yaml_text(False) == "false"
    assert yaml_text((0.5, 0.999)) == "[0.5, 0.999]"


def test_help_lists_every_kind() -> None:
    result = CliRunner().invoke(main, ["components", "--help"])
    assert result.exit_code == 0
    for kind in registry.KINDS:
        assert f"  {kind} " in result.output, kind
