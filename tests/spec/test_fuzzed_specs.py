"""Hostile but fair input: random mutations of every shipped spec never give a traceback.

Each case mutates one spec under specs/ (structurally: delete a key, replace a value, add an
unknown key; or as text: duplicate a key line, truncate at a byte, insert bytes or a control
character) and runs `sgl validate` and `sgl plan` in-process. Both must end in exit 0, or exit 2
with every line a positioned problem (`file:line:col: ...`) or one of the loader's whole-file
messages. Nothing may build a model (a plan is data). SGL_FUZZ_EXAMPLES raises the case count.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from conftest import SPECS
from sgl import registry
from sgl.engine.cli.main import main

EXAMPLES = int(os.environ.get("SGL_FUZZ_EXAMPLES", "150"))
SHIPPED = sorted(p.relative_to(SPECS) for p in SPECS.rglob("*.yaml"))

#: Lines of exit-2 output that are not positioned: the loader's messages about a whole file.
WHOLE_FILE = re.compile(r"^(cannot read spec '.*': .+|cannot load the installed sgl\.plugins entry points: .+)$")
POSITIONED = re.compile(r"^.+?:\d+:\d+: \S")

_yaml = YAML(typ="safe", pure=True)


# --------------------------------------------------------------------------- values and mutations


def _scalars() -> st.SearchStrategy:
    control = st.text(alphabet=st.sampled_from(["\x1b", "\x00", "\uffff", "\x7f", "\n", "a", "é", "\u2028"]), min_size=1, max_size=6)
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, -1, 10**9, 2**63, 2**64, 10**30]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]),
        st.text(max_size=12),
        control,
        st.sampled_from(["darts", "pc_darts", "p_darts", "digits", "cifar10", "sgd", "adam", "cosine", "derive", "evaluate", "A", "W", "PL", "V"]),
    )


def _values() -> st.SearchStrategy:
    return st.recursive(
        _scalars(),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
        max_leaves=6,
    )


def _paths(node, prefix=()):
    """Every key path in the data: mapping keys and list items, nested."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield prefix + (key,), value
        yield from _paths(value, prefix + (key,))


def _parent(data, path):
    node = data
    for part in path[:-1]:
        node = node[part]
    return node


def _structural(draw, data) -> str:
    """Mutate the parsed spec and write it back as YAML."""
    paths = [p for p, _ in _paths(data)]
    kind = draw(st.sampled_from(["delete", "replace", "unknown_key"]))
    if kind == "unknown_key":
        mappings = [()] + [p for p, v in _paths(data) if isinstance(v, dict)]
        target = draw(st.sampled_from(mappings))
        node = _parent(data, target + (None,))
        node[draw(st.text(min_size=1, max_size=10)) + "_x"] = draw(_values())
    else:
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        if kind == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_values())
    from io import StringIO

    out = StringIO()
    _yaml.dump(data, out)
    return out.getvalue()


def _textual(draw, text: str) -> bytes:
    """Mutate the file's bytes."""
    raw = text.encode("utf-8")
    kind = draw(st.sampled_from(["duplicate_key", "truncate", "insert_bytes", "insert_control"]))
    if kind == "duplicate_key":
        lines = text.splitlines(keepends=True)
        keyed = [i for i, line in enumerate(lines) if re.match(r"^\s*(- )?[\w.-]+:", line)]
        i = draw(st.sampled_from(keyed))
        return "".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :]).encode("utf-8")
    at = draw(st.integers(min_value=0, max_value=len(raw)))
    if kind == "truncate":
        return raw[:at]
    if kind == "insert_control":
        return raw[:at] + draw(st.sampled_from(["\x1b", "\x00", "\uffff", "\x7f", "\ud800"])).encode("utf-8", "surrogatepass") + raw[at:]
    return raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]


# --------------------------------------------------------------------------- the property


@pytest.fixture(scope="module")
def spec_tree(tmp_path_factory) -> Path:
    """A copy of specs/ so a mutated spec sits beside the bases it extends."""
    root = tmp_path_factory.mktemp("specs")
    shutil.copytree(SPECS, root, dirs_exist_ok=True)
    return root


@pytest.fixture(scope="module")
def no_builds():
    """Validating and planning are data: any component's build() here is a bug."""
    patch = pytest.MonkeyPatch()

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__}.build called while validating or planning")

    for entry in registry.entries():
        if hasattr(entry.config, "build"):  # pseudo-labelers and hypergradients build nothing
            patch.setattr(entry.config, "build", refuse)
    yield
    patch.undo()


def _check(result, command: str, file: Path) -> None:
    if not isinstance(result.exception, SystemExit) and result.exception is not None:
        raise AssertionError(f"`sgl {command}` on {file} raised {result.exception!r}:\n{file.read_bytes()[:2000]!r}") from result.exception
    if result.exit_code == 0:
        return
    assert result.exit_code == 2, (command, result.exit_code, result.output)
    lines = result.output.splitlines()
    assert lines, f"`sgl {command}` exited 2 without a word"
    for line in lines:
        assert POSITIONED.match(line) or WHOLE_FILE.match(line), f"`sgl {command}`: not a problem line: {line!r}\n{result.output}"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.data())
def test_mutated_specs_never_give_a_traceback(spec_tree, no_builds, data):
    original = spec_tree / data.draw(st.sampled_from(SHIPPED), label="spec")
    text = original.read_text(encoding="utf-8")
    if data.draw(st.booleans(), label="structural"):
        mutated = _structural(data.draw, _yaml.load(text)).encode("utf-8")
    else:
        mutated = _textual(data.draw, text)
    path = original.with_name("_fuzzed.yaml")
    path.write_bytes(mutated)
    runner = CliRunner()
    _check(runner.invoke(main, ["validate", str(path)]), "validate", path)
    _check(runner.invoke(main, ["plan", str(path)]), "plan", path)

