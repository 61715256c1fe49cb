"""Issue #20: every file of a finished run, damaged in a few ways, then `sgl resume`, `sgl report` and
`sgl export`: clean refusals (exit 2) or correct results, never a traceback, never a write outside
the run directory. SGL_FUZZ_EXAMPLES raises the case count (every file x damage pair: 300 covers
them). The commands run in this process (a FIFO where a file belongs is refused before it is read)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgl.engine.cli.main import main

from conftest import sgl_cli as sgl, tiny_spec_text

EXAMPLES = int(os.environ.get("SGL_FUZZ_EXAMPLES", "6"))

SPEC = tiny_spec_text("damaged", 2, run_extra=', tensorboard: "off"')


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("damaged")
    (root / "spec.yaml").write_text(SPEC, encoding="utf-8")
    result = sgl("run", "spec.yaml", "--run-dir", "finished", "-q", cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "finished"


def _files(run_dir: Path) -> list[str]:
    return sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock")


def _link_out(path: Path, outside: Path) -> None:
    path.unlink()
    path.symlink_to(outside / "precious.txt")


def _dir(path: Path, outside: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGES = {
    "truncated": lambda p, o: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "empty": lambda p, o: p.write_bytes(b""),
    "random": lambda p, o: p.write_bytes(os.urandom(max(16, p.stat().st_size))),
    "nul_padded": lambda p, o: p.write_bytes(p.read_bytes() + b"\0" * 1550),
    "not_utf8": lambda p, o: p.write_bytes(b"\xff\xfe" + p.read_bytes()),
    "wrong_json": lambda p, o: p.write_text('[1, "x", null]\n1e999\n{"kind": 5, "learner": []}\n'),
    "deleted": lambda p, o: p.unlink(),
    "a_folder": _dir,
    "a_link_out": _link_out,
    "a_fifo": lambda p, o: (p.unlink(), os.mkfifo(p)),
}


def _tree(root: Path, skip: Path) -> list[tuple[str, int, int]]:
    """Everything under ``root`` but ``skip`` (not following links): what a command must not touch."""
    out = []
    for parent, dirs, files in os.walk(root):
        if Path(parent) == skip or skip in Path(parent).parents:
            continue
        for name in files:
            st_ = os.lstat(Path(parent) / name)
            out.append((str(Path(parent, name).relative_to(root)), st_.st_size, st_.st_mtime_ns))
    return sorted(out)


def _invoke(args: tuple[str, ...], what: str) -> int:
    """``sgl ARGS`` in this process (a real process costs seconds of imports per command): exit 0, 1
    or 2 with words, never an exception."""
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{what} raised {result.exception!r}:\n{result.output[-3000:]}") from result.exception
    assert "Traceback" not in result.output, f"{what}:\n{result.output[-3000:]}"
    assert result.exit_code in (0, 1, 2), f"{what}: exit {result.exit_code}\n{result.output[-3000:]}"
    if result.exit_code == 2:
        assert result.output.strip(), f"{what}: exit 2 without a word"
    return result.exit_code


def _correct_after_resume(run_dir: Path, finished: Path, damaged: str) -> None:
    """A resume that succeeded leaves a completed run; one from a spoiled checkpoint replays the same run."""
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    if damaged.startswith("checkpoints/") or damaged in ("summary.json",):
        def lines(d: Path) -> list[dict]:
            return [{k: v for k, v in json.loads(x).items() if k != "time"} for x in (d / "metrics.jsonl").read_text().splitlines()]

        assert lines(run_dir) == lines(finished)
        assert (run_dir / "genotypes/alice.json").read_text() == (finished / "genotypes/alice.json").read_text()


def test_damaged_run_files_give_clean_refusals_or_correct_results(finished, tmp_path_factory):
    files = _files(finished)
    assert {"run.json", "metrics.jsonl", "checkpoints/last.pt", "checkpoints/previous.pt", "genotypes/alice.json",
            "summary.json", "spec.resolved.yaml"} <= set(files)
    root = tmp_path_factory.mktemp("cases")
    outside = root / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("not yours\n")
    tried: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(name=st.sampled_from(files), damage=st.sampled_from(sorted(DAMAGES)))
    def case(name, damage):
        run_dir = root / "run"
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(finished, run_dir, ignore=shutil.ignore_patterns(".lock"))
        DAMAGES[damage](run_dir / name, outside)
        tried.append(f"{name}:{damage}")
        before = _tree(root, run_dir)
        for args in (("resume", str(run_dir), "-q"), ("report", str(run_dir)),
                     ("export", str(run_dir), "-l", "alice", "--format", "genotype"),
                     ("export", str(run_dir), "-l", "alice", "--format", "pt", "--network", "W")):
            code = _invoke(args, f"sgl {args[0]} after {damage} {name}")
            if args[0] == "resume" and code == 0:
                _correct_after_resume(run_dir, finished, name)
        assert _tree(root, run_dir) == before, f"a command wrote outside the run directory after {damage} {name}"
        assert (outside / "precious.txt").read_text() == "not yours\n"

    case()
    print(f"{len(tried)} damaged run directories tried: {', '.join(tried)}")
