#!/usr/bin/env python3
"""Check the citations of docs/recipes.md against the repositories they cite.

Every table of the page with a ``source`` and a ``quote`` column cites code: its source cell names
one or more lines as ``ABBR:LINE`` or ``ABBR:FIRST-LAST`` (a bare ``:LINE`` repeats the cell's last
abbreviation), and its quote cell holds one backticked piece of text per citation, in the same
order, that must occur in the cited line (or, for a range, somewhere in the range's text; runs of
whitespace count as one space). The Sources table maps each abbreviation to a repository, a commit
and a file.

    python docs/check_citations.py                          # the form of every row only
    python docs/check_citations.py --repos ~/src/mirrors    # and every quote, at its commit
    python docs/check_citations.py --repos DIR --show SGL-PC:210-215   # print cited lines

``--repos DIR`` holds clones or bare mirrors named ``owner+name`` or ``owner/name`` (a ``repo``
sub-folder of either is accepted too); a file is read with ``git show COMMIT:FILE``, so the clones
need the cited commits, not a checkout of them. A repository missing under DIR is reported as
skipped, not as a failure. Exit status: 1 when a row is malformed or a quote is not where its
citation says, else 0. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

DOC = Path(__file__).resolve().parent / "recipes.md"


@dataclass(frozen=True)
class Source:
    abbr: str
    repo: str      # owner/name
    commit: str
    file: str


@dataclass(frozen=True)
class Citation:
    abbr: str
    first: int
    last: int

    def __str__(self) -> str:
        return f"{self.abbr}:{self.first}" + (f"-{self.last}" if self.last != self.first else "")


@dataclass
class Row:
    """One row of a table that cites code."""

    line: int                              # line of docs/recipes.md (1-based)
    heading: str                           # the last ``#`` heading above the table
    cells: dict[str, str]                  # column name -> cell text (escaped pipes undone)
    citations: list[Citation] = field(default_factory=list)
    quotes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class Doc:
    sources: dict[str, Source]
    tables: list[tuple[str, list[str], list[tuple[int, dict[str, str]]]]]  # (heading, columns, rows)
    rows: list[Row]                        # rows of the citing tables
    problems: list[str]                    # about the page as a whole (the Sources table)


# --------------------------------------------------------------------------- reading the page


def split_cells(line: str) -> list[str]:
    """The cells of a Markdown table row; ``\\|`` is a pipe inside a cell."""
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    cells = re.split(r"(?<!\\)\|", body)
    return [cell.strip().replace("\\|", "|") for cell in cells]


_CODE = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)")


def code_spans(text: str) -> list[str]:
    """The contents of the backticked spans of ``text``, as Markdown shows them."""
    spans = []
    for match in _CODE.finditer(text):
        content = match.group(2)
        if len(content) >= 2 and content.startswith(" ") and content.endswith(" ") and content.strip():
            content = content[1:-1]
        spans.append(content)
    return spans


def _tables(lines: list[str]):
    """(heading, columns, [(line number, cells by column)]) for every table of the page."""
    heading, i = "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|?\s*:?-{3,}.*", lines[i + 1].strip()):
            columns = [c.lower() for c in split_cells(line)]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = split_cells(lines[i])
                padded = cells + [""] * (len(columns) - len(cells))
                rows.append((i + 1, dict(zip(columns, padded)), len(cells)))
                i += 1
            yield heading, columns, rows
            continue
        i += 1


def _citation_pattern(abbrs: list[str]) -> re.Pattern[str]:
    names = "|".join(re.escape(a) for a in sorted(abbrs, key=len, reverse=True)) or r"(?!x)x"
    lines = r"(?P<first>\d+)(?:-(?P<last>\d+))?"
    return re.compile(
        rf"(?<![\w-])(?P<abbr>{names})(?::{lines})?(?![\w-])"       # ABBR, ABBR:12, ABBR:12-15
        rf"|(?<=[\s(,;]):(?P<bare>\d+)(?:-(?P<bare_last>\d+))?(?![\w-])"  # :12 after ABBR:…
    )


def _citations(source: str, pattern: re.Pattern[str], row: Row) -> None:
    text = _CODE.sub(lambda m: " " * len(m.group(0)), source)  # backticked text in a source cell cites nothing
    last_abbr = None
    for match in pattern.finditer(text):
        abbr = match.group("abbr")
        first, last = (match.group("first"), match.group("last")) if abbr else (match.group("bare"), match.group("bare_last"))
        if abbr is not None and first is None:
            row.problems.append(f"names {abbr} without a line (write {abbr}:LINE)")
            last_abbr = abbr
            continue
        abbr = abbr or last_abbr
        if abbr is None:
            row.problems.append(f"':{first}' has no abbreviation before it")
            continue
        last_abbr = abbr
        a, b = int(first), int(last or first)
        if a < 1 or b < a:
            row.problems.append(f"{abbr}:{first}-{last}: not a range of lines")
            continue
        row.citations.append(Citation(abbr, a, b))


def read_doc(path: Path = DOC) -> Doc:
    lines = path.read_text(encoding="utf-8").splitlines()
    raw = list(_tables(lines))
    tables = [(heading, columns, [(n, cells) for n, cells, _ in rows]) for heading, columns, rows in raw]
    problems: list[str] = []
    sources: dict[str, Source] = {}
    for heading, columns, rows in raw:
        if {"abbreviation", "repository", "commit", "file"} <= set(columns):
            for number, cells, _ in rows:
                abbr = cells["abbreviation"]
                repo, commit, file = cells["repository"], cells["commit"], cells["file"]
                if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo):
                    problems.append(f"{path.name}:{number}: {abbr}: repository {repo!r} is not owner/name")
                if not re.fullmatch(r"[0-9a-f]{7,40}", commit):
                    problems.append(f"{path.name}:{number}: {abbr}: commit {commit!r} is not a hash")
                if not file or " " in file:
                    problems.append(f"{path.name}:{number}: {abbr}: file {file!r} is not a path")
                if abbr in sources:
                    problems.append(f"{path.name}:{number}: {abbr}: abbreviation defined twice")
                sources[abbr] = Source(abbr, repo, commit, file.strip("`"))
    if not sources:
        problems.append(f"{path.name}: no Sources table (columns abbreviation | repository | commit | file)")
    pattern = _citation_pattern(list(sources))
    cited: list[Row] = []
    for heading, columns, rows in raw:
        if not {"source", "quote"} <= set(columns):
            continue
        for number, cells, count in rows:
            row = Row(number, heading, cells)
            if count != len(columns):
                row.problems.append(f"has {count} cells, the table {len(columns)}")
            _citations(cells["source"], pattern, row)
            row.quotes = code_spans(cells["quote"])
            if not row.citations:
                row.problems.append("cites no line (ABBR:LINE in the source cell)")
            if len(row.quotes) != len(row.citations):
                row.problems.append(
                    f"{len(row.citations)} citation(s) ({', '.join(map(str, row.citations))}) but "
                    f"{len(row.quotes)} quote(s): quote each cited line once, in order"
                )
            if any(not q.strip() for q in row.quotes):
                row.problems.append("an empty quote")
            cited.append(row)
    return Doc(sources, tables, cited, problems)


# --------------------------------------------------------------------------- reading the repositories


class Repos:
    """Files at commits, read from clones or mirrors under one folder."""

    def __init__(self, root: Path):
        self.root = root
        self._dirs: dict[str, Path | None] = {}
        self._files: dict[tuple[str, str, str], list[str] | str] = {}

    def git_dir(self, repo: str) -> Path | None:
        if repo not in self._dirs:
            owner, name = repo.split("/", 1)
            found = None
            for base in (self.root / f"{owner}+{name}", self.root / owner / name):
                for candidate in (base, base / "repo"):
                    if candidate.is_dir() and _git(candidate, "rev-parse", "--git-dir").returncode == 0:
                        found = candidate
                        break
                if found:
                    break
            self._dirs[repo] = found
        return self._dirs[repo]

    def lines(self, source: Source) -> list[str] | str:
        """The file's lines at the commit, or why they cannot be read."""
        key = (source.repo, source.commit, source.file)
        if key not in self._files:
            where = self.git_dir(source.repo)
            if where is None:
                self._files[key] = "skipped"
            else:
                shown = _git(where, "show", f"{source.commit}:{source.file}")
                if shown.returncode != 0:
                    self._files[key] = f"cannot read {source.file} at {source.commit}: {shown.stderr.strip()}"
                else:
                    self._files[key] = shown.stdout.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        return self._files[key]


def _git(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                          encoding="utf-8", errors="replace")


def _squash(text: str) -> str:
    return " ".join(text.split())


def check_row(row: Row, doc: Doc, repos: Repos) -> tuple[list[str], int, int]:
    """(mismatches, citations verified, citations skipped) of one row."""
    wrong, verified, skipped = [], 0, 0
    for citation, quote in zip(row.citations, row.quotes):
        source = doc.sources.get(citation.abbr)
        if source is None:
            wrong.append(f"{citation}: no such abbreviation in the Sources table")
            continue
        lines = repos.lines(source)
        if lines == "skipped":
            skipped += 1
            continue
        if isinstance(lines, str):
            wrong.append(f"{citation}: {lines}")
            continue
        if citation.last > len(lines):
            wrong.append(f"{citation}: {source.file} at {source.commit} has {len(lines)} lines")
            continue
        text = _squash(" ".join(lines[citation.first - 1 : citation.last]))
        if _squash(quote) in text:
            verified += 1
        else:
            shown = _squash(lines[citation.first - 1])[:120]
            wrong.append(f"{citation}: `{quote}` is not there ({source.repo}@{source.commit} {source.file}); "
                         f"line {citation.first} reads: {shown}")
    return wrong, verified, skipped


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doc", type=Path, default=DOC, help="the page to check (default: docs/recipes.md)")
    parser.add_argument("--repos", type=Path, help="folder of clones or mirrors named owner+name or owner/name")
    parser.add_argument("--show", metavar="ABBR:LINES", action="append", default=[],
                        help="print the cited lines (needs --repos); may repeat")
    args = parser.parse_args(argv)

    doc = read_doc(args.doc)
    name = args.doc.name
    failures = list(doc.problems)
    for row in doc.rows:
        failures += [f"{name}:{row.line}: {problem}" for problem in row.problems]

    if args.show:
        if args.repos is None:
            parser.error("--show needs --repos")
        repos = Repos(args.repos)
        for text in args.show:
            pseudo = Row(0, "", {})
            _citations(text, _citation_pattern(list(doc.sources)), pseudo)
            for citation in pseudo.citations:
                source = doc.sources[citation.abbr]
                lines = repos.lines(source)
                print(f"== {citation}  {source.repo}@{source.commit} {source.file}")
                if isinstance(lines, str):
                    print(f"   ({lines})")
                    continue
                for n in range(citation.first, min(citation.last, len(lines)) + 1):
                    print(f"{n:6d}  {lines[n - 1]}")
        return 0

    verified = skipped = 0
    if args.repos is not None:
        repos = Repos(args.repos)
        for row in doc.rows:
            wrong, ok, skip = check_row(row, doc, repos)
            failures += [f"{name}:{row.line}: {problem}" for problem in wrong]
            verified, skipped = verified + ok, skipped + skip
        missing = sorted({s.repo for s in doc.sources.values() if repos.git_dir(s.repo) is None})
        for repo in missing:
            print(f"skipped: no clone of {repo} under {args.repos}")

    for failure in failures:
        print(failure)
    citations = sum(len(row.citations) for row in doc.rows)
    summary = f"{len(doc.rows)} rows, {citations} citations"
    if args.repos is not None:
        summary += f": {verified} verified, {skipped} skipped"
    print(f"{summary}; {len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
