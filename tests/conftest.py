"""Shared test helpers: build and write spec files, find positions in them, collect spec problems.

Tests describe a spec as Python data over a small base (``make_spec``), or, where the position of a
character matters, as YAML text (``spec_file``).
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

# One thread per test process: on 2 cores, two processes with two threads each (a test and the
# subprocess it runs, or a neighbour) slow each other down tenfold. Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
#: Digests of results pinned bit for bit, one file per kind of CPU (torch's capability: AVX2,
#: AVX512, ...): float kernels, and so the last bits, differ between kinds.
DIGESTS = Path(__file__).resolve().parent / "digests"


def cpu_kind() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


def read_digests(section: str) -> dict:
    """The digests of ``section`` recorded on this kind of CPU (empty when none were)."""
    import json

    path = DIGESTS / f"{cpu_kind()}.json"
    return json.loads(path.read_text(encoding="utf-8")).get(section, {}) if path.is_file() else {}


def write_digests(section: str, values: dict) -> Path:
    """Record ``values`` as this kind of CPU's digests of ``section`` (``python tests/<test>.py``)."""
    import json

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


def merged(base: dict, over: dict) -> dict:
    """``over`` deep-merged into ``base`` as ``extends:`` merges (maps merge, anything else replaces;
    a value ``None`` deletes the key)."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def build_spec(path: Path, base: dict | None = None, **sections) -> Path:
    """Write ``base`` (``BASE_SPEC``) with ``sections`` merged over it to ``path`` as YAML."""
    from ruamel.yaml import YAML

    path.parent.mkdir(parents=True, exist_ok=True)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    yaml.sort_base_mapping_type_on_output = False
    with open(path, "w", encoding="utf-8") as handle:
        yaml.dump(merged(BASE_SPEC if base is None else base, sections), handle)
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
