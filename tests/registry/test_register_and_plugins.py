"""The registry: what `register` insists on, lookups, and plugins that extend the spec."""

from __future__ import annotations

import json
import textwrap
import uuid
from typing import Literal

import pytest
from pydantic import Field

from conftest import DARTS, MINI_SPEC, only, problems, where, write_spec
from sgl import registry
from sgl.engine.plan.compile import compile_spec
from sgl.registry import ComponentConfig, RegistryError, register


# --------------------------------------------------------------------------- register


def test_register_requires_the_discriminator_field(clean_registry):
    class NoKind(ComponentConfig):
        channels: int = 3

    with pytest.raises(RegistryError, match=r"NoKind: a model config must declare `kind: Literal\['nokind'\] = 'nokind'`"):
        register("model", "nokind")(NoKind)
    assert "nokind" not in registry.names("model")


def test_register_requires_the_literal_of_its_own_name(clean_registry):
    class Other(ComponentConfig):
        name: Literal["other"] = "other"

    with pytest.raises(RegistryError, match="`name: Literal\\['mine'\\] = 'mine'`"):
        register("optimizer", "mine")(Other)

    class NotLiteral(ComponentConfig):
        name: str = "mine"

    with pytest.raises(RegistryError):
        register("optimizer", "mine")(NotLiteral)

    class WrongDefault(ComponentConfig):
        name: Literal["mine"] = Field("mine2")  # type: ignore[assignment]

    with pytest.raises(RegistryError):
        register("optimizer", "mine")(WrongDefault)
    assert "mine" not in registry.names("optimizer")


def test_register_checks_the_key_of_its_kind(clean_registry):
    class UsesName(ComponentConfig):  # learners are selected by `kind`, not `name`
        name: Literal["tiny"] = "tiny"

    with pytest.raises(RegistryError, match="`kind: Literal"):
        register("search_space", "tiny")(UsesName)


def test_register_unknown_kind():
    with pytest.raises(RegistryError, match="unknown component kind 'layer'; known: search_space, model, dataset"):
        register("layer", "x")


def test_double_registration_is_an_error(clean_registry):
    @register("scheduler", "step_decay")
    class StepDecay(ComponentConfig):
        name: Literal["step_decay"] = "step_decay"

    assert register("scheduler", "step_decay")(StepDecay) is StepDecay  # the same class again: harmless

    class Impostor(ComponentConfig):
        name: Literal["step_decay"] = "step_decay"

    with pytest.raises(RegistryError, match=f"scheduler 'step_decay' is already registered by {__name__}"):
        register("scheduler", "step_decay")(Impostor)
    assert registry.get("scheduler", "step_decay").config is StepDecay

    class CosineAgain(ComponentConfig):
        name: Literal["cosine"] = "cosine"

    with pytest.raises(RegistryError, match="scheduler 'cosine' is already registered by sgl.registry.optim"):
        register("scheduler", "cosine")(CosineAgain)


def test_registration_bumps_the_version_and_rebuilds_the_spec_model(clean_registry):
    from sgl.engine.specs.models import spec_model

    before, model = registry.version(), spec_model()

    @register("pseudo_labeler", "sharpened")
    class Sharpened(ComponentConfig):
        name: Literal["sharpened"] = "sharpened"

    assert registry.version() > before
    assert spec_model() is not model
    spec = spec_model().model_validate({"name": "t", "stages": [{"name": "derive"}], "pseudo_labels": "sharpened"})
    assert isinstance(spec.pseudo_labels, Sharpened)


def test_get_names_entries():
    assert registry.get("search_space", "darts").config.__name__ == "DartsConfig"
    assert registry.names("scheduler") == sorted(registry.names("scheduler"))
    assert {"darts", "pc_darts", "p_darts"} <= set(registry.names("search_space"))
    assert {e.kind for e in registry.entries()} == set(registry.KINDS)
    assert all(e.kind == "model" for e in registry.entries("model"))
    with pytest.raises(RegistryError, match="unknown optimizer 'sdg'; known: adam, sgd"):
        registry.get("optimizer", "sdg")
    assert registry.get("dataset", "digits").doc.startswith("scikit-learn's 1,797")


def test_built_in_configs_forbid_unknown_keys():
    from pydantic import ValidationError

    for entry in registry.entries():
        key = registry.KINDS[entry.kind].key
        with pytest.raises(ValidationError):
            entry.config.model_validate({key: entry.name, "no_such_option": 1})


# --------------------------------------------------------------------------- plugins


PLUGIN = '''
"""A third-party plugin: a fixed MLP learner and a tiny search space."""
from typing import Literal

from pydantic import Field, PositiveInt

from sgl.registry import register
from sgl.registry.models import ModelConfig
from sgl.registry.spaces import SearchSpaceConfig


@register("model", "mlp")
class MLPConfig(ModelConfig):
    """A two-layer perceptron."""

    kind: Literal["mlp"] = "mlp"
    hidden: PositiveInt = Field(32, description="Hidden units.")


@register("search_space", "tiny_space")
class TinySpaceConfig(SearchSpaceConfig):
    """A one-cell search space."""

    kind: Literal["tiny_space"] = "tiny_space"
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch, clean_registry):
    """The name of a fresh plugin module on sys.path (its registrations are undone afterwards)."""
    name = f"sgl_test_plugin_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / f"{name}.py").write_text(PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    return name


@pytest.fixture
def installed_plugin(plugin, monkeypatch):
    """``plugin``, installed as an ``sgl.plugins`` entry point: what a spec's `plugins:` may name."""
    from sgl.registry import core

    monkeypatch.setattr(core.metadata, "entry_points", lambda group: [_EntryPoint(plugin, "tiny")] if group == core.PLUGIN_GROUP else [])
    return plugin


#: The stages ``plugin_spec`` writes, for the tests that build their spec as data.
PLUGGED_STAGES = [{"name": "search", "epochs": 2, "steps": ["A", "W", "PL", "V"]}, {"name": "derive"}]


def plugin_spec(module: str, learners: str) -> str:
    return f"""
name: plugged
plugins: [{module}]
data: {{dataset: digits, batch_size: 32}}
learners:
{textwrap.indent(textwrap.dedent(learners).strip(), '  ')}
stages:
  - {{name: search, epochs: 2, steps: [A, W, PL, V]}}
  - {{name: derive}}
"""


def test_plugin_learner_kind_validates_and_plans(make_spec, installed_plugin):
    plugin = installed_plugin
    assert "mlp" not in registry.names("model")
    learners = only(alice={"kind": "tiny_space", "channels": 4}, m={"kind": "mlp", "hidden": 8})
    compiled = compile_spec(make_spec(plugins=[plugin], learners=learners, stages=PLUGGED_STAGES))
    assert "mlp" in registry.names("model") and "tiny_space" in registry.names("search_space")
    assert type(compiled.spec.learners["m"]).__name__ == "MLPConfig" and compiled.spec.learners["m"].hidden == 8
    assert compiled.plan.learners["alice"].searchable and not compiled.plan.learners["m"].searchable
    assert compiled.plan.stages[0].order[0] == "A[alice]"


def test_plugin_components_get_positioned_errors_and_suggestions(tmp_path, installed_plugin):
    plugin = installed_plugin
    path = write_spec(tmp_path, plugin_spec(plugin, "alice: {kind: darts, channels: 4, layers: 3, nodes: 2}\nm: {kind: mlp, hiden: 8}\nn: {kind: mpl}"))
    assert problems(path) == [
        f"{where(path, 'hiden')}: learners.m.hiden: unknown key (did you mean 'hidden'?)",
        f"{where(path, 'mpl')}: learners.n.kind: unknown learner kind 'mpl' (did you mean 'mlp'?); "
        "known: darts, genotype, mlp, p_darts, pc_darts, tiny_space, torchvision",
    ]


def test_plugin_components_appear_in_the_schema(plugin):
    from sgl.engine.specs.schema import schema_text

    assert '"mlp"' not in schema_text()
    registry.load_plugins([plugin])
    schema = json.loads(schema_text())
    assert "MLPConfig" in schema["$defs"] and "TinySpaceConfig" in schema["$defs"]
    assert schema["$defs"]["MLPConfig"]["properties"]["hidden"]["description"] == "Hidden units."


def test_without_the_plugin_the_kind_is_unknown(tmp_path, plugin):
    path = write_spec(tmp_path, plugin_spec(plugin, "m: {kind: mlp}").replace(f"plugins: [{plugin}]\n", ""))
    (line,) = problems(path)
    assert line.startswith(f"{where(path, 'mlp')}: learners.m.kind: unknown learner kind 'mlp'")


def test_plugin_not_installed_is_a_positioned_error(tmp_path, clean_registry):
    path = write_spec(tmp_path, MINI_SPEC + "plugins:\n  - sgl_test_no_such_module\n")
    assert problems(path) == [
        f"{where(path, 'sgl_test_no_such_module')}: plugins.0: no installed sgl.plugins entry point "
        "'sgl_test_no_such_module' (installed: none); a spec only names installed plugins, "
        "to import any other module use `sgl --plugin MODULE`"
    ]


class _EntryPoint:
    def __init__(self, value: str, name: str | None = None):
        self.value = value
        self.name = name or value

    def load(self):
        import importlib

        return importlib.import_module(self.value)


def test_entry_point_plugins_register_without_a_plugins_key(make_spec, monkeypatch, plugin):
    from sgl.registry import core

    monkeypatch.setattr(core.metadata, "entry_points", lambda group: [_EntryPoint(plugin)] if group == core.PLUGIN_GROUP else [])
    path = make_spec(learners=only(a=DARTS, m={"kind": "mlp"}), stages=PLUGGED_STAGES)
    assert problems(path) == []
    assert "mlp" in registry.names("model")


def test_broken_entry_point_is_an_input_error_not_a_traceback(make_spec, monkeypatch, clean_registry):
    from sgl.registry import core

    monkeypatch.setattr(core.metadata, "entry_points", lambda group: [_EntryPoint("sgl_test_missing_entry_point")])
    (line,) = problems(make_spec())
    assert line.startswith("cannot load the installed sgl.plugins entry points: ModuleNotFoundError(")
