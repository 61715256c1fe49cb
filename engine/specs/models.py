"""The Spec model: the static sections (``sections.py``) with the registry's components.

Sections that name registry components (learners, dataset, optimizers, ...) are discriminated
unions over what the registry holds when ``spec_model()`` is called, so plugins extend the spec and
its JSON schema without touching this file. Each such union is marked with the kinds it holds
(``ComponentKinds``), which is how a validation error says "unknown optimizer".
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, Discriminator, Field, PositiveFloat, Tag, model_validator

from sgl import registry

from .sections import (
    NAME_MAX,
    NAME_PATTERN,
    SPEC_VERSION,
    DataSpecBase,
    DeriveStage,
    EvaluateStageBase,
    Expectation,
    LossWeights,
    RunSpec,
    Section,
    TrainStage,
    _min_lr_at_most_lr,
    stage_tag,
)
from .study import StudySpec


@dataclass(frozen=True)
class ComponentKinds:
    """Marks a spec field whose value is a registry component of one of these kinds."""

    kinds: tuple[str, ...]


def _shorthand(key: str, default: str | None):
    """Let `dataset: digits` stand for `dataset: {name: digits}`, and `{lr: 0.1}` for the default component."""

    def expand(value: Any) -> Any:
        if isinstance(value, str):
            return {key: value}
        if isinstance(value, dict) and key not in value and default is not None:
            return {key: default, **value}
        return value

    return BeforeValidator(expand)


def component(kind: str, *also: str, default: str | None = None) -> Any:
    """The discriminated union of the registered configs of ``kind`` (and of the ``also`` kinds).

    With a ``default``, a mapping that does not name its component means that default one.
    """
    key = registry.KINDS[kind].key
    marker = ComponentKinds((kind, *also))
    configs = tuple(e.config for k in (kind, *also) for e in registry.entries(k))
    if len(configs) == 1:
        # A one-member union would not be a union; a callable discriminator keeps errors uniform.
        (only,) = configs
        name = registry.entries(kind)[0].name
        return Annotated[
            Union[Annotated[only, Tag(name)]],  # noqa: UP007
            Discriminator(lambda v: v.get(key) if isinstance(v, dict) else getattr(v, key, None)),
            _shorthand(key, default),
            marker,
        ]
    return Annotated[Union[configs], Field(discriminator=key), _shorthand(key, default), marker]  # noqa: UP007


def _default(kind: str, name: str, description: str, **values: Any) -> Any:
    config = registry.get(kind, name).config
    return Field(default_factory=lambda: config(**values), description=f"{description} Default: {name}.")


def _evaluate_stage(entry: Any, optimizer: Any, scheduler: Any) -> type[BaseModel]:
    """The evaluate stage of one protocol: the stage's own fields, the protocol's, and its optimizer
    and schedule widened to every registered component (with the protocol's defaults)."""
    protocol = entry.config
    fields = protocol.model_fields
    namespace = {
        "__annotations__": {"optimizer": optimizer, "schedule": scheduler},
        "__doc__": protocol.__doc__,
        "__module__": __name__,
        "optimizer": Field(default_factory=fields["optimizer"].default_factory, description=fields["optimizer"].description),
        "schedule": Field(default_factory=fields["schedule"].default_factory, description=fields["schedule"].description),
    }
    return type(f"EvaluateStage_{entry.name}", (EvaluateStageBase, protocol), namespace)


def _optim_spec(weights_optimizer: Any, arch_optimizer: Any, scheduler_union: Any) -> type[BaseModel]:
    class OptimSpec(Section):
        weights: weights_optimizer = _default("optimizer", "sgd", "Optimizer of the network weights W and V.")
        arch: arch_optimizer = _default("optimizer", "adam", "Optimizer of the architecture weights A.")
        schedule: scheduler_union = _default("scheduler", "cosine", "Per-epoch schedule of the weights' learning rate.")
        grad_clip: PositiveFloat | None = Field(5.0, description="Clip each network's gradient norm (null: off).")
        arch_grad_clip: PositiveFloat | Literal["grad_clip"] | None = Field(
            None,
            description="Clip each learner's architecture gradient (α, β) to this norm before the architecture "
            "optimizer, after the cross-process mean (the SGL authors' code: 5; DARTS and PC-DARTS: none). "
            "'grad_clip': the same value as grad_clip. Null: off.",
        )

        @model_validator(mode="after")
        def _min_lr(self) -> "OptimSpec":
            _min_lr_at_most_lr(self.weights, self.schedule, "optim.weights.lr")
            return self

    return OptimSpec


def _stage_union(weights_optimizer: Any, scheduler_union: Any) -> Any:
    """A stage: train, derive, or evaluate with one of the registered protocols."""
    evaluate_members = [
        Annotated[_evaluate_stage(entry, weights_optimizer, scheduler_union), Tag(f"evaluate:{entry.name}")]
        for entry in registry.entries("protocol")
    ]
    return Annotated[
        Union[  # noqa: UP007
            (Annotated[TrainStage, Tag("train")], Annotated[DeriveStage, Tag("derive")], *evaluate_members)
        ],
        Discriminator(stage_tag),
    ]


def _build_spec_model() -> type[BaseModel]:
    # A mapping that does not name its component means the default one (e.g. `weights: {lr: 0.1}`).
    dataset_union = component("dataset", default="digits")
    weights_optimizer = component("optimizer", default="sgd")
    scheduler_union = component("scheduler", default="cosine")
    learner_union = component("search_space", "model")
    labeler_union = component("pseudo_labeler", default="soft")
    hypergradient_union = component("hypergradient", default="first_order")
    OptimSpec = _optim_spec(weights_optimizer, component("optimizer", default="adam"), scheduler_union)  # noqa: N806
    Stage = _stage_union(weights_optimizer, scheduler_union)  # noqa: N806

    class DataSpec(DataSpecBase):
        dataset: dataset_union = _default("dataset", "digits", "The dataset (a name, or a mapping with its options).")

    class Spec(Section):
        """An sgl recipe: the learners, their data, the stages and how to run them."""

        version: Literal[1] = Field(SPEC_VERSION, description="Spec format version.")
        name: str = Field(pattern=NAME_PATTERN, max_length=NAME_MAX, description="Name of the recipe; runs go under <output>/<name>/.")
        description: str = Field("", description="Free text shown by `sgl plan`.")
        seed: int = Field(
            0, ge=0, le=2**63 - 1,
            description="Run seed (0 to 2^63 - 1, torch's range); each learner's seed is derived from it and its name.",
        )
        deterministic: bool | None = Field(
            None,
            description="Deterministic algorithms. Null: on the CPU (where a rerun is then bit-identical), off on a "
            "GPU, which runs cuDNN's fastest kernels (cudnn.benchmark) instead: deterministic GPU kernels are often "
            "10-30% slower and a GPU rerun still differs in the last bits from another GPU's.",
        )
        plugins: list[str] = Field(
            default_factory=list,
            description="Installed `sgl.plugins` entry points this spec needs (entry-point name or module), checked "
            "to be present; a spec never imports anything. Other modules: `sgl --plugin MODULE`.",
        )
        data: DataSpec = Field(default_factory=DataSpec, description="Dataset and splits.")
        learners: dict[Annotated[str, Field(pattern=NAME_PATTERN, max_length=NAME_MAX)], learner_union] = Field(
            default_factory=dict, description="The group: learner name -> searchable space or fixed model."
        )
        optim: OptimSpec = Field(default_factory=OptimSpec, description="Optimizers and schedule.")
        loss_weights: LossWeights = Field(default_factory=LossWeights, description="Weights of the stage-2 losses.")
        pseudo_labels: labeler_union = _default("pseudo_labeler", "soft", "How peers' predictions become targets.")
        hypergradient: hypergradient_union = _default("hypergradient", "first_order", "Architecture-gradient method.")
        stages: list[Stage] = Field(min_length=1, description="Stages run in order.")
        expect: list[Expectation] = Field(
            default_factory=list,
            description="What the run must produce, checked at its end and by `sgl report` (a failed one exits 1).",
        )
        run: RunSpec = Field(default_factory=RunSpec, description="Where and how to run.")
        study: StudySpec | None = Field(
            None, description="Seeds × variants of this spec, run by `sgl study` as ordinary runs and tabulated by "
            "`sgl report STUDY_DIR`; `sgl run` ignores it (each trial is such a run).",
        )

    return Spec


_cache: "tuple[int, type[BaseModel]] | None" = None


def spec_model() -> type[BaseModel]:
    """The Spec model for the components registered now (rebuilt when plugins add some)."""
    global _cache
    if _cache is None or _cache[0] != registry.version():
        _cache = (registry.version(), _build_spec_model())
    return _cache[1]
