"""sgl.registry: the catalogue of components a spec can name.

Importing it registers the built-in components (their config models only; torch is imported when
a component is built). Third-party components come from the ``sgl.plugins`` entry points or a
spec's ``plugins:`` list, through ``load_plugins``.
"""

from .core import KINDS, ComponentConfig, Entry, RegistryError, entries, get, load_plugins, names, register, version
from .task import Task

# Built-in components register themselves on import.
from . import datasets, evaluation, hypergrad, models, optim, pseudo_labels, spaces  # noqa: E402,F401  isort: skip

__all__ = [
    "KINDS",
    "ComponentConfig",
    "Entry",
    "RegistryError",
    "Task",
    "entries",
    "get",
    "load_plugins",
    "names",
    "register",
    "version",
]
