"""Shared test helpers, for every layer's tests (tests/<layer>/): the one module they import from.

- specs: as Python data over a small base (``make_spec``, ``build_spec``; ``BASE_SPEC``, ``TINY``,
  ``SMALL``, ``GROWING``; learners ``DARTS``, ``PC_DARTS``, ``FIXED``; ``only`` to replace a map), or as
  YAML text where the text itself is tested: positions, comments, syntax, extends (``spec_file``,
  ``write_spec``, ``MINI_SPEC``); ``where`` finds a position, ``problems`` collects what is wrong;
- runs end to end: ``run_in``, reference runs (``tiny_run``, ``small_run``), ``assert_same_run``, the
  ``sgl`` command in its own process (``sgl_process``, ``run_sgl``; ``sgl_cli`` with its streams apart, on
  ``tiny_spec_text``), run directories written by hand
  (``write_run_dir``), CIFAR-10 batches on disk (``write_cifar10``);
- the groups the architecture-gradient methods compute on (``make_group`` and its companions);
- digests pinned bit for bit per kind of CPU (``recorded_digests``), the registry undone (``clean_registry``).

Plain functions and constants are imported (``from conftest import DARTS``), fixtures requested by
name. No folder has a conftest.py of its own: every conftest.py outside a package is the module
``conftest``, and pytest would put the last one loaded in its place, breaking those imports.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
import textwrap
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# One thread per test process: on 2 cores, two processes with two threads each (a test and the
# subprocess it runs, or a neighbour) slow each other down tenfold. Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402 - after the thread count is set
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

if TYPE_CHECKING:
    from sgl.registry.hypergrad.base import ArchContext

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
#: Digests of results pinned bit for bit, one file per kind of CPU (torch's capability: AVX2,
#: AVX512, ...): float kernels, and so the last bits, differ between kinds.
DIGESTS = Path(__file__).resolve().parent / "digests"


def cpu_kind() -> str:
    return torch.backends.cpu.get_cpu_capability()


def read_digests(section: str) -> dict:
    """The digests of ``section`` recorded on this kind of CPU (empty when none were)."""
    path = DIGESTS / f"{cpu_kind()}.json"
    return json.loads(path.read_text(encoding="utf-8")).get(section, {}) if path.is_file() else {}


def write_digests(section: str, values: dict) -> Path:
    """Record ``values`` as this kind of CPU's digests of ``section`` (``python tests/<layer>/<test>.py --write``)."""
    path = DIGESTS / f"{cpu_kind()}.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data[section] = values
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def recorded_digests():
    """``recorded_digests(section, case)``: what was recorded for ``case`` on this kind of CPU; the
    test is skipped, saying how to record, when nothing was."""

    def lookup(section: str, case: str):
        found = read_digests(section)
        if case not in found:
            pytest.skip(f"no {section} digest of {case!r} recorded on a {cpu_kind()} CPU "
                        f"(tests/digests/{cpu_kind()}.json); record them on such a machine")
        return found[case]

    return lookup


#: A small valid spec: two DARTS learners on digits, warm-up then search, then derive.
MINI_SPEC = """
name: mini
seed: 1
data: {dataset: digits, batch_size: 32}
learners:
  alice: {kind: darts, channels: 4, layers: 3, nodes: 2}
  bob: {kind: darts, channels: 4, layers: 3, nodes: 2}
stages:
  - {name: warmup, epochs: 1, steps: [W]}
  - {name: search, epochs: 2, steps: [A, W, PL, V]}
  - {name: derive}
"""


def write_spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    """Write ``text`` (dedented, leading newline dropped) to ``tmp_path / name`` and return the path."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def where(path: Path, needle: str, occurrence: int = 1, offset: int = 0) -> str:
    """``file:line:col`` (1-based) of the ``occurrence``-th ``needle`` in the file (``offset`` columns
    further right), as errors print positions."""
    seen = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        start = 0
        while (col := line.find(needle, start)) >= 0:
            seen += 1
            if seen == occurrence:
                return f"{path}:{number}:{col + 1 + offset}"
            start = col + 1
    raise AssertionError(f"{needle!r} (occurrence {occurrence}) not in {path}")


def problems(path: Path, overrides: tuple[str, ...] = (), *, plan: bool = True) -> list[str]:
    """Every problem the loader (and, with ``plan``, the planner) reports for a spec, as printed lines."""
    from sgl.engine.plan.compile import compile_spec
    from sgl.engine.specs.load import SpecError, load_spec

    try:
        compile_spec(path, overrides) if plan else load_spec(path, overrides)
    except SpecError as exc:
        return [str(p) for p in exc.problems]
    return []


#: Learners small enough for a test run on digits (one thread, a second or two per epoch).
DARTS = {"kind": "darts", "channels": 4, "layers": 3, "nodes": 2}
PC_DARTS = {"kind": "pc_darts", "channels": 4, "layers": 3, "nodes": 2, "partial_channels": 2}
FIXED = {"kind": "genotype", "genotype": "DARTS_V2", "channels": 4, "layers": 2}
#: Stages of a short SGL search: a warm-up epoch, a search epoch, then the genotypes.
SEARCH = [{"name": "warmup", "epochs": 1, "steps": ["W"]}, {"name": "search", "epochs": 1, "steps": ["A", "W", "PL", "V"]},
          {"name": "derive"}]

#: The base of ``make_spec``: two DARTS learners on a tenth of digits, on the CPU.
BASE_SPEC: dict = {
    "name": "test",
    "seed": 1,
    "data": {"dataset": "digits", "batch_size": 16, "split": {"train": 0.1, "val": 0.1}},
    "learners": {"alice": DARTS, "bob": DARTS},
    "stages": SEARCH,
    "run": {"cpu": True, "log_every": 4},
}


class _Only(dict):
    """A map that replaces the map it is merged over (see ``only``)."""


def only(items: dict | None = None, /, **more) -> dict:
    """A map that replaces the base's map at its key instead of merging into it, e.g. one learner in
    place of the base's two: ``make_spec(learners=only(solo=DARTS))``."""
    return _Only(items or {}, **more)


def merged(base: dict, over: dict) -> dict:
    """``over`` deep-merged into ``base`` as ``extends:`` merges (maps merge, anything else replaces;
    a value ``None`` deletes the key; a map made by ``only`` replaces)."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and not isinstance(value, _Only) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def _plain(value):
    """``value`` with every map a plain dict (what YAML writes)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def build_spec(path: Path, base: dict | None = None, **sections) -> Path:
    """Write ``base`` (``BASE_SPEC``) with ``sections`` merged over it to ``path`` as YAML."""
    from ruamel.yaml import YAML

    path.parent.mkdir(parents=True, exist_ok=True)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    yaml.sort_base_mapping_type_on_output = False
    with open(path, "w", encoding="utf-8") as handle:
        yaml.dump(_plain(merged(BASE_SPEC if base is None else base, sections)), handle)
    return path


@pytest.fixture
def make_spec(tmp_path: Path):
    """``make_spec(name="spec.yaml", base=None, **sections)``: a spec file in this test's tmp_path,
    ``BASE_SPEC`` (or ``base``) with the given sections merged over it, e.g.
    ``make_spec(learners={"alice": DARTS}, stages=[...], data={"batch_size": 32})``."""
    return lambda name="spec.yaml", base=None, **sections: build_spec(tmp_path / name, base, **sections)


@pytest.fixture
def spec_file(tmp_path: Path):
    """``spec_file(text, name="spec.yaml")`` writes a spec into this test's tmp_path."""
    return lambda text, name="spec.yaml": write_spec(tmp_path, text, name)


@pytest.fixture
def clean_registry():
    """Undo registrations (and plugin imports) a test makes, so later tests see the built-in catalogue."""
    from sgl.registry import core

    entries = {kind: dict(table) for kind, table in core._ENTRIES.items()}
    loaded = set(core._loaded_plugins)
    modules = set(sys.modules)
    yield core
    for kind, table in core._ENTRIES.items():
        table.clear()
        table.update(entries[kind])
    core._loaded_plugins.clear()
    core._loaded_plugins.update(loaded)
    core._version += 1  # cached spec models built with the test's components must be rebuilt
    for name in set(sys.modules) - modules:
        if name.startswith("sgl_test_"):
            del sys.modules[name]


# --------------------------------------------------------------------------- runs end to end

#: Three learners (DARTS, PC-DARTS, a fixed DARTS_V2 network) on a twentieth of digits: a warm-up
#: epoch, two search epochs, derive. The run the executor's end-to-end tests make.
TINY: dict = {
    "name": "tiny",
    "seed": 5,
    "data": {"dataset": "digits", "batch_size": 16, "split": {"train": 0.05, "val": 0.05}},
    "learners": {"alice": DARTS, "bob": PC_DARTS, "carol": FIXED},
    "optim": {"arch": {"lr": 3.0e-3}},
    "stages": [{"name": "warmup", "epochs": 1, "steps": ["W"]}, {"name": "search", "epochs": 2, "steps": ["A", "W", "PL", "V"]},
               {"name": "derive"}],
    "run": {"output": "runs", "log_every": 3, "cpu": True},
}
#: TINY without its fixed learner (2 supernets, 4 iterations an epoch, 3 epochs): the many runs the
#: crash tests make.
SMALL: dict = merged(TINY, {"name": "small", "learners": {"carol": None}})
#: A P-DARTS learner whose two growing phases each span a warm-up and a search stage, beside a DARTS learner.
GROWING: dict = {
    "name": "grow",
    "seed": 2,
    "data": {"dataset": "digits", "batch_size": 16, "split": {"train": 0.1, "val": 0.1}},
    "learners": {"pat": {"kind": "p_darts", "channels": 4, "nodes": 2, "on_grow": "reinit",
                         "phases": [{"layers": 3, "ops": 8, "skip_dropout": 0.2}, {"layers": 4, "ops": 3, "skip_dropout": 0.4}]},
                 "sam": DARTS},
    "stages": [{"name": "p1_warmup", "epochs": 1, "steps": ["W"], "growing_phase": 1},
               {"name": "p1_search", "epochs": 2, "steps": ["A", "W", "PL", "V"], "arch_start": 1, "growing_phase": 1},
               {"name": "p2_warmup", "epochs": 1, "steps": ["W"], "growing_phase": 2},
               {"name": "p2_search", "epochs": 2, "steps": ["A", "W", "PL", "V"], "growing_phase": 2}],
    "run": {"cpu": True},
}
#: A checkpoint after every iteration (time-based, 3 ms apart), for mid-epoch kills.
EVERY = ("run.checkpoint_every=0.00005",)


def run_in(spec: Path, run_dir: Path, *overrides: str, **options) -> Path:
    """``sgl run SPEC OVERRIDES --run-dir RUN_DIR`` in this process, without a progress display."""
    from sgl.engine.run.executor import RunOptions
    from sgl.engine.rundir.session import run_spec

    return run_spec(spec, overrides, RunOptions(run_dir=run_dir, progress=False, **options))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """One uninterrupted TINY run that several tests compare against: (its spec, its run directory)."""
    tmp = tmp_path_factory.mktemp("tiny")
    spec = build_spec(tmp / "spec.yaml", TINY)
    return spec, run_in(spec, tmp / "run")


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> tuple[Path, Path]:
    """One uninterrupted SMALL run, a checkpoint after every iteration (EVERY), that the crash tests
    compare against: (its spec, its run directory)."""
    tmp = tmp_path_factory.mktemp("small")
    spec = build_spec(tmp / "spec.yaml", SMALL)
    return spec, run_in(spec, tmp / "straight", *EVERY)


def run_metrics(run_dir: Path) -> list[dict]:
    """Every line of a run's metrics.jsonl, wall times left out."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in lines]


def checkpoint_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the last checkpoint's networks and spaces, by learner.net.key."""
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    flat = {}
    for name, learner in state["learners"].items():
        for net, net_state in learner["nets"].items():
            for key, tensor in net_state["module"].items():
                flat[f"{name}.{net}.{key}"] = tensor
        for key, tensor in learner.get("space", {}).items():
            flat[f"{name}.space.{key}"] = tensor
    return flat


def _genotypes(run_dir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((run_dir / "genotypes").iterdir())}


def assert_same_run(a: Path, b: Path) -> None:
    """Two run directories hold the same run: metrics, genotypes and every weight of the last checkpoint."""
    assert run_metrics(a) == run_metrics(b)
    assert _genotypes(a) == _genotypes(b)
    wa, wb = checkpoint_weights(a), checkpoint_weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


#: The ``sgl`` command, run by the interpreter of the tests.
SGL = (sys.executable, "-m", "sgl.engine.cli.main")


def sgl_env(env: dict | None = None) -> dict[str, str]:
    """The environment of an ``sgl`` process started by a test: one thread, unbuffered, plus ``env``."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}


def sgl_process(*args: str, cwd: Path, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """``sgl ARGS`` in its own process (one thread), output and errors together."""
    return subprocess.Popen([*SGL, *args], cwd=cwd, env=sgl_env(env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def run_sgl(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``sgl ARGS`` in its own process, to its end: output and errors together in ``stdout``."""
    process = sgl_process(*args, cwd=cwd, env=env)
    out, _ = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


def sgl_cli(*args: str, cwd: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess[str]:
    """``sgl ARGS`` in its own process (one thread) to its end, ``stdout`` and ``stderr`` apart: for
    tests of what each stream says (no traceback in stderr, the run directory first in stdout)."""
    return subprocess.run([*SGL, *args], capture_output=True, text=True, cwd=cwd, timeout=600, env=sgl_env(env),
                          **kwargs)


def tiny_spec_text(name: str, seed: int, *, search_epochs: int = 1, run_extra: str = "") -> str:
    """One small searchable DARTS learner on a sliver of digits (4 iterations an epoch): a warm-up
    epoch, ``search_epochs`` of search, the genotype. As YAML text, for tests that edit the text or
    run it with the ``sgl`` command; ``run_extra`` is appended inside the ``run:`` mapping."""
    return (f"name: {name}\n"
            f"seed: {seed}\n"
            "data: {dataset: digits, batch_size: 16, split: {train: 0.05, val: 0.05}}\n"
            "learners:\n"
            "  alice: {kind: darts, channels: 4, layers: 3, nodes: 2}\n"
            "stages:\n"
            "  - {name: warmup, epochs: 1, steps: [W]}\n"
            f"  - {{name: search, epochs: {search_epochs}, steps: [A, W]}}\n"
            "  - {name: derive}\n"
            f"run: {{cpu: true, log_every: 2, output: runs{run_extra}}}\n")


# --------------------------------------------------------------------------- run directories written by hand


def _softmax(row: list[float]) -> list[float]:
    import math

    top = max(row)
    exp = [math.exp(v - top) for v in row]
    return [v / sum(exp) for v in exp]


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def write_run_dir(root: Path, name: str, seed: int, *, test_error: float | None = None, learners=("alice", "bob"),
             metrics: bool = True, device: str = "cpu", hypergradient: str = "first_order",
             histories: tuple[str, ...] | None = None) -> Path:
    """A run directory written by hand in the formats of docs/run-directory.md, at ``root/name/seed<seed>``:
    run.json, summary.json (an evaluation when ``test_error`` is given), metrics.jsonl (``metrics``, its last
    line torn as a killed run leaves it), and genotypes with α histories (of ``histories``, default all)."""
    from sgl.registry.spaces.genotype import DEFAULT_PRIMITIVES
    from sgl.registry.spaces.published import DARTS_V2
    from sgl.registry.spaces.published import PC_DARTS as PC_DARTS_GENOTYPE

    edges = 14  # 4 nodes
    run = root / name / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"name": name, "spec": "spec.yaml", "base_dir": str(root), "overrides": [], "seed": seed}))
    summary = {
        "name": name, "status": "completed", "dataset": "digits", "hypergradient": hypergradient, "seed": seed,
        "epochs_done": 3, "distributed": {"processes": 1},
        "learners": {
            k: {"kind": "darts", "searchable": True, "val_acc": {"W": 0.9, "V": 0.91}, "test_acc": {"W": 0.88 + 0.01 * i, "V": 0.9},
                "genotype": f"genotypes/{k}.json", "params_M": 0.05}
            for i, k in enumerate(learners)
        },
        "search_cost": {"device": device, "hours": 0.01, "device_hours": 0.01, "wall_seconds": 36.0},
        "evaluations": [],
    }
    if test_error is not None:
        summary["evaluations"].append({
            "stage": "evaluate", "learner": learners[0], "genotype": f"genotypes/{learners[0]}.json",
            "genotype_json": PC_DARTS_GENOTYPE.to_json(), "dataset": "digits", "epochs": 3,
            "test_error_final": test_error, "test_error_best": test_error - 0.1,
            "test_acc_final": 1 - test_error / 100, "test_acc_best": 1 - (test_error - 0.1) / 100,
            "params_M": 3.3, "madds_M": 528.0, "device": device, "num_processes": 1, "hours": 0.02,
            "device_hours": 0.02, "wall_seconds": 72.0, "model": "models/evaluate.pt",
        })
    (run / "summary.json").write_text(json.dumps(summary))
    if not metrics:
        return run

    records, step = [], 0
    for epoch in range(3):
        for it in range(4):
            for i, k in enumerate(learners):
                records.append({"kind": "iter", "phase": "search", "epoch": epoch, "step": step, "learner": k,
                                "W/loss": 2.3 / (1 + step) + 0.1 * i, "W/acc": 0.1 + 0.05 * step,
                                "V/loss": 2.2 / (1 + step), "V/acc": 0.1 + 0.06 * step, "lr/W": 0.025, "lr/V": 0.025, "time": step})
            step += 1
        for i, k in enumerate(learners):
            records.append({"kind": "epoch", "phase": "search", "epoch": epoch, "learner": k,
                            "train/W/loss": 1.0 / (epoch + 1), "train/W/acc": 0.5 + 0.1 * epoch,
                            "train/V/loss": 0.9 / (epoch + 1), "train/V/acc": 0.55 + 0.1 * epoch,
                            "val/W/acc": 0.45 + 0.1 * epoch + 0.02 * i, "val/V/acc": 0.5 + 0.1 * epoch,
                            "lr/W": 0.02, "lr/V": 0.02, "entropy/normal": 2.0, "entropy/reduce": 2.0, "time": 10 * epoch})
    for epoch in range(3):
        records.append({"kind": "eval_epoch", "stage": "evaluate", "epoch": epoch, "train/loss": 2.0 - 0.5 * epoch,
                        "train/acc": 0.3 + 0.2 * epoch, "test/acc": 0.25 + 0.2 * epoch, "lr": 0.025, "time": 5.0 * epoch})
    records_text = "".join(json.dumps(r) + "\n" for r in records) + '{"kind": "iter", "torn'  # a killed run's last line
    (run / "metrics.jsonl").write_text(records_text)

    for i, k in enumerate(learners):
        DARTS_V2.save(run / "genotypes" / f"{k}.json")
        if histories is not None and k not in histories:
            continue
        history = []
        for epoch in range(3):
            alpha = {cell: [_softmax([0.1 * epoch * ((e + o + i + c) % 3) for o in range(len(DEFAULT_PRIMITIVES))])
                            for e in range(edges)] for c, cell in enumerate(("normal", "reduce"))}
            history.append({"epoch": epoch, "genotype": DARTS_V2.to_json(), "alpha": alpha,
                            "primitives": list(DEFAULT_PRIMITIVES), "entropy": {"normal": 2.0, "reduce": 2.0}})
        _write_jsonl(run / "genotypes" / f"{k}.history.jsonl", history)
    return run


# --------------------------------------------------------------------------- data on disk


def write_cifar10(root: Path, per_batch: int = 3, n_test: int = 4):
    """CIFAR-10's python batches under ``root`` (random images, labels ``(i + j) % 10``); the test images."""
    import numpy as np

    def dump(path: Path, obj: dict) -> None:
        with open(path, "wb") as f:
            pickle.dump(obj, f)

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    test_data = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    for i in range(1, 6):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        dump(folder / f"data_batch_{i}", {"data": data, "labels": [(i + j) % 10 for j in range(per_batch)]})
    dump(folder / "test_batch", {"data": test_data, "labels": list(range(n_test))})
    dump(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    return test_data


# --------------------------------------------------------------------------- architecture-gradient groups
# What the tests of registry/hypergrad compute on: a tiny smooth search space (or a real one), fixed
# learners, and the batches of one A-step.


class _MixedCell(nn.Module):
    """x ← Σ_o w_o·op_o(x) over smooth operations (GELU convolutions, average pooling, identity)."""

    def __init__(self, c: int):
        super().__init__()
        self.ops = nn.ModuleList(
            [
                nn.Sequential(nn.GELU(), nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c, affine=False)),
                nn.Sequential(nn.GELU(), nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=False)),
                nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
                nn.Identity(),
            ]
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class _TinyNet(nn.Module):
    def __init__(self, c: int = 4, cells: int = 2, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.cells = nn.ModuleList([_MixedCell(c) for _ in range(cells)])
        self.head = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor, arch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.stem(x)
        for i, cell in enumerate(self.cells):
            x = cell(x, arch["normal"][i])
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


class _TinySpace(nn.Module):
    """A SearchSpace stand-in: ``forward()`` returns softmax(α), networks take it as input."""

    def __init__(self, cells: int = 2, ops: int = 4):
        super().__init__()
        self.alpha = nn.Parameter(0.5 * torch.randn(cells, ops))
        self.cells = cells

    def forward(self) -> dict[str, torch.Tensor]:
        return {"normal": F.softmax(self.alpha, dim=-1)}

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def new_network(self) -> nn.Module:
        return _TinyNet(cells=self.cells)


class _FixedNet(nn.Module):
    """A fixed learner (no architecture): a small GELU conv net with BatchNorm."""

    def __init__(self, c: int = 4, classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.GELU())
        self.head = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1))


def _sgd(net: nn.Module, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=3e-4)


def _warm(net: nn.Module, opt: torch.optim.Optimizer, space: nn.Module | None, x, y) -> None:
    """One real step, so momentum buffers exist and BatchNorm statistics have moved."""
    arch = None if space is None else {k: v.detach() for k, v in space().items()}
    logits = net(x) if space is None else net(x, arch)
    opt.zero_grad()
    F.cross_entropy(logits, y).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def make_group(
    *,
    searchable: int = 2,
    fixed: int = 0,
    dtype: torch.dtype = torch.float64,
    lam: float = 1.0,
    w_lab: float = 1.0,
    lr: float = 0.3,
    labeler=None,
    seed: int = 0,
    build=None,
    batch: int = 8,
    image: int = 8,
    autocast=nullcontext,
) -> ArchContext:
    """Learners of an SGL group, each with W and V networks one real SGD step in (momentum buffers and
    BatchNorm statistics moved), and the batches of an A-step: the ``ArchContext`` a method gets.
    ``searchable`` learners on ``build()`` (the smooth stand-in space by default), ``fixed`` ones on a
    small fixed network."""
    from sgl.registry.hypergrad.base import ArchContext, LearnerView
    from sgl.registry.pseudo_labels import SoftConfig

    g = torch.Generator().manual_seed(seed + 1000)
    x_tr, x_u, x_v = (torch.randn(batch, 1, image, image, generator=g, dtype=dtype) for _ in range(3))
    y_tr, y_v = (torch.randint(0, 10, (batch,), generator=g) for _ in range(2))
    torch.manual_seed(seed)
    learners = {}
    for i in range(searchable + fixed):
        name = f"l{i}"
        if i < searchable:
            space = (build() if build else _TinySpace()).to(dtype)
            w_net, v_net = space.new_network().to(dtype), space.new_network().to(dtype)
        else:
            space, w_net, v_net = None, _FixedNet().to(dtype), _FixedNet().to(dtype)
        w_opt, v_opt = _sgd(w_net, lr), _sgd(v_net, lr)
        _warm(w_net, w_opt, space, x_tr, y_tr)
        _warm(v_net, v_opt, space, x_tr, y_tr)
        learners[name] = LearnerView(name, space, w_net, w_opt, v_net, v_opt)
    names = list(learners)
    return ArchContext(
        learners=learners,
        targets=names[:searchable],
        peers={k: [j for j in names if j != k] for k in names},
        x_train=x_tr,
        y_train=y_tr,
        x_unlabeled=x_u,
        x_val=x_v,
        y_val=y_v,
        w_labeled=w_lab,
        w_pseudo=lam,
        pseudo_labeler=labeler or SoftConfig(),
        autocast=autocast,
    )


def compare(got: dict, want: dict) -> tuple[float, float]:
    """(cosine similarity, relative error ‖got − want‖ / ‖want‖) over all targets' gradients."""
    assert got.keys() == want.keys()
    a = torch.cat([t.double().flatten() for k in sorted(got) for t in got[k]])
    b = torch.cat([t.double().flatten() for k in sorted(want) for t in want[k]])
    return float(F.cosine_similarity(a, b, dim=0)), float((a - b).norm() / b.norm())


def snapshot(ctx: ArchContext) -> dict:
    """Every parameter, gradient, buffer and optimizer state of a group, copied."""
    state = {}
    for name, lv in ctx.learners.items():
        modules = {"w": lv.w_net, "v": lv.v_net}
        if lv.space is not None:
            modules["a"] = lv.space
        for tag, m in modules.items():
            for n, t in list(m.named_parameters()) + list(m.named_buffers()):
                state[f"{name}.{tag}.{n}"] = t.detach().clone()
                if isinstance(t, nn.Parameter):
                    state[f"{name}.{tag}.{n}.grad"] = None if t.grad is None else t.grad.clone()
        for tag, opt in (("w_opt", lv.w_opt), ("v_opt", lv.v_opt)):
            state[f"{name}.{tag}"] = copy.deepcopy(opt.state_dict())
    return state


def assert_same_state(before: dict, after: dict) -> None:
    """Two snapshots are equal, bit for bit."""
    assert before.keys() == after.keys()
    for key in before:
        a, b = before[key], after[key]
        if isinstance(a, dict):  # optimizer state_dict
            assert a["param_groups"] == b["param_groups"], key
            assert a["state"].keys() == b["state"].keys(), key
            for i in a["state"]:
                for field in a["state"][i]:
                    assert torch.equal(a["state"][i][field], b["state"][i][field]), f"{key}[{i}].{field}"
        elif a is None or b is None:
            assert a is None and b is None, key
        else:
            assert torch.equal(a, b), key


def real_space(kind: str):
    """A builder of a real DARTS or PC-DARTS space (ReLU, max-pool, BatchNorm): 2 cells, C=4, on 8x8 digits."""
    from sgl.registry import Task
    from sgl.registry.spaces import DartsConfig, PCDartsConfig

    task = Task(num_classes=10, in_channels=1, image_size=8)
    if kind == "darts":
        cfg = DartsConfig(channels=4, layers=2, nodes=2, init_scale=0.3)
    else:
        cfg = PCDartsConfig(channels=4, layers=2, nodes=2, partial_channels=2, init_scale=0.3)
    return lambda: cfg.build(task)


class _WrappedOptimizer:
    """Stands in for accelerate's AcceleratedOptimizer: the real optimizer in ``.optimizer``."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state


def wrap_group(ctx: ArchContext, wrap_net) -> ArchContext:
    """The group with every network wrapped by ``wrap_net`` (e.g. DDP) and every optimizer as Accelerate wraps it."""
    import dataclasses

    learners = {
        k: dataclasses.replace(lv, w_net=wrap_net(lv.w_net), v_net=wrap_net(lv.v_net),
                               w_opt=_WrappedOptimizer(lv.w_opt), v_opt=_WrappedOptimizer(lv.v_opt))
        for k, lv in ctx.learners.items()
    }
    return dataclasses.replace(ctx, learners=learners)


#: Long end-to-end tests (15 s or more each on 2 cores) whose property a shorter test of the default
#: suite also checks, in another setting (another kill point, another link, the other signal, a
#: second executor or process layout). `python -m pytest -m slow` runs them; CI runs them after
#: the suite. Listed here, by node id, so that one place says what the default suite leaves out.
SLOW = frozenset({
    "tests/study/test_study_crash_only.py::test_kill_9_the_driver_then_resume_gives_the_same_trials_and_table[study_start]",
    "tests/study/test_study_crash_only.py::test_kill_9_the_driver_then_resume_gives_the_same_trials_and_table[study_end]",
    "tests/study/test_study_executors.py::test_the_same_study_on_a_local_ray_instance_gives_the_same_trials",
    "tests/run/test_one_process_fails.py::test_an_error_on_one_process_stops_every_process_with_its_message",
    "tests/rundir/test_resume_across_machines.py::test_a_run_of_two_machines_without_a_shared_disk_resumes_bit_identically",
    "tests/rundir/test_trackers.py::test_mlflow_reads_metrics_params_and_artifacts_from_the_run_directory",
    "tests/run/test_fused_runs.py::test_a_fused_run_resumes_bit_identically_and_exports",
    "tests/run/test_fused_runs.py::test_second_order_methods_run_through_fused_networks",
    "tests/run/test_fused_runs.py::test_a_short_search_is_the_plain_search_up_to_rounding",
    "tests/run/test_data_feed.py::test_a_dataset_built_later_never_gets_an_earlier_datasets_device_copy",
    "tests/rundir/test_fuzz_run_files.py::test_damaged_run_files_give_clean_refusals_or_correct_results",
    "tests/rundir/test_kill_and_resume.py::test_a_kill_during_a_resumed_run_resumes_again",
    "tests/rundir/test_kill_and_resume.py::test_kill_9_anywhere_then_resume_is_bit_identical[checkpoint:9]",
    "tests/rundir/test_kill_and_resume.py::test_kill_9_anywhere_then_resume_is_bit_identical[summary:1]",
    "tests/rundir/test_kill_and_resume.py::test_kill_9_anywhere_then_resume_is_bit_identical[write:7]",
    "tests/rundir/test_kill_and_resume.py::test_kill_9_anywhere_then_resume_is_bit_identical[write:8]",
    "tests/rundir/test_hostile_run_dirs.py::test_metrics_shorter_than_the_checkpoint_says_are_refused_never_padded[deleted]",
    "tests/rundir/test_hostile_run_dirs.py::test_metrics_shorter_than_the_checkpoint_says_are_refused_never_padded[empty]",
    "tests/rundir/test_hostile_run_dirs.py::test_a_kill_while_the_directory_is_set_up_resumes_by_itself[5]",
    "tests/rundir/test_hostile_run_dirs.py::test_links_where_a_runs_files_belong_are_refused_and_nothing_outside_changes[summary.json]",
    "tests/rundir/test_hostile_run_dirs.py::test_links_where_a_runs_files_belong_are_refused_and_nothing_outside_changes[checkpoints]",
    "tests/rundir/test_hostile_run_dirs.py::test_links_where_a_runs_files_belong_are_refused_and_nothing_outside_changes[figures]",
    "tests/rundir/test_hostile_run_dirs.py::test_links_where_a_runs_files_belong_are_refused_and_nothing_outside_changes[genotypes/alice.history.jsonl]",
    "tests/cli/test_what_a_person_sees.py::test_the_first_signal_is_answered_at_once_and_the_run_is_interrupted_not_failed[sigterm]",
    "tests/cli/test_cli_run_exit_codes.py::test_interrupt_checkpoints_and_resume_completes",
    "tests/run/test_distributed_runs.py::test_ctrl_c_on_one_process_stops_every_process_with_a_checkpoint",
    "tests/run/test_distributed_runs.py::test_torchrun_on_cpu_forms_one_run_without_run_cpu",
    "tests/run/test_distributed_runs.py::test_a_stopped_peer_fails_the_run_after_the_timeout",
    "tests/study/test_study_crash_only.py::test_kill_9_the_driver_then_resume_gives_the_same_trials_and_table[running]",
    "tests/rundir/test_hostile_run_dirs.py::test_a_kill_while_the_directory_is_set_up_resumes_by_itself[3]",
    "tests/rundir/test_hostile_run_dirs.py::test_links_where_a_runs_files_belong_are_refused_and_nothing_outside_changes[metrics.jsonl]",
    "tests/cli/test_what_a_person_sees.py::test_a_second_ctrl_c_stops_at_once_and_the_run_is_interrupted_not_failed",
    "tests/cli/test_what_a_person_sees.py::test_a_failed_write_says_the_exact_resume_command",
    "tests/rundir/test_corrupt_run_files.py::test_an_unusable_last_checkpoint_falls_back_to_the_previous[truncated]",
    "tests/cli/test_cli_run_exit_codes.py::test_a_full_disk_keeps_the_checkpoints_and_exits_1",
    "tests/rundir/test_earlier_run_directories.py::test_an_earlier_run_resumes_bit_identically_and_reports",
    "tests/run/test_device_batches.py::test_a_search_on_device_batches_resumes_bit_identically",
    "tests/run/test_distributed_runs.py::test_a_non_finite_loss_on_one_process_stops_every_process",
    "tests/study/test_study_executors.py::test_a_trial_is_bit_identical_to_the_same_run_alone",
    "tests/results/test_export_derived.py::test_an_evaluated_learner_also_gets_its_trained_network_sized_by_its_stage",
})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in SLOW:
            item.add_marker(pytest.mark.slow)
