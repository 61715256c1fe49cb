"""Issue #20, the plan's part: a DARTS-family layout that leaves a cell type without cells (14), and
a dataset whose files are not there (2) — said by `sgl validate` / `sgl plan`, refused by `sgl run`
before anything is made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DARTS, problems, where


def sgl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "sgl.engine.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env=env)


# --------------------------------------------------------------------------- 14: a cell type without cells


@pytest.mark.parametrize(("kind", "extra"), [("darts", {}), ("pc_darts", {"partial_channels": 2})])
@pytest.mark.parametrize("layers", [1, 2])
def test_a_supernet_without_a_normal_cell_is_refused(make_spec, kind, extra, layers):
    path = make_spec(learners={"alice": {**DARTS, "kind": kind, "layers": layers, **extra}, "bob": DARTS})
    (line,) = problems(path)
    assert line.startswith(f"{where(path, f'layers: {layers}', offset=8)}: learners.alice.layers: "), line
    assert "no normal cell" in line and "use 3 layers or more" in line, line


def test_every_phase_of_a_growing_space_needs_a_normal_cell(make_spec):
    path = make_spec(learners={"alice": {"kind": "p_darts", "channels": 4, "nodes": 2, "layers": None,
                                         "phases": [{"layers": 3, "ops": 8}, {"layers": 2, "ops": 4}]}},
                     stages=[{"epochs": 1, "steps": ["A", "W"]}, {"epochs": 1, "steps": ["A", "W"]}],
                     loss_weights={"pseudo": 0})
    (line,) = problems(path)
    assert "learners.alice.phases.1.layers: 2 layers leave no normal cell" in line, line


@pytest.mark.parametrize("layers", [3, 4, 5])
def test_three_layers_or_more_have_both_cell_types(make_spec, layers):
    assert problems(make_spec(learners={"alice": {**DARTS, "layers": layers}, "bob": DARTS})) == []


def test_a_fixed_network_of_two_cells_is_still_allowed(make_spec):
    # a genotype network has no architecture to learn: its cells are given
    from conftest import FIXED

    assert problems(make_spec(learners={"alice": DARTS, "bob": DARTS, "carol": FIXED})) == []


# --------------------------------------------------------------------------- 2: data that is not there


def _cifar_spec(make_spec, root: str) -> Path:
    return make_spec(data={"dataset": {"name": "cifar10", "root": root}, "batch_size": 16,
                           "split": {"train": 0.001, "val": 0.001}},
                     run={"cpu": True, "output": "runs"})


def _fifo(tmp_path: Path) -> str:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return str(fifo)


def _fifo_batches(tmp_path: Path) -> str:
    """A root whose batch files are FIFOs (reading one would block for ever)."""
    folder = tmp_path / "fifos" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]:
        os.mkfifo(folder / name)
    return str(tmp_path / "fifos")


ROOTS = {
    "nonexistent": lambda tmp_path: "/nonexistent",
    "fifo": _fifo,
    "dev_zero": lambda tmp_path: "/dev/zero",
    "fifo_batches": _fifo_batches,
}


@pytest.mark.parametrize("case", list(ROOTS))
def test_data_that_is_not_there_is_said_by_validate_and_refused_by_run(make_spec, tmp_path, case):
    root = ROOTS[case](tmp_path)
    path = _cifar_spec(make_spec, root)
    for command in ("validate", "plan"):
        result = sgl(command, str(path), cwd=tmp_path)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        assert "`sgl run` refuses to start until they are there" in " ".join((result.stdout + result.stderr).split())
    result = sgl("run", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "sgl resume" not in result.stderr, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{where(path, root)}: data.dataset.root: cifar10: "), line
    assert "(nothing was started)" in line
    if case != "fifo" and case != "dev_zero":
        assert "place the python-version batches there (cifar-10-python.tar.gz, extracted into" in line
    assert not (tmp_path / "runs").exists(), "a run directory was made for a run that cannot start"


def test_a_root_that_is_a_file_is_said_to_be_no_folder(make_spec, tmp_path):
    path = _cifar_spec(make_spec, "/dev/zero")
    result = sgl("run", str(path), "--run-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert result.returncode == 2 and "cifar10: /dev/zero (data.dataset.root) is not a folder" in result.stderr, result.stderr
    assert not (tmp_path / "r").exists()


def test_the_config_knows_torchvisions_layout():
    """The file names checked before a run are the ones torchvision reads (kept apart from it so
    that planning imports no torchvision)."""
    from torchvision import datasets

    from sgl.registry.datasets import Cifar10Config, Cifar100Config

    for config, cls in ((Cifar10Config, datasets.CIFAR10), (Cifar100Config, datasets.CIFAR100)):
        assert config.folder == cls.base_folder and config.archive == cls.filename
        assert list(config.files) == [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
