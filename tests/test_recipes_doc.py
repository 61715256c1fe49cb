"""docs/recipes.md and the shipped recipes agree: every value its tables trace to a source is the
value the recipe's resolved spec holds (docs/recipes.md, "How the tables are written")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from conftest import REPO
from sgl.engine.spec.load import load_spec

DOC = REPO / "docs" / "recipes.md"
_yaml = YAML(typ="safe", pure=True)


def _tables() -> tuple[dict[str, list[tuple[str, str]]], dict[str, str]]:
    """Rows per heading (``specs/...`` or ``protocol <name>``), and each recipe's ``inherits``."""
    tables: dict[str, list[tuple[str, str]]] = {}
    inherits: dict[str, str] = {}
    heading = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            heading = line[4:].strip()
            tables[heading] = []
        elif heading and line.startswith("inherits: "):
            inherits[heading] = line.split(":", 1)[1].strip()
        elif heading and line.startswith("| ") and not line.startswith("| spec key") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            if len(cells) == 3:
                tables[heading].append((cells[0], cells[1]))
    return tables, inherits


TABLES, INHERITS = _tables()
RECIPES = sorted(h for h in TABLES if h.startswith("specs/"))


def _rows(recipe: str) -> dict[str, str]:
    """A recipe's rows with ``inherits`` and ``stages.N.protocol`` rows expanded."""
    own = dict(TABLES[recipe])
    rows = _rows(INHERITS[recipe]) if recipe in INHERITS else {}
    if any(key.startswith("stages.") for key in own):
        rows = {k: v for k, v in rows.items() if not k.startswith("stages.")}
    rows.update(own)
    for key, value in list(rows.items()):
        match = re.fullmatch(r"(stages\.\d+)\.protocol", key)
        if match:
            for proto_key, proto_value in TABLES[f"protocol {value}"]:
                rows.setdefault(f"{match.group(1)}.{proto_key}", proto_value)
    return rows


def _at(data, key: str):
    node = data
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def test_the_doc_covers_every_shipped_paper_recipe_and_baseline():
    shipped = {p.relative_to(REPO).as_posix() for folder in ("paper", "baselines") for p in (REPO / "specs" / folder).glob("*.yaml")}
    assert shipped == set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_documented_value_is_the_recipe_value(recipe: str):
    spec, _ = load_spec(REPO / recipe)
    data = spec.model_dump(mode="json")
    rows = _rows(recipe)
    assert rows, recipe
    wrong = []
    for key, text in rows.items():
        expected = _yaml.load(text)
        try:
            actual = _at(data, key)
        except (KeyError, IndexError, TypeError):
            wrong.append(f"{key}: documented {text!r}, but the spec has no such key")
            continue
        if isinstance(expected, float) or isinstance(actual, float):
            same = expected is not None and actual is not None and float(actual) == pytest.approx(float(expected))
        else:
            same = actual == expected
        if not same:
            wrong.append(f"{key}: documented {expected!r}, the spec holds {actual!r}")
    assert wrong == [], f"{recipe} and docs/recipes.md disagree"


def test_a_wrong_value_would_be_caught():
    rows = _rows("specs/paper/sgl_pcdarts_cifar10.yaml")
    assert rows["data.subset"] == "20000" and rows["stages.1.arch_start"] == "15"
    assert Path(REPO / "specs/paper/sgl_pcdarts_cifar10.yaml").read_text().count("subset: 20000") == 1
