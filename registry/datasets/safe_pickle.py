"""Reading CIFAR's python batches without running code from them.

A pickle names functions that unpickling calls (``os.system`` as easily as a numpy constructor),
so a crafted batch file would run code. ``load`` admits only what the CIFAR python format needs:
dicts, lists, tuples, str, bytes, numbers, and numpy arrays with the globals numpy's own pickling
uses (under numpy 1.x's ``numpy.core`` and 2.x's ``numpy._core`` names alike); any other global
is refused with an error naming the file and the global.
"""

from __future__ import annotations

import codecs
import importlib
import pickle
from pathlib import Path
from typing import Any, Callable


class RefusedPickle(pickle.UnpicklingError):
    """A batch file that is not plain CIFAR data."""


def _numpy_core(module: str) -> Any:
    """numpy's core submodule under whichever name this numpy has (2.x: _core, 1.x: core)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return importlib.import_module(f"{package}.{module}")
        except ImportError:
            continue
    raise ImportError(f"numpy has no core module {module!r}")


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as pickle protocols 0-2 use it for bytes; latin-1 only, so no codec is a door."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise RefusedPickle(f"_codecs.encode with encoding {encoding!r} (only latin-1 makes bytes in a pickle)")
    return codecs.encode(text, "latin-1", errors)


def _allowed() -> dict[tuple[str, str], Callable[[], Any]]:
    import numpy

    def core(module: str, name: str) -> Callable[[], Any]:
        return lambda: getattr(_numpy_core(module), name)

    table: dict[tuple[str, str], Callable[[], Any]] = {
        ("numpy", "ndarray"): lambda: numpy.ndarray,
        ("numpy", "dtype"): lambda: numpy.dtype,
        ("_codecs", "encode"): lambda: _latin1_encode,
    }
    for package in ("numpy.core", "numpy._core"):
        table[(f"{package}.multiarray", "_reconstruct")] = core("multiarray", "_reconstruct")  # ndarray.__reduce__
        table[(f"{package}.multiarray", "scalar")] = core("multiarray", "scalar")  # numpy scalars, e.g. np.int64 labels
        table[(f"{package}.numeric", "_frombuffer")] = core("numeric", "_frombuffer")  # ndarray, protocol 5
    return table


class _CifarUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._path = path
        self._allowed = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        make = self._allowed.get((module, name))
        if make is None:
            raise RefusedPickle(
                f"{self._path}: refused to load {module}.{name}: a CIFAR batch holds only dicts, lists, "
                "strings, numbers and numpy arrays (is this file really a CIFAR batch?)"
            )
        return make()


def load(path: str | Path, *, encoding: str = "latin1") -> Any:
    """Unpickle a CIFAR batch file, refusing anything but plain data and numpy arrays."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            return _CifarUnpickler(f, path, encoding=encoding).load()
        except RefusedPickle as exc:
            if str(exc).startswith(f"{path}: "):
                raise
            raise RefusedPickle(f"{path}: {exc}") from None
        except (pickle.UnpicklingError, EOFError) as exc:  # truncated or not a pickle at all
            raise pickle.UnpicklingError(f"{path}: not a readable CIFAR batch ({type(exc).__name__}: {exc})") from None
