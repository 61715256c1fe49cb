"""The catalogue's mechanism: components registered by kind and name, each with its config model.

A component *is* its pydantic config class: the class validates the spec section that names it,
documents its fields (so `sgl schema` and `sgl components` come from it) and builds the runtime
object through its ``build`` method, which imports torch lazily. Keeping registration light means
`sgl validate` and `sgl --help` never pay for importing torch.
"""

from __future__ import annotations

import importlib
import typing
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePath
from typing import Callable, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict

@dataclass(frozen=True)
class Kind:
    """A kind of component: the key of a spec section that names one, and how messages speak of it."""

    key: str
    noun: str


#: The one table of component kinds: spec models, the schema, validation errors and `sgl components`
#: all read it (a spec section says which kind it holds; see ``spec.models.component``).
KINDS: dict[str, Kind] = {
    "search_space": Kind("kind", "learner kind"),       # learners.<name> (searchable learners)
    "model": Kind("kind", "learner kind"),              # learners.<name> (fixed learners)
    "dataset": Kind("name", "dataset"),                 # data.dataset
    "optimizer": Kind("name", "optimizer"),             # optim.weights, optim.arch, an evaluate stage's optimizer
    "scheduler": Kind("name", "scheduler"),             # optim.schedule, an evaluate stage's schedule
    "pseudo_labeler": Kind("name", "pseudo-labeler"),   # pseudo_labels
    "hypergradient": Kind("method", "hypergradient method"),  # hypergradient
    "protocol": Kind("protocol", "evaluation protocol"),      # stages[i] of type evaluate
}

PLUGIN_GROUP = "sgl.plugins"

#: Generous bounds on network sizes shared by search spaces, fixed networks and evaluation: they
#: refuse nonsense (channels of 10^9) before it becomes an allocation failure or an overflow.
MAX_CHANNELS = 4096
MAX_LAYERS = 100
MAX_EPOCHS = 100_000
MAX_BATCH = 65_536


def _plausible_path(value: typing.Any) -> typing.Any:
    """Refuse paths no file system holds: checking them later (``is_file``) would raise, not answer."""
    text = str(value)
    if "\x00" in text:
        raise ValueError("a path cannot contain a NUL character")
    if len(text.encode("utf-8", "surrogateescape")) > 4096:
        raise ValueError("a path cannot be longer than 4096 bytes")
    for part in PurePath(text).parts:
        if len(part.encode("utf-8", "surrogateescape")) > 255:
            raise ValueError(f"a file or folder name cannot be longer than 255 bytes ({part[:24]!r}... is {len(part)})")
    return value


#: A path (or a name that may be one, like a genotype's) that a file system could hold.
PathField = typing.Annotated[Path, AfterValidator(_plausible_path)]
PathText = typing.Annotated[str, AfterValidator(_plausible_path)]


class RegistryError(LookupError):
    """A name that is not in the catalogue, or a component registered twice."""


class ComponentConfig(BaseModel):
    """Base of every component's config: unknown keys are errors, never silently dropped; no float
    field (a plugin's included) accepts NaN or ±inf, which would validate and then poison a run."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LearnerConfig(ComponentConfig):
    """Base of a learner's config: a search space (searchable: it owns an architecture and gets
    A-steps) or a fixed model. ``build(task)`` makes the search space or the network."""

    #: Learners of this kind own an architecture and get A-steps.
    searchable: typing.ClassVar[bool] = False

    def build(self, task: typing.Any) -> typing.Any:
        raise NotImplementedError

    def growing_phases(self) -> int:
        """Phases in which the learner grows (P-DARTS); each needs its own stage(s) in the spec."""
        return 1

    def activation_bytes(self, task: typing.Any, batch: int) -> int:
        """About how much memory one training pass of a batch keeps for its backward (0: unknown)."""
        return 0

    def plan_issues(self) -> list[tuple[tuple[typing.Any, ...], str]]:
        """What makes this learner unfit to train although every field is valid on its own:
        ``(key path within the learner's section, message)`` pairs; the planner refuses them."""
        return []


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    config: type[ComponentConfig]
    module: str

    @property
    def doc(self) -> str:
        return (self.config.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")


_ENTRIES: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
_version = 0  # bumped on every registration so cached spec models know to rebuild

C = TypeVar("C", bound=type[ComponentConfig])


def register(kind: str, name: str) -> Callable[[C], C]:
    """Class decorator: register a config class as component ``name`` of ``kind``.

    The class must declare its discriminator field (``KINDS[kind].key``) as ``Literal[name]`` with that
    default, so a spec section selects it by name and errors speak of this variant only.
    """
    if kind not in KINDS:
        raise RegistryError(f"unknown component kind {kind!r}; known: {', '.join(KINDS)}")

    def decorate(cls: C) -> C:
        key = KINDS[kind].key
        field = cls.model_fields.get(key)
        if field is None or typing.get_args(field.annotation) != (name,) or field.default != name:
            raise RegistryError(
                f"{cls.__qualname__}: a {kind} config must declare "
                f"`{key}: Literal[{name!r}] = {name!r}`"
            )
        existing = _ENTRIES[kind].get(name)
        if existing is not None and existing.config is not cls:
            raise RegistryError(f"{kind} {name!r} is already registered by {existing.module}")
        global _version
        _ENTRIES[kind][name] = Entry(kind, name, cls, cls.__module__)
        _version += 1
        return cls

    return decorate


def get(kind: str, name: str) -> Entry:
    try:
        return _ENTRIES[kind][name]
    except KeyError:
        known = ", ".join(sorted(_ENTRIES.get(kind, {}))) or "none"
        raise RegistryError(f"unknown {kind} {name!r}; known: {known}") from None


def names(kind: str) -> list[str]:
    return sorted(_ENTRIES[kind])


def entries(kind: str | None = None) -> list[Entry]:
    kinds = [kind] if kind else list(KINDS)
    return [_ENTRIES[k][n] for k in kinds for n in sorted(_ENTRIES[k])]


def version() -> int:
    return _version


_loaded_plugins: set[str] = set()


def installed_plugins() -> list[tuple[str, str]]:
    """(name, value) of every installed ``sgl.plugins`` entry point: the plugins a spec may name."""
    return [(ep.name, ep.value) for ep in metadata.entry_points(group=PLUGIN_GROUP)]


def plugin_installed(name: str) -> bool:
    """Whether ``name`` is an installed entry point's name, value or module, or a module imported
    explicitly (``sgl --plugin``). A spec only names plugins; it never chooses what is imported."""
    if name in _loaded_plugins:
        return True
    return any(name in (ep_name, value, value.split(":", 1)[0].strip()) for ep_name, value in installed_plugins())


def load_plugins(modules: typing.Iterable[str] = ()) -> list[str]:
    """Import third-party components: the ``sgl.plugins`` entry points, and the given modules.

    ``modules`` is for the caller's own code (``sgl --plugin``, a Python script), never for names
    read from a spec or a run directory: importing a module runs it. Nothing else is imported
    implicitly. Returns the modules newly imported.
    """
    loaded = []
    for ep in metadata.entry_points(group=PLUGIN_GROUP):
        if ep.value not in _loaded_plugins:
            ep.load()
            _loaded_plugins.add(ep.value)
            loaded.append(ep.value)
    for module in modules:
        if import_plugin(module):
            loaded.append(module)
    return loaded


def import_plugin(module: str) -> bool:
    """Import one module the caller chose (``sgl --plugin``); True when newly imported."""
    if module in _loaded_plugins:
        return False
    importlib.import_module(module)
    _loaded_plugins.add(module)
    return True
