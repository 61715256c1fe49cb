"""How to install one of this project's optional extras (``pyproject.toml``'s optional dependencies).

The hint names this project's source folder, not a package name on an index: ``sgl`` on PyPI is
another project, so ``pip install 'sgl[onnx]'`` would install something else.
"""

from __future__ import annotations

from pathlib import Path


def source_folder() -> Path | None:
    """The folder holding this project's pyproject.toml, when sgl runs from its source (editable)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def install_hint(extra: str) -> str:
    """``install this project's X extra: pip install -e '/path/to/sgl[X]'``."""
    root = source_folder()
    where = f"'{root}[{extra}]'" if root is not None else f"'.[{extra}]' in sgl's source folder"
    return f"install this project's {extra} extra: pip install -e {where}"
