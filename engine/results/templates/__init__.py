"""The pages' templates (Jinja2): a run report's ``report.html.j2`` (its pieces in ``macros.html.j2``,
its style in ``style.css.j2``) and its Markdown twin ``report.md.j2``; a study's ``study.html.j2``
and ``study.md.j2``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(["html.j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
