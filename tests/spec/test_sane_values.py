"""Values that validate by type but make no sense are refused at their position.

NaN and ±inf in any float (every float field of the spec and of every registered component is
checked), Adam's betas and SGD's momentum outside [0, 1), a schedule ending above its optimizer's
learning rate, and absurd sizes (each field's bound is in its description).
"""

from __future__ import annotations

import math
import types
import typing
from typing import Annotated, Any, Union

import pytest
from pydantic import BaseModel, ValidationError

from conftest import MINI_SPEC, SEARCH, only, problems, where, write_spec
from sgl import registry
from sgl.engine.specs import models as spec_models
from sgl.engine.specs.load import load_spec

# --------------------------------------------------------------------------- every float field


def _models(annotation: Any, seen: dict[str, type[BaseModel]]) -> None:
    """Every pydantic model reachable from ``annotation``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation.__qualname__ in seen:
            return
        seen[annotation.__qualname__] = annotation
        for field in annotation.model_fields.values():
            _models(field.annotation, seen)
        return
    for arg in typing.get_args(annotation):
        _models(arg, seen)


def _float_slots(annotation: Any) -> list[Any]:
    """Values of ``annotation``'s shape with one float slot set to the placeholder ``_SLOT``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is float:
        return [_SLOT]
    if origin is Annotated:
        return _float_slots(args[0])
    if origin is Union or origin is types.UnionType:
        return [slot for arg in args for slot in _float_slots(arg)]
    if origin is tuple:
        out = []
        for i, arg in enumerate(args):
            for slot in _float_slots(arg):
                out.append(tuple(slot if j == i else 0.5 for j in range(len(args))))
        return out
    if origin is list:
        return [[slot] for slot in _float_slots(args[0])]
    if origin is dict:
        return [{"k": slot} for slot in _float_slots(args[1])]
    return []


_SLOT = object()


def _fill(value: Any, number: float) -> Any:
    if value is _SLOT:
        return number
    if isinstance(value, tuple):
        return tuple(_fill(v, number) for v in value)
    if isinstance(value, list):
        return [_fill(v, number) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, number) for k, v in value.items()}
    return value


def _float_fields() -> list[tuple[type[BaseModel], str, Any]]:
    seen: dict[str, type[BaseModel]] = {}
    _models(spec_models.spec_model(), seen)
    for entry in registry.entries():
        _models(entry.config, seen)
    cases = []
    for model in seen.values():
        for name, field in model.model_fields.items():
            for slot in _float_slots(field.annotation):
                cases.append((model, name, slot))
    return cases


FLOAT_FIELDS = _float_fields()


def _tag(model: type[BaseModel]) -> dict[str, Any]:
    """The discriminator a component config needs to select itself."""
    for key in ("kind", "name", "method"):
        field = model.model_fields.get(key)
        if field is not None and typing.get_origin(field.annotation) is typing.Literal:
            return {key: field.default}
    return {}


def test_the_walk_finds_the_float_fields_it_should():
    names = {f"{model.__name__}.{name}" for model, name, _ in FLOAT_FIELDS}
    for expected in (
        "SGDConfig.lr", "SGDConfig.momentum", "SGDConfig.weight_decay", "AdamConfig.betas", "CosineConfig.min_lr",
        "LossWeights.labeled", "LossWeights.pseudo", "SoftConfig.temperature", "HardConfig.threshold",
        "SplitSpec.train", "SplitSpec.val", "DartsUnrolledConfig.r", "FullChainConfig.r", "PDartsPhase.skip_dropout",
        "GenotypeNetConfig.drop_path", "OptimSpec.grad_clip", "EvaluateStage_darts.grad_clip", "EvaluateStage_darts.drop_path",
        "EvaluateStage_darts.label_smoothing", "EvaluateStage_darts.auxiliary_weight", "DartsConfig.init_scale",
        "PDartsConfig.skip_dropout_decay", "DigitsConfig.test_fraction", "ImageNetFolderConfig.subset",
    ):
        assert expected in names, expected
    assert len(FLOAT_FIELDS) >= 30


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("model, name, slot", FLOAT_FIELDS, ids=[f"{m.__name__}.{n}-{i}" for i, (m, n, _) in enumerate(FLOAT_FIELDS)])
def test_every_float_field_refuses_non_finite_numbers(model, name, slot, number):
    with pytest.raises(ValidationError) as info:
        model.model_validate({**_tag(model), name: _fill(slot, number)})
    assert any(e["loc"][0] == name and e["type"] == "finite_number" for e in info.value.errors()), info.value.errors()


def test_nan_in_a_spec_is_reported_at_its_position(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC + "optim:\n  weights: {lr: .nan}\n  arch: {betas: [0.5, .inf]}\nloss_weights: {pseudo: -.inf}\n")
    assert problems(path) == [
        f"{where(path, '.nan')}: optim.weights.lr: input should be a finite number (got nan)",
        f"{where(path, '.inf')}: optim.arch.betas.1: input should be a finite number (got inf)",
        f"{where(path, '-.inf')}: loss_weights.pseudo: input should be a finite number (got -inf)",
    ]


def test_a_float_too_large_for_a_float_is_refused(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC + "optim: {weights: {lr: 1e999}}\n")  # YAML reads it as inf
    (line,) = problems(path)
    assert line.startswith(f"{where(path, '1e999')}: optim.weights.lr: input should be a finite number")


def test_nan_inside_torchvision_options_is_refused(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("bob: {kind: darts, channels: 4, layers: 3, nodes: 2}", "bob: {kind: torchvision, options: {dropout: [0.1, .nan]}}"))
    assert problems(path) == [f"{where(path, '{dropout')}: learners.bob.options: options.dropout.1 is not a finite number"]


# --------------------------------------------------------------------------- betas, momentum, min_lr


@pytest.mark.parametrize("betas, bad", [("[1.0, 0.999]", "0"), ("[-0.1, 0.9]", "0"), ("[0.5, 1.5]", "1"), ("[0.9, 1]", "1")])
def test_adam_betas_outside_zero_one_are_refused(tmp_path, betas, bad):
    path = write_spec(tmp_path, MINI_SPEC + f"optim: {{arch: {{betas: {betas}}}}}\n")
    (line,) = problems(path)
    assert f": optim.arch.betas.{bad}: input should be" in line
    offset = 1 if bad == "0" else betas.index(", ") + 2
    assert line.startswith(where(path, betas, offset=offset) + ":")


def test_adam_betas_at_the_edges_are_fine(make_spec):
    assert problems(make_spec(optim={"arch": {"betas": [0, 0.9999]}}), plan=False) == []


@pytest.mark.parametrize("momentum", ["1.0", "-0.1", "7"])
def test_momentum_outside_zero_one_is_refused(tmp_path, momentum):
    path = write_spec(tmp_path, MINI_SPEC + f"optim: {{weights: {{momentum: {momentum}}}}}\n")
    (line,) = problems(path)
    assert line.startswith(f"{where(path, momentum)}: optim.weights.momentum: input should be")


def test_min_lr_above_the_lr_points_at_min_lr(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC + "optim:\n  weights: {lr: 0.05}\n  schedule: {name: cosine, min_lr: 0.1}\n")
    assert problems(path) == [
        f"{where(path, '0.1')}: optim.schedule.min_lr: min_lr (0.1) is above optim.weights.lr (0.05): "
        "the schedule would raise the learning rate; set min_lr to at most 0.05"
    ]


def test_a_default_min_lr_above_a_small_lr_is_refused_and_says_it_is_the_default(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC + "optim:\n  weights: {lr: 0.0005}\n")
    assert problems(path) == [
        # no schedule in the file: at the deepest part of the path it has, optim's value
        f"{where(path, 'weights')}: optim.schedule.min_lr: min_lr (0.001, the default) is above optim.weights.lr (0.0005): "
        "the schedule would raise the learning rate; set min_lr to at most 0.0005"
    ]


def test_min_lr_equal_to_lr_and_constant_schedules_are_fine(make_spec):
    assert problems(make_spec(optim={"weights": {"lr": 0.001}, "schedule": {"min_lr": 0.001}}), plan=False) == []
    assert problems(make_spec(optim={"weights": {"lr": 0.0001}, "schedule": "constant"}), plan=False) == []


def test_evaluate_stage_min_lr_above_its_optimizer_lr(tmp_path):
    text = MINI_SPEC.replace(
        "  - {name: derive}\n",
        "  - {name: derive}\n  - name: evaluate\n    learner: alice\n    optimizer: {lr: 0.01}\n    schedule: {min_lr: 0.02}\n",
    )
    path = write_spec(tmp_path, text)
    assert problems(path) == [
        f"{where(path, '0.02')}: stages.3.schedule.min_lr: min_lr (0.02) is above this stage's optimizer.lr (0.01): "
        "the schedule would raise the learning rate; set min_lr to at most 0.01"
    ]


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    "before, after, key, value",
    [
        ("alice: {kind: darts, channels: 4,", "alice: {kind: darts, channels: 1000000000,", "learners.alice.channels", "1000000000"),
        ("layers: 3, nodes: 2}\n  bob", "layers: 3, nodes: 1000000000}\n  bob", "learners.alice.nodes", "1000000000"),
        ("alice: {kind: darts, channels: 4, layers: 3", "alice: {kind: darts, channels: 4, layers: 101", "learners.alice.layers", "101"),
        ("alice: {kind: darts,", "alice: {kind: darts, stem_multiplier: 17,", "learners.alice.stem_multiplier", "17"),
        ("alice: {kind: darts,", "alice: {kind: pc_darts, partial_channels: 8192,", "learners.alice.partial_channels", "8192"),
        ("{name: warmup, epochs: 1,", "{name: warmup, epochs: 9223372036854775808,", "stages.0.epochs", "9223372036854775808"),
        ("{name: search, epochs: 2,", "{name: search, epochs: 2, arch_start: 100001,", "stages.1.arch_start", "100001"),
        ("batch_size: 32}", "batch_size: 65537}", "data.batch_size", "65537"),
        ("batch_size: 32}", "batch_size: 32, eval_batch_size: 1000000}", "data.eval_batch_size", "1000000"),
        ("batch_size: 32}", "batch_size: 32, num_workers: 100000}", "data.num_workers", "100000"),
        ("dataset: digits,", "dataset: {name: digits, size: 100000},", "data.dataset.size", "100000"),
        ("dataset: digits,", "dataset: {name: fake, image_size: 100000},", "data.dataset.image_size", "100000"),
        ("dataset: digits,", "dataset: {name: fake, train_size: 1000000000},", "data.dataset.train_size", "1000000000"),
        ("dataset: digits,", "dataset: {name: imagenet_folder, image_size: 5000},", "data.dataset.image_size", "5000"),
        ("seed: 1", "seed: 18446744073709551616", "seed", "18446744073709551616"),
        ("seed: 1", "seed: 1\nrun: {threads: 100000}", "run.threads", "100000"),
    ],
)
def test_absurd_sizes_are_refused_at_their_position(tmp_path, before, after, key, value):
    assert before in MINI_SPEC
    path = write_spec(tmp_path, MINI_SPEC.replace(before, after, 1))
    (line,) = problems(path, plan=False)
    assert line.startswith(f"{where(path, value)}: {key}: input should be less than or equal to "), line


@pytest.mark.parametrize(
    "size, key",
    [
        ({"epochs": 100001}, "stages.3.epochs"),
        ({"channels": 4097}, "stages.3.channels"),
        ({"layers": 1000}, "stages.3.layers"),
        ({"batch_size": 100000}, "stages.3.batch_size"),
        ({"cutout": 5000}, "stages.3.cutout"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else value,
)
def test_absurd_evaluate_sizes_are_refused(make_spec, size, key):
    path = make_spec(stages=[*SEARCH, {"name": "evaluate", "learner": "alice", **size}])
    (line,) = problems(path, plan=False)
    assert f": {key}: input should be less than or equal to " in line


def test_absurd_genotype_network_and_p_darts_sizes_are_refused(make_spec):
    path = make_spec(learners={"bob": only(kind="genotype", channels=5000, layers=500)})
    assert [line.split(": ", 2)[1] for line in problems(path, plan=False)] == ["learners.bob.channels", "learners.bob.layers"]
    path = make_spec(learners={"bob": only(kind="p_darts", phases=[{"layers": 1000, "ops": 8}])})
    assert [line.split(": ", 2)[1] for line in problems(path, plan=False)] == ["learners.bob.phases.0.layers"]


def test_the_largest_allowed_sizes_still_validate(make_spec):
    warmup, search, derive = SEARCH
    path = make_spec(seed=9223372036854775807, run={"threads": 1024}, data={"batch_size": 65536, "num_workers": 256},
                     learners={"alice": {"channels": 4096, "layers": 100, "nodes": 16, "stem_multiplier": 16}},
                     stages=[{**warmup, "epochs": 100_000}, search, derive])
    spec, _ = load_spec(path)
    assert spec.learners["alice"].channels == 4096 and spec.stages[0].epochs == 100_000 and spec.run.threads == 1024


def test_every_bounded_size_documents_its_bound():
    """A bound the user cannot read is a surprise: each le= bound appears in the field's description."""
    seen: dict[str, type[BaseModel]] = {}
    _models(spec_models.spec_model(), seen)
    for entry in registry.entries():
        _models(entry.config, seen)
    checked = 0
    for model in seen.values():
        for name, field in model.model_fields.items():
            for item in field.metadata:
                bound = getattr(item, "le", None)
                if isinstance(bound, int) and not isinstance(bound, bool) and bound > 1:
                    described = field.description or ""
                    spellings = {str(bound), f"{bound:,}", "2^63 - 1" if bound == 2**63 - 1 else str(bound)}
                    assert any(s in described for s in spellings), f"{model.__name__}.{name}: le={bound} not in {described!r}"
                    checked += 1
    assert checked >= 20


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "before, after, key, message",
    [
        ("seed: 1", 'seed: 1\nrun: {output: "runs\\0x"}', "run.output", "a path cannot contain a NUL character"),
        ("dataset: digits,", 'dataset: {name: cifar10, root: "data\\0"},', "data.dataset.root", "a path cannot contain a NUL character"),
        ("{name: derive}", "{name: evaluate, genotype: " + "g" * 300 + ".json}", "stages.2.genotype", "a file or folder name cannot be longer than 255 bytes"),
        ("{name: derive}", "{name: evaluate, genotype: " + "a/" * 2100 + "g.json}", "stages.2.genotype", "a path cannot be longer than 4096 bytes"),
        ("bob: {kind: darts, channels: 4, layers: 3, nodes: 2}", 'bob: {kind: genotype, genotype: "x\\0"}', "learners.bob.genotype", "a path cannot contain a NUL character"),
    ],
)
def test_paths_no_file_system_holds_are_refused(tmp_path, before, after, key, message):
    """Checking such a path later (is_file, mkdir) raises instead of answering: refuse it while validating."""
    path = write_spec(tmp_path, MINI_SPEC.replace(before, after, 1))
    (line,) = problems(path)
    assert f": {key}: {message}" in line
