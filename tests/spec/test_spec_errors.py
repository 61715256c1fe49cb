"""Every kind of spec error: one line each, `file:line:col: key.path: what is wrong`, all at once."""

from __future__ import annotations

import pytest

from conftest import MINI_SPEC, SEARCH, SPECS, problems, where, write_spec
from sgl.engine.specs.load import SpecError, load_document, load_spec


def only(lines: list[str]) -> str:
    assert len(lines) == 1, lines
    return lines[0]


# --------------------------------------------------------------------------- YAML itself


def test_yaml_syntax_error(tmp_path):
    path = write_spec(tmp_path, "name: t\nstages: [{epochs: 1, steps: [W]}\nseed: 1\n")
    line = only(problems(path))
    assert line.startswith(f"{path}:3:")  # where the parser noticed the missing ']'
    assert "YAML syntax error" in line


def test_yaml_syntax_error_column(tmp_path):
    path = write_spec(tmp_path, "name: t\nseed: [1, 2\n  data: x\n")
    line = only(problems(path))
    assert line.startswith(f"{path}:3:7: ") and "YAML syntax error" in line


def test_duplicate_key(tmp_path):
    path = write_spec(
        tmp_path,
        """
        name: t
        learners:
          alice: {kind: darts}
          alice: {kind: pc_darts}
        stages: [{epochs: 1, steps: [W]}]
        """,
    )
    line = only(problems(path))
    assert line == f"{where(path, 'alice', 2)}: learners.alice: duplicate key (first at line 3)"


def test_duplicate_key_deep_inside_a_list(tmp_path):
    path = write_spec(tmp_path, "name: t\nstages:\n  - {epochs: 1, steps: [W], epochs: 2}\n")
    assert only(problems(path)) == f"{where(path, 'epochs', 2)}: stages.0.epochs: duplicate key (first at line 3)"


def test_spec_must_be_a_mapping(tmp_path):
    path = write_spec(tmp_path, "- name: t\n")
    assert only(problems(path)) == f"{path}:1:1: a spec must be a mapping of keys to values"


def test_empty_spec_reports_the_required_keys(tmp_path):
    path = write_spec(tmp_path, "")
    assert problems(path) == [f"{path}:1:1: name: missing required key", f"{path}:1:1: stages: missing required key"]


def test_spec_not_utf8(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    line = only(problems(path))
    assert line.startswith(f"{path}:1:7: not UTF-8")  # at the first byte that is not UTF-8


def test_missing_spec_file(tmp_path):
    line = only(problems(tmp_path / "nope.yaml"))
    assert "cannot read spec" in line and "nope.yaml" in line


# --------------------------------------------------------------------------- Python tags


@pytest.mark.parametrize(
    "text, needle",
    [
        ('x: !!python/object/apply:os.system ["touch {marker}"]\n', "!!python"),
        ('x: [1, !!python/object/apply:os.system ["touch {marker}"]]\n', "!!python"),
        ("!!python/object/apply:os.system ['touch {marker}'] : 1\n", "!!python"),
        ("x: !!python/name:os.system\n", "!!python"),
        ("x: !custom 3\n", "!custom"),
    ],
)
def test_python_and_custom_tags_are_refused_not_run(tmp_path, text, needle):
    marker = tmp_path / "executed"
    path = write_spec(tmp_path, "name: t\nstages: [{epochs: 1, steps: [W]}]\n" + text.format(marker=marker))
    # Reported with every other problem of the file (here `x` is also an unknown key).
    (line,) = [p for p in problems(path) if "is not allowed in a spec" in p]
    assert line.startswith(where(path, needle) + ": ")
    assert not marker.exists()


def test_python_tag_at_a_known_key_names_the_key(tmp_path):
    path = write_spec(tmp_path, "name: t\nseed: !!python/object/apply:os.getpid []\nstages: [{epochs: 1, steps: [W]}]\n")
    assert only(problems(path)).startswith(f"{where(path, '!!python')}: seed: tag 'tag:yaml.org,2002:python/object/apply:os.getpid' is not allowed")


def test_python_tag_in_an_override_is_refused(tmp_path):
    marker = tmp_path / "executed"
    override = f'description=!!python/object/apply:os.system ["touch {marker}"]'
    line = only(problems(SPECS / "quickstart.yaml", (override,)))
    assert line.startswith(f"<override 1: {override}>") and "is not allowed in a spec" in line
    assert not marker.exists()


def test_bad_explicitly_tagged_scalar(tmp_path):
    path = write_spec(tmp_path, "name: t\nseed: !!int abc\nstages: [{epochs: 1, steps: [W]}]\n")
    line = only(problems(path))
    assert line.startswith(f"{where(path, '!!int')}: seed: bad int value")


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    "before, after, key, suggestion",
    [
        ("seed: 1", "sed: 1", "sed", "seed"),  # top level
        ("data: {dataset: digits, batch_size: 32}", "data: {dataset: digits, batch_sise: 32}", "data.batch_sise", "batch_size"),
        ("data: {dataset: digits, batch_size: 32}", "data: {dataset: {name: digits, sise: 8}, batch_size: 32}", "data.dataset.sise", "size"),
        ("alice: {kind: darts, channels: 4,", "alice: {kind: darts, chanels: 4,", "learners.alice.chanels", "channels"),
        ("{name: search, epochs: 2,", "{name: search, epochs: 2, arch_strat: 1,", "stages.1.arch_strat", "arch_start"),
    ],
)
def test_unknown_key_at_any_depth(tmp_path, before, after, key, suggestion):
    assert before in MINI_SPEC
    path = write_spec(tmp_path, MINI_SPEC.replace(before, after, 1))
    typo = key.rsplit(".", 1)[-1]
    assert only(problems(path)) == f"{where(path, typo)}: {key}: unknown key (did you mean {suggestion!r}?)"


def test_misspelt_key_three_levels_deep_gives_one_line(tmp_path):
    path = write_spec(
        tmp_path,
        MINI_SPEC
        + """
        optim:
          weights:
            name: sgd
            momentun: 0.9
        """.replace("\n        ", "\n"),
    )
    lines = problems(path)
    assert lines == [f"{where(path, 'momentun')}: optim.weights.momentun: unknown key (did you mean 'momentum'?)"]
    assert where(path, "momentun").endswith(":15:5")


def test_unknown_key_five_levels_deep(tmp_path):
    path = write_spec(
        tmp_path,
        """
        name: t
        learners:
          p:
            kind: p_darts
            phases:
              - {layers: 5, ops: 8, skip_dropot: 0.1}
        loss_weights: {pseudo: 0}
        stages: [{epochs: 1, steps: [A, W]}]
        """,
    )
    assert only(problems(path, plan=False)) == (
        f"{where(path, 'skip_dropot')}: learners.p.phases.0.skip_dropot: unknown key (did you mean 'skip_dropout'?)"
    )


def test_unknown_key_in_an_evaluate_stage_and_its_optimizer(tmp_path):
    path = write_spec(
        tmp_path,
        """
        name: t
        stages:
          - {name: evaluate, genotype: DARTS_V2, chanels: 8}
          - {type: evaluate, name: final, genotype: DARTS_V2, optimizer: {lr: 0.1, momentun: 0.9}}
        """,
    )
    assert problems(path) == [
        f"{where(path, 'chanels')}: stages.0.chanels: unknown key (did you mean 'channels'?)",
        f"{where(path, 'momentun')}: stages.1.optimizer.momentun: unknown key (did you mean 'momentum'?)",
    ]


def test_unknown_key_in_a_train_stage_named_like_another_type(tmp_path):
    path = write_spec(tmp_path, "name: t\nstages:\n  - {name: evaluate, epochs: 1, steps: [W], arch_strat: 1}\n")
    assert only(problems(path)) == f"{where(path, 'arch_strat')}: stages.0.arch_strat: unknown key (did you mean 'arch_start'?)"


def test_unknown_key_without_a_close_match(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC + "zzz: 1\n")
    assert only(problems(path)) == f"{where(path, 'zzz')}: zzz: unknown key"


# --------------------------------------------------------------------------- types and ranges


@pytest.mark.parametrize(
    "before, after, needle, key, message",
    [
        ("seed: 1", "seed: [1]", "[1]", "seed", "input should be a valid integer"),
        ("channels: 4, layers: 3, nodes: 2}\n  bob", "channels: x, layers: 3, nodes: 2}\n  bob", "x,", "learners.alice.channels",
         "input should be a valid integer, unable to parse string as an integer (got 'x')"),
        ("steps: [W]}", "steps: W}", "W}", "stages.0.steps", "input should be a valid list (got 'W')"),
        ("epochs: 1,", "epochs: 1.5,", "1.5", "stages.0.epochs", "got a number with a fractional part (got 1.5)"),
        ("[A, W, PL, V]", "[A, W, PL, X]", "X]", "stages.1.steps.3", "input should be 'A', 'W', 'PL' or 'V' (got 'X')"),
        ("data: {dataset: digits,", "data: {dataset: 5,", "5,", "data.dataset", "input should be a valid dictionary"),
    ],
)
def test_wrong_types(tmp_path, before, after, needle, key, message):
    assert before in MINI_SPEC
    path = write_spec(tmp_path, MINI_SPEC.replace(before, after, 1))
    line = only(problems(path))
    assert line.startswith(f"{where(path, needle)}: {key}: ")
    assert message in line


@pytest.mark.parametrize(
    "before, after, needle, key, message",
    [
        ("seed: 1", "seed: -1", "-1", "seed", "input should be greater than or equal to 0 (got -1)"),
        ("batch_size: 32", "batch_size: 0", "0}", "data.batch_size", "input should be greater than 0 (got 0)"),
        ("batch_size: 32}", "batch_size: 32, split: {train: 1.5}}", "1.5", "data.split.train",
         "input should be less than or equal to 1 (got 1.5)"),
        ("batch_size: 32}", "batch_size: 32, split: {train: 0.6, val: 0.6}}", "{train", "data.split",
         "train + val must be at most 1, got 0.6 + 0.6"),
        ("{name: derive}", "{name: evaluate, genotype: DARTS_V2, drop_path: 1.0}", "1.0", "stages.2.drop_path",
         "input should be less than 1 (got 1.0)"),
        ("{name: derive}", "{name: evaluate}", "{name: evaluate}", "stages.2", "give exactly one of 'learner'"),
        ("channels: 4, layers: 3, nodes: 2}\n  bob", "channels: 4, layers: 3, nodes: 0}\n  bob", "0}", "learners.alice.nodes",
         "input should be greater than 0 (got 0)"),
        ("alice: {kind: darts, channels: 4", "alice: {kind: pc_darts, channels: 6, partial_channels: 4", "{kind: pc",
         "learners.alice", "channels (6) must be divisible by partial_channels (4)"),
        ("steps: [W]}", "steps: [W, W]}", "{name: warmup", "stages.0", "steps must not repeat"),
    ],
)
def test_out_of_range_values(tmp_path, before, after, needle, key, message):
    assert before in MINI_SPEC
    path = write_spec(tmp_path, MINI_SPEC.replace(before, after, 1))
    line = only(problems(path))
    assert line.startswith(f"{where(path, needle)}: {key}: ")
    assert message in line


def test_too_short_fixed_length_list(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC + "optim: {arch: {betas: [0.5]}}\n")
    assert only(problems(path)) == f"{where(path, '[0.5]')}: optim.arch.betas: too few items: item 1 is missing"


def test_invalid_learner_name_points_at_the_name(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("bob:", "bad name:"))
    line = only(problems(path))
    assert line.startswith(f"{where(path, 'bad name')}: learners.bad name: invalid name: string should match pattern")


def test_missing_required_key(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("name: mini\n", ""))
    assert only(problems(path)) == f"{path}:1:1: name: missing required key"


def test_every_problem_at_once_in_file_order(tmp_path):
    path = write_spec(
        tmp_path,
        MINI_SPEC.replace("seed: 1", "seed: -1").replace("batch_size: 32", "batch_sise: 32").replace("epochs: 2", "epochs: 0"),
    )
    lines = problems(path)
    assert [line.split(": ")[1] for line in lines] == ["seed", "data.batch_sise", "stages.1.epochs"]
    assert [line.split(": ")[0] for line in lines] == [where(path, "-1"), where(path, "batch_sise"), where(path, "0,")]


# --------------------------------------------------------------------------- registry names


@pytest.mark.parametrize(
    "before, after, needle, key, message",
    [
        ("alice: {kind: darts", "alice: {kind: dartz", "dartz", "learners.alice.kind",
         "unknown learner kind 'dartz' (did you mean 'darts'?); known: darts, genotype, p_darts, pc_darts, torchvision"),
        ("alice: {kind: darts, channels: 4, layers: 3, nodes: 2}", "alice: resnet", "resnet", "learners.alice.kind",
         "unknown learner kind 'resnet'; known: darts, genotype, p_darts, pc_darts, torchvision"),
        ("alice: {kind: darts, channels: 4, layers: 3, nodes: 2}", "alice: {channels: 4}", "{channels", "learners.alice",
         "missing 'kind' (one of: darts, genotype, p_darts, pc_darts, torchvision)"),
        ("dataset: digits", "dataset: cifar11", "cifar11", "data.dataset.name",
         "unknown dataset 'cifar11' (did you mean 'cifar10'?); known: cifar10, cifar100, digits, fake, imagenet_folder"),
        ("{name: derive}", "{type: evalute, genotype: DARTS_V2}", "evalute", "stages.2.type",
         "unknown stage type 'evalute' (did you mean 'evaluate'?); known: derive, evaluate, train"),
    ],
)
def test_unknown_registry_names_list_the_known_ones(tmp_path, before, after, needle, key, message):
    assert before in MINI_SPEC
    path = write_spec(tmp_path, MINI_SPEC.replace(before, after, 1))
    assert only(problems(path)) == f"{where(path, needle)}: {key}: {message}"


@pytest.mark.parametrize(
    "extra, needle, key, message",
    [
        ("optim: {weights: {name: sdg}}", "sdg", "optim.weights.name", "unknown optimizer 'sdg' (did you mean 'sgd'?); known: adam, sgd"),
        ("optim: {schedule: {name: cosin}}", "cosin", "optim.schedule.name", "unknown scheduler 'cosin' (did you mean 'cosine'?); known: constant, cosine, linear, step"),
        ("pseudo_labels: {name: sfot}", "sfot", "pseudo_labels.name", "unknown pseudo-labeler 'sfot' (did you mean 'soft'?); known: hard, soft"),
        ("hypergradient: {method: frist_order}", "frist_order", "hypergradient.method",
         "unknown hypergradient method 'frist_order' (did you mean 'first_order'?); known: darts_unrolled, exact, first_order, full_chain"),
    ],
)
def test_unknown_component_names(tmp_path, extra, needle, key, message):
    path = write_spec(tmp_path, MINI_SPEC + extra + "\n")
    assert only(problems(path)) == f"{where(path, needle)}: {key}: {message}"


# --------------------------------------------------------------------------- files


def test_missing_extends_target(tmp_path):
    path = write_spec(tmp_path, "extends: base.yml\nname: x\n")
    assert only(problems(path)) == f"{where(path, 'base.yml')}: extends: no such file: {str(tmp_path / 'base.yml')!r}"


def test_missing_extends_target_in_a_list(tmp_path):
    write_spec(tmp_path, MINI_SPEC, "base.yaml")
    path = write_spec(tmp_path, "extends: [base.yaml, other.yaml]\nname: x\n")
    assert only(problems(path)) == f"{where(path, 'other.yaml')}: extends: no such file: {str(tmp_path / 'other.yaml')!r}"


def test_missing_evaluate_genotype_file(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("{name: derive}", "{name: evaluate, genotype: found/alice.json}"))
    line = only(problems(path))
    assert line.startswith(f"{where(path, 'found/alice.json')}: stages.2.genotype: genotype 'found/alice.json' is neither a named genotype (")
    assert "DARTS_V2" in line and f"(looked for {tmp_path / 'found/alice.json'})" in line
    # a file that exists but holds no genotype is refused before anything runs
    (tmp_path / "found").mkdir()
    (tmp_path / "found/alice.json").write_text("not json")
    line = only(problems(path))
    assert line.startswith(f"{where(path, 'found/alice.json')}: stages.2.genotype: {tmp_path / 'found/alice.json'}: not a valid genotype file")


def test_evaluate_genotype_file_is_relative_to_the_spec(make_spec, tmp_path, monkeypatch):
    import json

    from sgl.registry.spaces.published import DARTS_V2

    write_spec(tmp_path, json.dumps(DARTS_V2.to_json()), "found/alice.json")
    warmup, search, _ = SEARCH
    path = make_spec(stages=[warmup, search, {"name": "evaluate", "genotype": "found/alice.json"}])
    monkeypatch.chdir(tmp_path.parent)
    assert problems(path) == []


# --------------------------------------------------------------------------- extends: errors point into the base


def test_error_in_a_base_points_into_the_base_file(tmp_path):
    base = write_spec(tmp_path, MINI_SPEC.replace("data: {dataset: digits, batch_size: 32}", "optim:\n  weights: {lr: 0.1, momentun: 0.9}"), "sub/base.yaml")
    child = write_spec(tmp_path, "extends: sub/base.yaml\nname: child\nseed: -2\n", "child.yaml")
    assert problems(child) == [
        f"{where(child, '-2')}: seed: input should be greater than or equal to 0 (got -2)",
        f"{where(base, 'momentun')}: optim.weights.momentun: unknown key (did you mean 'momentum'?)",
    ]


def test_syntax_error_in_a_base_points_into_the_base_file(tmp_path):
    base = write_spec(tmp_path, "seed: [1\n", "base.yaml")
    child = write_spec(tmp_path, "extends: base.yaml\nname: child\n", "child.yaml")
    line = only(problems(child))
    # at the end of the base's text, naming where its unclosed '[' opens
    assert line.startswith(f"{base}:1:9: ") and "YAML syntax error" in line and "'[' at line 1, column 7 is never closed" in line


def test_plan_error_from_a_base_points_into_the_base_file(tmp_path):
    base = write_spec(tmp_path, MINI_SPEC.replace("{name: derive}", "{name: evaluate, learner: alise}"), "base.yaml")
    child = write_spec(tmp_path, "extends: base.yaml\nname: child\n", "child.yaml")
    assert only(problems(child)) == f"{where(base, 'alise')}: stages.2.learner: no learner named 'alise' (did you mean 'alice'?)"


# --------------------------------------------------------------------------- overrides


def test_override_of_a_nonexistent_key_points_at_the_override():
    override = "optim.arch.lrr=6e-4"
    assert only(problems(SPECS / "quickstart.yaml", (override,))) == (
        f"<override 1: {override}>: optim.arch.lrr: unknown key (did you mean 'lr'?)"
    )


def test_override_creating_an_unknown_section_points_at_the_override():
    override = "nope.deeper.key=1"
    assert only(problems(SPECS / "quickstart.yaml", (override,))) == f"<override 1: {override}>: nope: unknown key"


def test_override_past_the_end_of_a_list():
    override = "stages.9.epochs=2"
    line = only(problems(SPECS / "quickstart.yaml", (override,)))
    assert line == f"<override 1: {override}>: stages.9: no such item to override: stages has 3 item(s), indexed from 0"


def test_override_through_a_scalar():
    line = only(problems(SPECS / "quickstart.yaml", ("seed.x=1",)))
    assert line.startswith("<override 1: seed.x=1>: seed.x: no such key to override")


def test_override_with_a_bad_value_type_points_at_the_override():
    override = "stages.0.epochs=abc"
    assert only(problems(SPECS / "quickstart.yaml", ("seed=2", override))) == (
        f"<override 2: {override}>: stages.0.epochs: input should be a valid integer, unable to parse string as an integer (got 'abc')"
    )


@pytest.mark.parametrize("override", ["seed", "=3", "extends=base.yaml"])
def test_malformed_overrides(override):
    with pytest.raises(SpecError) as info:
        load_document(SPECS / "quickstart.yaml", [override])
    assert str(info.value).startswith(f"<override 1: {override}>: ")


def test_override_value_syntax_error():
    line = only(problems(SPECS / "quickstart.yaml", ("seed=[1",)))
    assert line.startswith("<override 1: seed=[1>:1:") and "YAML syntax error" in line


def test_spec_error_lists_problems_as_lines(make_spec):
    with pytest.raises(SpecError) as info:
        load_spec(make_spec(seed=-1, data={"batch_size": 0}))
    assert len(info.value.problems) == 2
    assert str(info.value).splitlines() == [str(p) for p in info.value.problems]


def test_override_below_a_component_shorthand_says_to_override_it_whole():
    override = "data.dataset.name=fake"
    line = only(problems(SPECS / "quickstart.yaml", (override,)))
    assert line == (
        f"<override 1: {override}>: data.dataset.name: data.dataset is 'digits', not a mapping: "
        "override it whole, e.g. data.dataset='{name: ..., ...}'"
    )


def test_reading_problems_come_with_every_other_problem(tmp_path):
    path = write_spec(tmp_path, """
        name: dup
        seed: 1
        seed: 2
        learners:
          a: {kind: darts, chanels: 4}
        stages:
          - epochs: 1
            steps: [W]
            tag: !!python/name:os.system ''
    """)
    assert problems(path) == [
        f"{where(path, 'seed', 2)}: seed: duplicate key (first at line 2)",
        f"{where(path, 'chanels')}: learners.a.chanels: unknown key (did you mean 'channels'?)",
        f"{where(path, '!!python')}: stages.0.tag: tag 'tag:yaml.org,2002:python/name:os.system' is not allowed in a spec (plain YAML only)",
    ]
