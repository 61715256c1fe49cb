"""Loading specs: positions, shorthands and defaults, dotted overrides, `extends:`."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MINI_SPEC, SPECS, problems, where, write_spec
from sgl.engine.specs.load import SpecError, load_document, load_spec, read_yaml


# --------------------------------------------------------------------------- reading


def test_quickstart_loads_with_defaults_and_shorthands():
    spec, doc = load_spec(SPECS / "quickstart.yaml")
    assert spec.name == "quickstart"
    assert spec.data.dataset.name == "digits"  # `dataset: digits` is shorthand for {name: digits}
    assert spec.data.dataset.size == 8  # a default of the dataset's own config
    assert list(spec.learners) == ["alice", "bob", "carol"]
    assert [type(c).__name__ for c in spec.learners.values()] == ["DartsConfig", "PCDartsConfig", "TorchvisionConfig"]
    assert spec.learners["bob"].partial_channels == 2
    assert spec.optim.arch.betas == (0.5, 0.999)
    assert [s.type for s in spec.stages] == ["train", "train", "derive"]
    assert doc.path == SPECS / "quickstart.yaml"


def test_positions_of_keys_and_values(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC)
    doc = read_yaml(path.read_text(), str(path))
    # `  bob: {kind: darts, channels: 4, ...}` is line 6
    assert str(doc.pos(("learners", "bob"), key=True)) == where(path, "bob")
    assert str(doc.pos(("learners", "bob", "channels"))) == where(path, "4", occurrence=2)
    assert str(doc.pos(("stages", 1, "steps", 2))) == where(path, "PL")
    # a path the document lacks falls back to the deepest prefix it has
    assert doc.pos(("learners", "bob", "nope")) == doc.pos(("learners", "bob"))


def test_component_mapping_without_name_means_the_default(make_spec):
    spec, _ = load_spec(make_spec(optim={"weights": {"lr": 0.1}, "arch": {"lr": 0.002}}))
    assert spec.optim.weights.name == "sgd" and spec.optim.weights.lr == 0.1
    assert spec.optim.arch.name == "adam" and spec.optim.arch.lr == 0.002


def test_yaml_merge_keys_are_plain_yaml(tmp_path):
    path = write_spec(
        tmp_path,
        MINI_SPEC.replace(
            "learners:\n  alice: {kind: darts, channels: 4, layers: 3, nodes: 2}\n  bob: {kind: darts, channels: 4, layers: 3, nodes: 2}",
            "learners:\n  alice: &a {kind: darts, channels: 4, layers: 3, nodes: 2}\n  bob: {<<: *a, channels: 8}",
        ),
    )
    spec, _ = load_spec(path)
    assert spec.learners["bob"].channels == 8 and spec.learners["bob"].layers == 3


# --------------------------------------------------------------------------- overrides


def test_overrides_set_nested_keys_and_list_items():
    spec, doc = load_spec(
        SPECS / "quickstart.yaml",
        ["optim.arch.lr=6e-4", "learners.alice.channels=16", "stages.0.epochs=2", "seed=3"],
    )
    assert spec.optim.arch.lr == pytest.approx(6e-4)
    assert spec.learners["alice"].channels == 16
    assert spec.learners["alice"].layers == 3  # siblings untouched
    assert spec.stages[0].epochs == 2 and spec.stages[0].name == "warmup"
    assert spec.seed == 3
    assert str(doc.pos(("seed",))) == "<override 4: seed=3>"


def test_override_values_are_parsed_as_yaml():
    doc = load_document(
        SPECS / "quickstart.yaml",
        ["optim.arch.lr=6e-4", "run.cpu=true", "optim.arch.betas=[0.1, 0.2]", "description='3'", "optim.grad_clip=", "learners.dave={kind: darts, channels: 4}"],
    )
    assert doc.data["optim"]["arch"]["lr"] == 6e-4 and isinstance(doc.data["optim"]["arch"]["lr"], float)
    assert doc.data["run"]["cpu"] is True
    assert doc.data["optim"]["arch"]["betas"] == [0.1, 0.2]
    assert doc.data["description"] == "3"
    assert doc.data["optim"]["grad_clip"] is None
    assert doc.data["learners"]["dave"] == {"kind": "darts", "channels": 4}


def test_override_can_add_a_learner():
    spec, _ = load_spec(SPECS / "quickstart.yaml", ["learners.dave.kind=darts", "learners.dave.channels=4"])
    assert list(spec.learners) == ["alice", "bob", "carol", "dave"]
    assert spec.learners["dave"].channels == 4


def test_override_replaces_a_whole_subtree():
    spec, doc = load_spec(SPECS / "quickstart.yaml", ["optim.weights={name: adam, lr: 0.01}"])
    assert spec.optim.weights.name == "adam" and spec.optim.weights.lr == 0.01
    # positions under the replaced value no longer point into the file
    assert str(doc.pos(("optim", "weights", "momentum"))).startswith("<override 1:")


# --------------------------------------------------------------------------- extends


BASE = """
name: base
seed: 7
learners:
  alice: {kind: darts, channels: 4, layers: 3, nodes: 2}
  bob: {kind: darts, channels: 4, layers: 3, nodes: 2}
optim:
  weights: {lr: 0.1, momentum: 0.8}
stages:
  - {name: warmup, epochs: 1, steps: [W]}
  - {name: search, epochs: 2, steps: [A, W, PL, V]}
"""


def test_extends_merges_maps_and_replaces_lists(tmp_path):
    write_spec(tmp_path, BASE, "base.yaml")
    child = write_spec(
        tmp_path,
        """
        extends: base.yaml
        name: child
        learners:
          bob: {channels: 8}
        optim:
          weights: {lr: 0.05}
        stages:
          - {name: only, epochs: 3, steps: [W]}
        loss_weights: {pseudo: 0}
        """,
        "child.yaml",
    )
    spec, doc = load_spec(child)
    assert spec.name == "child" and spec.seed == 7
    assert spec.learners["bob"].channels == 8 and spec.learners["bob"].layers == 3  # maps merge, deeply
    assert list(spec.learners) == ["alice", "bob"]
    assert spec.optim.weights.lr == 0.05 and spec.optim.weights.momentum == 0.8
    assert [s.name for s in spec.stages] == ["only"]  # lists replace
    assert "extends" not in doc.data
    # each value's position is in the file it came from
    assert str(doc.pos(("seed",))) == where(tmp_path / "base.yaml", "7")
    assert str(doc.pos(("optim", "weights", "lr"))) == where(child, "0.05")
    assert str(doc.pos(("optim", "weights", "momentum"))) == where(tmp_path / "base.yaml", "0.8")
    assert set(doc.sources) == {child, tmp_path / "base.yaml"}


def test_extends_is_relative_to_the_including_file(tmp_path, monkeypatch):
    write_spec(tmp_path, "seed: 11\n", "common/root.yaml")
    write_spec(tmp_path, "extends: ../../common/root.yaml\n" + BASE.replace("seed: 7\n", ""), "recipes/bases/base.yaml")
    child = write_spec(tmp_path, "extends: bases/base.yaml\nname: child\n", "recipes/child.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec, _ = load_spec(child)
    assert spec.seed == 11 and spec.name == "child" and len(spec.learners) == 2


def test_extends_several_bases_later_ones_win(tmp_path):
    write_spec(tmp_path, BASE, "base.yaml")
    write_spec(tmp_path, "seed: 1\ndescription: first\nrun: {log_every: 3}\n", "one.yaml")
    write_spec(tmp_path, "seed: 2\nrun: {cpu: true}\n", "two.yaml")
    child = write_spec(tmp_path, "extends: [base.yaml, one.yaml, two.yaml]\nname: child\n", "child.yaml")
    spec, _ = load_spec(child)
    assert spec.seed == 2 and spec.description == "first"
    assert spec.run.log_every == 3 and spec.run.cpu is True
    own = write_spec(tmp_path, "extends: [base.yaml, one.yaml, two.yaml]\nname: child\nseed: 5\n", "own.yaml")
    assert load_spec(own)[0].seed == 5  # the including file wins over every base


def test_extends_cycle_is_detected(tmp_path):
    a = write_spec(tmp_path, "extends: b.yaml\nname: a\n", "a.yaml")
    b = write_spec(tmp_path, "extends: a.yaml\n", "b.yaml")
    (line,) = problems(a)
    assert line.startswith(f"{where(b, 'a.yaml')}: extends: extends cycle:")
    assert line.count("a.yaml") == 2 and line.count("b.yaml") == 2  # b.yaml: its position and the chain


def test_extends_itself_is_a_cycle(tmp_path):
    a = write_spec(tmp_path, "extends: [a.yaml]\nname: a\n", "a.yaml")
    (line,) = problems(a)
    assert line.startswith(f"{where(a, 'a.yaml]')}: extends: extends cycle")


def test_the_same_base_twice_is_not_a_cycle(tmp_path):
    write_spec(tmp_path, BASE, "base.yaml")
    write_spec(tmp_path, "extends: base.yaml\nseed: 3\n", "left.yaml")
    write_spec(tmp_path, "extends: base.yaml\n", "right.yaml")
    child = write_spec(tmp_path, "extends: [left.yaml, right.yaml]\nname: diamond\n", "child.yaml")
    spec, _ = load_spec(child)
    assert spec.seed == 7  # right.yaml brings base's seed back after left.yaml


def test_extends_must_name_files(tmp_path):
    path = write_spec(tmp_path, "extends: {a: 1}\nname: x\n")
    with pytest.raises(SpecError) as info:
        load_document(path)
    assert str(info.value) == f"{where(path, '{a')}: extends: must be a file name or a list of file names"


def test_overrides_apply_after_extends(tmp_path):
    write_spec(tmp_path, BASE, "base.yaml")
    child = write_spec(tmp_path, "extends: base.yaml\nname: child\nseed: 9\n", "child.yaml")
    spec, _ = load_spec(child, ["seed=4", "learners.alice.channels=8"])
    assert spec.seed == 4 and spec.learners["alice"].channels == 8


def test_paths_in_the_spec_are_kept_as_written():
    spec, doc = load_spec(SPECS / "quickstart.yaml")
    assert spec.run.output == Path("../runs")  # resolved against doc.path.parent by the runner
    assert doc.path.parent == SPECS
