"""sgl.registry: the catalogue of components a spec can name.

Importing it registers the built-in components (their config models only; torch is imported when
a component is built). Third-party components come from installed ``sgl.plugins`` entry points
(a spec's ``plugins:`` list may only name those), or from a module the user names on the command
line (``sgl --plugin MODULE``); never from a spec file alone.
"""

from .core import KINDS, ComponentConfig, Entry, Kind, LearnerConfig, RegistryError, entries, get, load_plugins, names, register, version
from .architecture import Architecture
from .task import Task

# Built-in components register themselves on import.
from . import datasets, evaluation, hypergrad, models, optim, pseudo_labels, spaces  # noqa: E402,F401  isort: skip
from .spaces.architectures import load_architecture, read_architecture, resolve_architecture  # noqa: E402  isort: skip

__all__ = [
    "KINDS",
    "Architecture",
    "ComponentConfig",
    "Entry",
    "Kind",
    "LearnerConfig",
    "RegistryError",
    "Task",
    "entries",
    "get",
    "load_architecture",
    "load_plugins",
    "names",
    "read_architecture",
    "register",
    "resolve_architecture",
    "version",
]
