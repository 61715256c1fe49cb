"""Issue #20, the spec's part: a Python tag on a merge key's value (9), names too long for a file
name (6), layout errors in words and keys that belong elsewhere (15). Each through `sgl validate`
and `sgl plan` in a real process: exit 2, a positioned line, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MINI_SPEC, where, write_spec


def sgl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sgl.engine.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def refused(path: Path, *commands: str) -> list[str]:
    """The lines both commands print (the same for each), checking exit 2 and no traceback."""
    outputs = []
    for command in commands or ("validate", "plan"):
        result = sgl(command, str(path), cwd=path.parent)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and result.stdout == "", result.stderr
        outputs.append(result.stderr.splitlines())
    assert all(lines == outputs[0] for lines in outputs)
    return outputs[0]


# --------------------------------------------------------------------------- 9: tags on merge keys


@pytest.mark.parametrize("value", [
    '!!python/object/apply:os.system ["touch pwned"]',      # a tagged sequence: was taken as a list of sources
    '[!!python/object/apply:os.system ["touch pwned"]]',    # a tag inside the list of sources
    '!!python/object/new:os.system ["touch pwned"]',
])
def test_a_python_tag_on_a_merge_keys_value_is_refused(tmp_path, value):
    path = write_spec(tmp_path, MINI_SPEC + f"<<: {value}\n")
    lines = refused(path)
    assert len(lines) == 1 and lines[0].startswith(where(path, "!!python")), lines
    assert "is not allowed in a spec (plain YAML only)" in lines[0]
    assert not (tmp_path / "pwned").exists()


def test_a_merge_key_that_brings_no_mapping_is_refused(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC + "<<: 5\n")
    last = len(path.read_text().splitlines())
    assert refused(path, "validate") == [f"{path}:{last}:5: '<<' (a merge key) takes a mapping or a list of mappings"]


def test_plain_merge_keys_still_merge(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("  bob: {kind: darts, channels: 4, layers: 3, nodes: 2}",
                                                  "  bob: {<<: {kind: darts, channels: 4}, layers: 3, nodes: 2}"))
    assert sgl("validate", str(path), cwd=tmp_path).returncode == 0


# --------------------------------------------------------------------------- 6: names and file names


@pytest.mark.parametrize(("where_", "text"), [
    ("learner", MINI_SPEC.replace("  bob:", "  " + "b" * 250 + ":")),
    ("run", MINI_SPEC.replace("name: mini", "name: " + "r" * 250)),
    ("stage", MINI_SPEC.replace("name: warmup", "name: " + "w" * 250)),
])
def test_names_too_long_for_a_file_name_are_refused_at_validation(tmp_path, where_, text):
    path = write_spec(tmp_path, text)
    lines = refused(path)
    assert len(lines) == 1, lines
    long = {"learner": "b" * 250, "run": "r" * 250, "stage": "w" * 250}[where_]
    assert lines[0].startswith(where(path, long)), lines
    assert "at most 64 characters (got 250): names become file and folder names" in lines[0]


def test_a_name_of_64_characters_is_fine(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("  bob:", "  " + "b" * 64 + ":"))
    assert sgl("validate", str(path), cwd=tmp_path).returncode == 0


def test_a_name_with_a_slash_is_refused_with_its_position(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("  bob:", '  "../bob":'))
    lines = refused(path, "validate")
    assert lines[0].startswith(where(path, '"../bob"')) and "invalid name" in lines[0], lines


# --------------------------------------------------------------------------- 15: what a person reads


def test_an_indentation_error_is_said_in_words(tmp_path):
    text = MINI_SPEC.replace("  bob: {kind", " bob: {kind")  # one space short
    path = write_spec(tmp_path, text)
    (line,) = refused(path)
    assert line.startswith(f"{where(path, 'bob')}: YAML syntax error: wrong indentation: this line starts at column 2, "
                           "but the mapping that starts at line "), line
    assert "has its keys at column 1" in line and "indent with spaces" in line
    assert "<block" not in line, line


@pytest.mark.parametrize(("text", "needle", "words"), [
    ("name: mini\nlearners:\n  alice: {kind: darts}\n   bob: {kind: darts}\n", "bob", "wrong indentation"),
    ("name: mini\nstages:\n  - {epochs: 1, steps: [W]}\n - {name: derive}\n", "- {name", "wrong indentation"),
    ("name: mini\nseed: 1\n- 2\n", "- 2", "a list item ('- ') where the mapping"),
    ("name: a: b\n", ": b", "a ':' where none can be"),
    ("name: mini\n\tseed: 1\n", "\t", "a tab character: YAML indents with spaces only"),
    ("name: mini\nseed 1\nstages: []\n", "seed 1", "a key but no ':'"),
])
def test_layout_errors_are_said_in_words(tmp_path, text, needle, words):
    path = write_spec(tmp_path, text)
    (line,) = refused(path, "validate")
    assert line.startswith(f"{where(path, needle)}: YAML syntax error: ") and words in line, line
    assert "<block" not in line and "'?'" not in line, line


@pytest.mark.parametrize(("key", "line", "belongs"), [
    ("batch_size", "batch_size: 32\n", "data.batch_size"),
    ("log_every", "log_every: 3\n", "run.log_every"),
    ("lr", "lr: 0.1\n", "optim.weights.lr or optim.arch.lr"),
])
def test_an_unknown_key_that_belongs_elsewhere_says_where(tmp_path, key, line, belongs):
    path = write_spec(tmp_path, MINI_SPEC + line)
    (problem,) = refused(path, "validate")
    assert problem == f"{path}:{len(path.read_text().splitlines())}:1: {key}: unknown key here (did you mean {belongs}?)", problem


def test_a_learner_key_in_a_stage_names_the_stage_key(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("  bob: {kind: darts, channels: 4", "  bob: {kind: darts, epochs: 2, channels: 4"))
    (problem,) = refused(path, "validate")
    assert problem.endswith("learners.bob.epochs: unknown key here (did you mean stages.0.epochs or stages.1.epochs?)"), problem
