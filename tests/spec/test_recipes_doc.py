"""docs/recipes.md and the shipped recipes agree: every value its tables trace to a source is the
value the recipe's resolved spec holds, every row cites a repository, commit, file, line and a
quote of that line (docs/recipes.md, "How the tables are written"), and docs/check_citations.py,
which checks those quotes against clones of the cited repositories, finds a wrong one."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from conftest import REPO, SPECS
from sgl.engine.specs.load import load_document, load_spec

DOC = REPO / "docs" / "recipes.md"
_yaml = YAML(typ="safe", pure=True)


def _checker():
    """docs/check_citations.py as a module (docs/ is no package)."""
    spec = importlib.util.spec_from_file_location("check_citations", REPO / "docs" / "check_citations.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


CHECK = _checker()
PARSED = CHECK.read_doc(DOC)
STUDENT_REPO = "aparna9625/ece285_learning_strategies"


def _tables() -> tuple[dict[str, list[tuple[str, str]]], dict[str, str]]:
    """Rows (key, value) per heading (``specs/...`` or ``protocol <name>``), and each recipe's ``inherits``."""
    tables = {heading: [(cells["spec key"], cells["value"]) for _, cells in rows]
              for heading, columns, rows in PARSED.tables if columns[:2] == ["spec key", "value"]}
    inherits: dict[str, str] = {}
    heading = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            heading = line[4:].strip()
        elif heading and line.startswith("inherits: "):
            inherits[heading] = line.split(":", 1)[1].strip()
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


def _same(expected, actual) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        return expected is not None and actual is not None and float(actual) == pytest.approx(float(expected))
    return actual == expected


# --------------------------------------------------------------------------- values


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
        if not _same(expected, actual):
            wrong.append(f"{key}: documented {expected!r}, the spec holds {actual!r}")
    assert wrong == [], f"{recipe} and docs/recipes.md disagree"


def test_a_wrong_value_would_be_caught():
    rows = _rows("specs/paper/sgl_pcdarts_cifar10.yaml")
    assert rows["data.subset"] == "null" and rows["data.split.train"] == "0.5" and rows["stages.1.arch_start"] == "15"
    assert "subset" not in (REPO / "specs/paper/sgl_pcdarts_cifar10.yaml").read_text().split("extends:")[1]
    # the pc_darts protocol's rows reach the recipe's evaluate stage
    assert rows["stages.3.drop_path"] == "0.3"
    assert rows["stages.3.seed"] == "3"


# --------------------------------------------------------------------------- citations


def test_every_row_cites_a_repository_commit_file_line_and_quote():
    assert PARSED.problems == []
    assert len(PARSED.rows) > 400
    for row in PARSED.rows:
        where = f"docs/recipes.md:{row.line}"
        assert row.problems == [], f"{where}: {row.problems}"
        assert row.citations, where
        assert len(row.quotes) == len(row.citations), where
        for citation, quote in zip(row.citations, row.quotes):
            source = PARSED.sources[citation.abbr]
            assert re.fullmatch(r"[\w.-]+/[\w.-]+", source.repo), (where, source)
            assert re.fullmatch(r"[0-9a-f]{7,40}", source.commit), (where, source)
            assert source.file and citation.first >= 1 and citation.last >= citation.first, (where, citation)
            assert quote.strip(), where


def test_every_value_table_has_a_source_and_a_quote_column():
    """No table of values escapes the citation checks."""
    for heading, columns, rows in PARSED.tables:
        if "spec key" in columns:
            assert columns == ["spec key", "value", "source", "quote"], heading
    cited_lines = {row.line for row in PARSED.rows}
    for heading, columns, rows in PARSED.tables:
        if "spec key" in columns or "metric" in columns:
            assert all(number in cited_lines for number, _ in rows), heading


def test_recipes_cite_the_authors_copy_not_the_students():
    """A value is the authors' only if chaitanyaspatil/DeepLearningSGL@13a7b51 has it."""
    for row in PARSED.rows:
        if row.heading.startswith(("specs/", "protocol ")):
            repos = {PARSED.sources[c.abbr].repo for c in row.citations}
            assert STUDENT_REPO not in repos, f"docs/recipes.md:{row.line} cites the student copy for a recipe value"
    authors = {s.commit for s in PARSED.sources.values() if s.repo == "chaitanyaspatil/DeepLearningSGL"}
    assert authors == {"13a7b51"}


def _git(where: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-C", str(where), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


def test_the_checker_verifies_quotes_against_a_clone(tmp_path, capsys):
    clone = tmp_path / "repos" / "someone+tool"
    clone.mkdir(parents=True)
    _git(clone, "init", "-q")
    (clone / "train.py").write_text("import os\nparser.add_argument('--seed', type=int,\n    default=2)\nlr = 0.1\r\n")
    _git(clone, "add", "train.py")
    _git(clone, "commit", "-q", "-m", "x")
    commit = _git(clone, "rev-parse", "--short=7", "HEAD")
    doc = tmp_path / "recipes.md"

    def write(rows: str) -> Path:
        doc.write_text(
            "| abbreviation | repository | commit | file |\n|---|---|---|---|\n"
            f"| T | someone/tool | {commit} | train.py |\n| U | someone/other | {commit} | x.py |\n\n"
            "### specs/x.yaml\n\n| spec key | value | source | quote |\n|---|---|---|---|\n" + rows
        )
        return doc

    good = "| seed | 2 | T:2-3, :4 (a note) | `'--seed', type=int, default=2` · `lr = 0.1` |\n"
    assert CHECK.main(["--doc", str(write(good)), "--repos", str(tmp_path / "repos")]) == 0
    assert "2 verified" in capsys.readouterr().out

    wrong_line = "| seed | 2 | T:4 | `default=2` |\n"
    assert CHECK.main(["--doc", str(write(wrong_line)), "--repos", str(tmp_path / "repos")]) == 1
    out = capsys.readouterr().out
    assert "T:4: `default=2` is not there" in out and "line 4 reads: lr = 0.1" in out

    malformed = "| seed | 2 | T (no line) | `x` |\n| lr | 0.1 | T:4, :4 | `lr` |\n| x | 1 | U:1 | `y` |\n"
    assert CHECK.main(["--doc", str(write(malformed)), "--repos", str(tmp_path / "repos")]) == 1
    out = capsys.readouterr().out
    assert "names T without a line" in out and "2 citation(s) (T:4, T:4) but 1 quote(s)" in out
    assert "skipped: no clone of someone/other" in out and "1 skipped" in out

    assert CHECK.main(["--doc", str(write(good)), "--repos", str(tmp_path / "repos"), "--show", "T:2-3"]) == 0
    assert "     3      default=2)" in capsys.readouterr().out


@pytest.mark.skipif(not os.environ.get("SGL_CITATION_REPOS"), reason="set SGL_CITATION_REPOS to a folder of clones")
def test_every_quote_is_in_the_cited_line(capsys):
    assert CHECK.main(["--repos", os.environ["SGL_CITATION_REPOS"]]) == 0, capsys.readouterr().out
    assert " 0 skipped" in capsys.readouterr().out


# --------------------------------------------------------------------------- expectations


def _expected_rows() -> list[dict[str, str]]:
    (table,) = [rows for heading, columns, rows in PARSED.tables if heading == "Expected results"]
    return [cells for _, cells in table]


def test_the_expected_results_table_is_every_expect_of_the_recipes():
    documented = set()
    for cells in _expected_rows():
        value, tolerance = (float(x) for x in cells["value ± tolerance"].split("±"))
        documented.add((cells["recipe"], cells["metric"], value, tolerance))
    shipped = set()
    for path in sorted(SPECS.glob("**/*.yaml")):
        spec, _ = load_spec(path)
        for expectation in spec.expect:
            if expectation.value is not None and path.parent.name in ("paper", "baselines"):
                shipped.add((path.relative_to(REPO).as_posix(), expectation.metric, expectation.value, expectation.tolerance))
    assert documented == shipped


@pytest.mark.parametrize("path", sorted(SPECS.glob("**/*.yaml")), ids=lambda p: p.relative_to(SPECS).as_posix())
def test_no_recipe_inherits_an_expectation_silently(path: Path):
    """Where a base has ``expect:``, the recipe sets its own (``expect: []`` clears it)."""
    doc = load_document(path)
    origin = doc.keys.get(("expect",))
    if origin is not None:
        assert Path(origin.file).resolve() == path.resolve(), f"{path.name} inherits expect: from {origin.file}"


def test_pcdarts_cifar10_has_its_own_expectation_and_eval_sgl_imagenet_none():
    pcdarts, _ = load_spec(SPECS / "baselines" / "pcdarts_cifar10.yaml")
    assert [(e.metric, e.value) for e in pcdarts.expect] == [("evaluations.evaluate.test_error_final", 2.57)]
    assert pcdarts.optim.schedule.min_lr == 0.0
    cleared, _ = load_spec(SPECS / "paper" / "eval_sgl_imagenet.yaml")
    base, _ = load_spec(SPECS / "paper" / "eval_imagenet.yaml")
    assert cleared.expect == [] and len(base.expect) == 1
