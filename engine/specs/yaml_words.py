"""The YAML parser's complaints about layout, said in words: what is wrong at that line and how to
fix it, instead of the parser's tokens ("expected <block end>, but found '<block mapping start>'").

Only the messages about indentation, stray colons and tabs are reworded; the others already say
what they mean (an unclosed bracket names where it opens, an undefined alias its name).
"""

from __future__ import annotations

from typing import Any

INDENT_HINT = "indent with spaces so that the keys of one mapping start in the same column"


def in_words(problem: str, context: str, mark: Any, context_mark: Any, text: str) -> tuple[Any, str] | None:
    """``(mark to point at, message)`` for a layout error the parser words in tokens; None for others."""
    line = _line(text, mark.line) if mark is not None else ""
    starts_line = mark is not None and not line[: mark.column].strip()
    opened = f"line {context_mark.line + 1}" if context_mark is not None else "above"
    column = context_mark.column + 1 if context_mark is not None else None
    if problem.startswith("found character '\\t'"):
        return mark, "a tab character: YAML indents with spaces only (replace the tab with spaces)"
    if problem == "mapping values are not allowed here":
        return mark, ("a ':' where none can be: a value that holds ': ' must be quoted (e.g. \"a: b\"), and a "
                      f"key indented deeper than the key above it continues that value; {INDENT_HINT}")
    if problem == "could not find expected ':'" and context_mark is not None:
        return context_mark, ("this line has a key but no ':' after it (write `key: value`), or it continues the "
                              "value above with the wrong indentation")
    if not problem.startswith("expected <block end>, but found "):
        return None
    found = problem.rsplit(" ", 1)[-1].strip("'")
    if found == "-":
        return mark, (f"a list item ('- ') where the mapping that starts at {opened} expects a key: indent the "
                      "list under the key it belongs to")
    if found == "?" or "collection" in (context or ""):
        return mark, (f"this line does not fit the list that starts at {opened} (its items start with '- ' at "
                      f"column {column}): indent it as an item of that list, or as a key of the mapping around it")
    if not starts_line:
        return mark, ("more text after a value: a value that holds quotes or other text must be quoted as a "
                      "whole (e.g. 'a \"b\" c')")
    return mark, (f"wrong indentation: this line starts at column {mark.column + 1}, but the mapping that starts "
                  f"at {opened} has its keys at column {column}; {INDENT_HINT}")


def _line(text: str, number: int) -> str:
    lines = text.splitlines()
    return lines[number] if 0 <= number < len(lines) else ""
