"""Hostile files: characters YAML refuses, syntax errors, alias bombs, huge, deep, empty, not files.

Each gives clean `file:line:col: ...` lines (or one whole-file message) and exit code 2, quickly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import MINI_SPEC, problems, write_spec
from sgl.engine.cli.main import main
from sgl.engine.specs.reader import MAX_DEPTH, MAX_NODES, MAX_SPEC_BYTES


def only(lines: list[str]) -> str:
    assert len(lines) == 1, lines
    return lines[0]


def _cli(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


# --------------------------------------------------------------------------- characters


@pytest.mark.parametrize(
    "char, what",
    [
        ("\x1b", "control character U+001B (ESC) is not allowed in YAML (inside double quotes, write it as \\x1b)"),
        ("\x00", "control character U+0000 (NUL) is not allowed in YAML (inside double quotes, write it as \\x00)"),
        ("\uffff", "non-character U+FFFF is not allowed in YAML (inside double quotes, write it as \\uffff)"),
        ("\x7f", "control character U+007F (DEL) is not allowed in YAML (inside double quotes, write it as \\x7f)"),
    ],
)
def test_a_character_yaml_refuses_is_reported_where_it_is(tmp_path, char, what):
    path = write_spec(tmp_path, MINI_SPEC.replace("seed: 1", f'description: "tab\there {char} x"\nseed: 1'))
    result = _cli("validate", str(path))
    assert result.exit_code == 2
    assert result.output == f"{path}:2:24: {what}\n"  # `description: "tab<TAB>here ` is 23 characters


def test_every_refused_character_is_reported_up_to_ten(tmp_path):
    path = write_spec(tmp_path, "name: t\n" + "".join(f"k{i}: a\x1bb\n" for i in range(12)))
    lines = problems(path)
    assert lines[:2] == [f"{path}:2:6: " + lines[0].split(": ", 1)[1], f"{path}:3:6: " + lines[0].split(": ", 1)[1]]
    assert len(lines) == 11 and lines[-1] == f"{path}:12:7: more such characters follow (not shown)"


def test_a_control_character_in_an_override_is_positioned_in_the_override(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC)
    line = only(problems(path, ("description=a\x1bb",)))
    assert line.startswith("<override 1: description=a\\x1bb>:1:2: control character U+001B (ESC)")


def test_messages_never_carry_raw_control_characters_or_line_breaks(tmp_path):
    # A key with an escaped ESC and newline: reported, but as one line with the characters escaped.
    path = write_spec(tmp_path, MINI_SPEC + '"bad\\e\\nkey": 1\n')
    line = only(problems(path))
    assert line.endswith("bad\\x1b\\nkey: unknown key") and "\x1b" not in line and "\n" not in line


# --------------------------------------------------------------------------- syntax errors


def test_unclosed_bracket_at_the_end_names_where_it_opens(tmp_path):
    path = write_spec(tmp_path, "name: t\nstages: [{epochs: 1, steps: [W]}\n")
    line = only(problems(path))
    # Not at line 3 (after the end of the file): at the end of the text, and where '[' opens.
    assert line == (
        f"{path}:2:33: YAML syntax error: expected ',' or ']', but got the end of the file "
        "(the '[' at line 2, column 9 is never closed)"
    )


def test_the_innermost_unclosed_bracket_is_named(tmp_path):
    path = write_spec(tmp_path, "name: t\nlearners: {a: {kind: darts}\n\n# end\n")
    assert only(problems(path)) == (
        f"{path}:4:6: YAML syntax error: expected ',' or '}}', but got the end of the file "
        "(the '{' at line 2, column 11 is never closed)"
    )
    path = write_spec(tmp_path, "name: [\n")
    assert only(problems(path)) == (
        f"{path}:1:8: YAML syntax error: expected the node content, but found the end of the file "
        "(the '[' at line 1, column 7 is never closed)"
    )


def test_a_bracket_closed_too_late_names_where_it_opens(tmp_path):
    path = write_spec(tmp_path, "name: t\nstages: [{epochs: 1, steps: [W]}\nseed: 1\n")
    assert only(problems(path)) == (
        f"{path}:3:1: YAML syntax error: expected ',' or ']', but got '<scalar>' "
        "(while parsing a flow sequence that starts at line 2, column 9)"
    )


def test_unclosed_quote_names_where_it_opens(tmp_path):
    path = write_spec(tmp_path, "name: t\ndescription: 'open\n\n")
    line = only(problems(path))
    assert line.startswith(f"{path}:2:19: YAML syntax error: found unexpected end of stream")
    assert "(while scanning a quoted scalar that starts at line 2, column 14)" in line


def test_undefined_alias_and_second_document(tmp_path):
    path = write_spec(tmp_path, "name: *nope\n")
    assert only(problems(path)) == f"{path}:1:7: YAML syntax error: found undefined alias 'nope'"
    path = write_spec(tmp_path, "name: a\n---\nname: b\n")
    line = only(problems(path))
    assert line.startswith(f"{path}:2:1: YAML syntax error: but found another document")


def test_a_reused_anchor_is_legal_and_prints_no_warning(tmp_path):
    path = write_spec(tmp_path, MINI_SPEC.replace("seed: 1", "seed: &s 1\ndescription: &s x"))
    result = _cli("validate", str(path))
    assert result.exit_code == 0 and result.output.startswith("ok: "), result.output


# --------------------------------------------------------------------------- whole files


def test_empty_and_comment_only_files_report_the_required_keys(tmp_path):
    for text in ("", "# nothing\n", "\n\n"):
        path = write_spec(tmp_path, text)
        assert problems(path) == [f"{path}:1:1: name: missing required key", f"{path}:1:1: stages: missing required key"]


def test_a_directory_is_a_clean_error(tmp_path):
    folder = tmp_path / "spec.yaml"
    folder.mkdir()
    assert only(problems(folder)) == f"cannot read spec {str(folder)!r}: it is a directory"
    result = _cli("validate", str(folder))  # the CLI refuses it before reading (click)
    assert result.exit_code == 2 and "is a directory" in result.output


def test_extends_naming_a_directory(tmp_path):
    (tmp_path / "base").mkdir()
    path = write_spec(tmp_path, "extends: base\n" + MINI_SPEC)
    assert only(problems(path)) == f"{path}:1:10: extends: a directory, not a spec file: {str(tmp_path / 'base')!r}"


def test_extends_an_empty_list_means_no_base(tmp_path):
    path = write_spec(tmp_path, "extends: []\n" + MINI_SPEC)
    assert problems(path) == []


def test_missing_file_through_the_cli(tmp_path):
    result = _cli("validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert result.output == f"cannot read spec {str(tmp_path / 'nope.yaml')!r}: No such file or directory\n"


def test_not_utf8_points_at_the_byte(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"name: t\ndescription: caf\xe9 latin-1\n")
    result = _cli("validate", str(path))
    assert result.exit_code == 2
    assert result.output == f"{path}:2:17: not UTF-8 text: byte 0xe9 cannot be decoded (invalid continuation byte); save the file as UTF-8\n"


# --------------------------------------------------------------------------- size


def _bomb(levels: int = 10, width: int = 9) -> str:
    """The billion laughs: level i holds `width` aliases of level i-1, so level 9 expands to 9^10 values."""
    lines = ["l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "name: t\nstages: [{epochs: 1, steps: [W]}]\n" + "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_fast(tmp_path):
    path = write_spec(tmp_path, _bomb())
    assert 9**10 > 10**9
    start = time.perf_counter()
    result = _cli("validate", str(path))
    elapsed = time.perf_counter() - start
    assert result.exit_code == 2
    assert result.output == (
        f"{path}:8:10: the document has more than {MAX_NODES:,} values, counting every use of an alias "
        "in full (an alias bomb?); a spec needs far fewer\n"
    )
    assert elapsed < 1.0, elapsed


def test_merge_key_bomb_is_refused(tmp_path):
    lines = ["a0: &a0 {x: 1, y: 2, z: 3}"]
    lines += [f"a{i}: &a{i} {{p: *a{i - 1}, q: *a{i - 1}, r: *a{i - 1}, <<: *a{i - 1}}}" for i in range(1, 14)]
    path = write_spec(tmp_path, "name: t\n" + "\n".join(lines) + "\n")
    assert "counting every use of an alias" in only(problems(path))


def test_aliases_within_the_limit_are_fine(tmp_path):
    path = write_spec(tmp_path, _bomb(levels=3, width=3).replace("name: t\n", "name: t\ndescription: x\n"))
    assert [line.split(": ", 1)[1] for line in problems(path)] == [f"l{i}: unknown key" for i in range(3)]


def test_deep_nesting_is_refused_fast(tmp_path):
    path = write_spec(tmp_path, "name: " + "[" * 200_000 + "\n")
    start = time.perf_counter()
    line = only(problems(path))
    assert time.perf_counter() - start < 2.0
    # the top-level mapping is level 1, so the 50th '[' (column 6 + 50) is one too many
    assert line == f"{path}:1:{6 + MAX_DEPTH}: nested more than {MAX_DEPTH} levels deep"


def test_deep_nesting_through_an_alias_is_refused(tmp_path):
    deep = "[" * 30 + "]" * 30
    path = write_spec(tmp_path, f"a: &a {deep}\nb: [[[[[[[[[[[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]]]]]]]]]]\n")
    assert "nested more than" in only(problems(path))


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: t\n" + "#" * MAX_SPEC_BYTES, encoding="utf-8")
    assert only(problems(path)) == f"{path}:1:1: larger than 1,000,000 bytes: not a spec (a spec is a few kB)"


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_an_endless_device_is_refused_not_read_forever():
    assert only(problems(Path("/dev/zero"))) == "/dev/zero:1:1: larger than 1,000,000 bytes: not a spec (a spec is a few kB)"


def test_a_large_but_legal_spec_still_loads(tmp_path):
    # 5,000 keys of description text: well inside the limits, read in well under the bound.
    path = write_spec(tmp_path, MINI_SPEC.replace("seed: 1", "seed: 1\ndescription: |\n" + "".join(f"  line {i}\n" for i in range(5000))))
    assert problems(path) == []
    assert os.path.getsize(path) < MAX_SPEC_BYTES
