"""Spoilt run files are refused or skipped, never loaded blindly: an unusable last checkpoint falls back
to the previous one (the run then replays bit for bit), no usable checkpoint or a broken run.json is a
clean error (exit 2), and a checkpoint is never loaded with code in it."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from conftest import EVERY, assert_same_run
from sgl.engine.cli.main import main


@pytest.fixture(scope="module")
def stopped_once(small_run, tmp_path_factory) -> Path:
    """A run stopped after its first epoch: last.pt and previous.pt are both valid."""
    spec, _ = small_run
    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    result = CliRunner().invoke(main, ["run", str(spec), *EVERY, "--run-dir", str(run_dir), "--stop-after", "1", "-q"])
    assert result.exit_code == 0, result.output
    return run_dir


def _stopped(tmp_path: Path, original: Path) -> Path:
    """A copy of the stopped run to spoil."""
    import shutil

    run_dir = tmp_path / "stopped"
    shutil.copytree(original, run_dir, ignore=shutil.ignore_patterns(".lock"))
    return run_dir


def _foreign_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data.txt", "not a checkpoint")


class _Foreign:
    pass


def _with_state(change):
    def corrupt(path: Path) -> None:
        state = torch.load(path, weights_only=True)
        change(state)
        torch.save(state, path)

    return corrupt


def _wrong_shape(state) -> None:
    module = state["learners"]["alice"]["nets"]["W"]["module"]
    key = next(k for k, v in module.items() if v.dim() == 4)
    module[key] = torch.zeros(1, 1, 1, 1)


CORRUPTIONS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "random_bytes": lambda p: p.write_bytes(os.urandom(4096)),
    "empty": lambda p: p.write_bytes(b""),
    "directory": lambda p: (p.unlink(), p.mkdir()),
    "foreign_zip": _foreign_zip,
    "missing_learner": _with_state(lambda s: s["learners"].pop("bob")),
    "wrong_shapes": _with_state(_wrong_shape),
    "code_pickle": lambda p: torch.save({"format": 2, "x": _Foreign()}, p),
    "other_format": _with_state(lambda s: s.update(format=99)),
}


#: Kinds whose fallback resume runs to the end (the rest stop where the spoiled checkpoint was).
REPLAYED = ("truncated", "wrong_shapes", "code_pickle")


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_an_unusable_last_checkpoint_falls_back_to_the_previous(small_run, stopped_once, tmp_path, kind):
    spec, straight = small_run
    run_dir = _stopped(tmp_path, stopped_once)
    CORRUPTIONS[kind](run_dir / "checkpoints" / "last.pt")
    replayed = kind in REPLAYED
    result = CliRunner().invoke(main, ["resume", str(run_dir), *(() if replayed else ("--stop-after", "1"))])
    assert result.exit_code == 0, result.output
    assert "resumed from" in result.output and "previous.pt instead" in result.output
    # a resume from further back replays the same run: to its end, or to where last.pt was spoiled
    assert_same_run(straight if replayed else stopped_once, run_dir)


@pytest.mark.parametrize("kind", ["truncated", "empty", "code_pickle", "wrong_shapes"])
def test_no_usable_checkpoint_is_a_clean_error(stopped_once, tmp_path, kind):
    run_dir = _stopped(tmp_path, stopped_once)
    for name in ("last.pt", "previous.pt"):
        CORRUPTIONS[kind](run_dir / "checkpoints" / name)
    result = CliRunner().invoke(main, ["resume", str(run_dir)])
    assert result.exit_code == 2 and result.exception.__class__ is SystemExit, result.output
    assert result.output.startswith("error: no usable checkpoint: ") and "Traceback" not in result.output
    assert "weights_only=False" not in result.output  # never advise loading code
    exported = CliRunner().invoke(main, ["export", str(run_dir), "--learner", "alice", "--format", "pt", "--network", "W"])
    assert exported.exit_code == 2 and "Traceback" not in exported.output, exported.output


def test_a_broken_run_json_is_a_clean_error(stopped_once, tmp_path):
    run_dir = _stopped(tmp_path, stopped_once)
    (run_dir / "run.json").write_text("{not json")
    result = CliRunner().invoke(main, ["resume", str(run_dir)])
    assert result.exit_code == 2 and "run.json is not readable JSON" in result.output
