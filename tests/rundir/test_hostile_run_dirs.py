"""Issue #20, the run directory's part, with real processes and real files: metrics shorter than the
checkpoint says (1), --overwrite of a folder that is no run (3), an edited definition (4), links
where a run's files belong (5), a kill while the directory is set up (10)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import sgl_cli as sgl, tiny_spec_text

#: One small searchable learner: a warm-up epoch, a search epoch, the genotype (4 iterations an epoch).
SPEC = tiny_spec_text("hostile", 3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A spec, its uninterrupted run, and the same run stopped after its first epoch."""
    root = tmp_path_factory.mktemp("hostile")
    spec = root / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    straight, stopped = root / "straight", root / "stopped"
    for run_dir, extra in ((straight, ()), (stopped, ("--stop-after", "1"))):
        result = sgl("run", str(spec), "--run-dir", str(run_dir), "-q", *extra, cwd=root)
        assert result.returncode == 0, result.stderr
    return {"root": root, "spec": spec, "straight": straight, "stopped": stopped}


def copy(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to, ignore=shutil.ignore_patterns(".lock"))
    return to


def refused(result: subprocess.CompletedProcess[str], *words: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    return result.stderr


def same_run(a: Path, b: Path) -> None:
    """Metrics (but their times), genotypes and every final weight, bit for bit."""
    def lines(run_dir: Path) -> list[dict]:
        return [{k: v for k, v in json.loads(line).items() if k != "time"}
                for line in (run_dir / "metrics.jsonl").read_text().splitlines()]

    assert lines(a) == lines(b)
    assert (a / "genotypes/alice.json").read_text() == (b / "genotypes/alice.json").read_text()
    wa = torch.load(a / "checkpoints/last.pt", weights_only=True)["learners"]
    wb = torch.load(b / "checkpoints/last.pt", weights_only=True)["learners"]
    for net in wa["alice"]["nets"]:
        for key, tensor in wa["alice"]["nets"][net]["module"].items():
            assert torch.equal(tensor, wb["alice"]["nets"][net]["module"][key]), key


# --------------------------------------------------------------------------- 1: metrics short of the checkpoint


@pytest.mark.parametrize("cut", ["half", "empty", "deleted"])
def test_metrics_shorter_than_the_checkpoint_says_are_refused_never_padded(runs, tmp_path, cut):
    run_dir = copy(runs["stopped"], tmp_path / "run")
    metrics = run_dir / "metrics.jsonl"
    size = metrics.stat().st_size
    if cut == "deleted":
        metrics.unlink()
    else:
        metrics.write_bytes(metrics.read_bytes()[: size // 2 if cut == "half" else 0])
    before = metrics.read_bytes() if metrics.exists() else None
    message = refused(sgl("resume", str(run_dir), "-q", cwd=tmp_path), "metrics.jsonl holds",
                      f"the checkpoint counts {size:,}", "sgl never pads a file")
    assert (metrics.read_bytes() if metrics.exists() else None) == before, "the short file was changed"
    assert message.count("\n") == 1


def test_the_metrics_reach_the_disk_before_the_checkpoint_that_counts_them(runs, tmp_path, monkeypatch):
    """A power cut keeps what was synced: every checkpoint is synced after the metrics it counts."""
    from sgl.engine.run.executor import RunOptions
    from sgl.engine.rundir import layout
    from sgl.engine.rundir.session import run_spec

    events: list[str] = []
    real_fsync, real_log = os.fsync, layout.RunDir.log

    def fsync(fd):
        events.append(f"sync {os.path.basename(os.readlink(f'/proc/self/fd/{fd}'))}")
        return real_fsync(fd)

    def log(self, record):
        events.append("append metrics.jsonl")
        return real_log(self, record)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(layout.RunDir, "log", log)
    run_spec(runs["spec"], ["run.checkpoint_every=0.00005"], RunOptions(run_dir=tmp_path / "run", progress=False))
    checkpoints = [i for i, e in enumerate(events) if e.startswith("sync .incoming.pt.")]
    assert len(checkpoints) > 4
    for at in checkpoints:
        appended = [i for i in range(at) if events[i] == "append metrics.jsonl"]
        if appended:
            assert "sync metrics.jsonl" in events[appended[-1]:at], events[max(0, at - 8):at + 1]


# --------------------------------------------------------------------------- 3: --overwrite


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(runs, tmp_path):
    project = tmp_path / "my_project"
    project.mkdir()
    (project / "thesis.tex").write_text("three years of work")
    result = sgl("run", str(runs["spec"]), "--run-dir", str(project), "--overwrite", "-q", cwd=tmp_path)
    refused(result, "--overwrite replaces only a run directory", "thesis.tex", "Nothing was deleted")
    assert (project / "thesis.tex").read_text() == "three years of work"
    assert sorted(p.name for p in project.iterdir()) == ["thesis.tex"]  # not even a lock file left behind


def test_overwrite_replaces_a_run_or_an_empty_folder_and_nothing_else(runs, tmp_path):
    from sgl.engine.errors import RunDirError
    from sgl.engine.rundir.claim import new_run_dir

    empty = tmp_path / "empty"
    empty.mkdir()
    path, lock = new_run_dir(tmp_path, "x", empty, overwrite=True)
    lock.release()
    run = copy(runs["stopped"], tmp_path / "run")
    path, lock = new_run_dir(tmp_path, "x", run, overwrite=True)
    lock.release()
    assert [p.name for p in path.iterdir()] == [".lock"]  # the old run replaced
    mixed = copy(runs["stopped"], tmp_path / "mixed")
    (mixed / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="notes.txt, which no run writes"):
        new_run_dir(tmp_path, "x", mixed, overwrite=True)
    figures_only = tmp_path / "figures_only"
    (figures_only / "figures").mkdir(parents=True)
    with pytest.raises(RunDirError, match="none of a run's files"):
        new_run_dir(tmp_path, "x", figures_only, overwrite=True)
    link = tmp_path / "link"
    link.symlink_to(run)
    with pytest.raises(RunDirError, match="is a symbolic link"):
        new_run_dir(tmp_path, "x", link, overwrite=True)
    assert (mixed / "notes.txt").exists() and (figures_only / "figures").is_dir() and run.is_dir()


# --------------------------------------------------------------------------- 4: an edited definition


def test_an_edited_resolved_spec_is_refused_naming_what_changed(runs, tmp_path):
    run_dir = copy(runs["stopped"], tmp_path / "run")
    resolved = run_dir / "spec.resolved.yaml"
    assert "    lr: 0.025\n" in resolved.read_text()
    resolved.write_text(resolved.read_text().replace("    lr: 0.025\n", "    lr: 0.05\n", 1))
    message = refused(sgl("resume", str(run_dir), "-q", cwd=tmp_path), "spec.resolved.yaml changed since the run began",
                      "learners.alice.networks.W.optimizer.lr: 0.025 → 0.05", "undo the edit")
    assert message.count("\n") == 1
    refused(sgl("export", str(run_dir), "-l", "alice", "--format", "pt", "--network", "W", cwd=tmp_path),
            "spec.resolved.yaml changed")
    assert not (run_dir / "export").exists()


def test_an_edited_spec_or_plan_is_refused(runs, tmp_path):
    for name, edit in (("spec.yaml", lambda t: t.replace("seed: 3", "seed: 4")),
                       ("plan.json", lambda t: t.replace('"seed": 3', '"seed": 4'))):
        run_dir = copy(runs["stopped"], tmp_path / name)
        (run_dir / name).write_text(edit((run_dir / name).read_text()))
        refused(sgl("resume", str(run_dir), "-q", cwd=tmp_path), f"{name} changed since the run began")


def test_a_run_json_without_digests_is_accepted_with_a_note(runs, tmp_path):
    run_dir = copy(runs["straight"], tmp_path / "old")
    info = json.loads((run_dir / "run.json").read_text())
    del info["digests"]
    (run_dir / "run.json").write_text(json.dumps(info))
    result = sgl("resume", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "records no digests" in result.stdout and "already complete" in result.stdout, result.stdout


# --------------------------------------------------------------------------- 5: links


def _outside(tmp_path: Path) -> Path:
    target = tmp_path / "outside" / "precious.txt"
    target.parent.mkdir()
    target.write_text("not yours\n")
    return target


@pytest.mark.parametrize("name", [".lock", "metrics.jsonl", "checkpoints", "genotypes/alice.history.jsonl",
                                  "summary.json", "figures"])
def test_links_where_a_runs_files_belong_are_refused_and_nothing_outside_changes(runs, tmp_path, name):
    run_dir = copy(runs["stopped"], tmp_path / "run")
    target = _outside(tmp_path)
    if (run_dir / name).is_dir():
        shutil.rmtree(run_dir / name)
        (run_dir / name).symlink_to(target.parent, target_is_directory=True)
    else:
        (run_dir / name).unlink(missing_ok=True)
        (run_dir / name).symlink_to(target)
    before = sorted((p.name, p.read_bytes(), p.stat().st_mtime_ns) for p in target.parent.iterdir())
    refused(sgl("resume", str(run_dir), "-q", cwd=tmp_path), "symbolic links or special files", f"{name} (link)")
    refused(sgl("report", str(run_dir), cwd=tmp_path), "symbolic links")
    refused(sgl("export", str(run_dir), "-l", "alice", "--format", "genotype", cwd=tmp_path), "symbolic links")
    assert sorted((p.name, p.read_bytes(), p.stat().st_mtime_ns) for p in target.parent.iterdir()) == before


def test_a_fifo_where_a_file_belongs_is_refused_not_waited_on(runs, tmp_path):
    run_dir = copy(runs["straight"], tmp_path / "run")
    (run_dir / "summary.json").unlink()
    os.mkfifo(run_dir / "summary.json")
    refused(sgl("report", str(run_dir), cwd=tmp_path), "summary.json (FIFO)")


def test_appending_through_a_link_is_refused_even_unchecked(tmp_path):
    from sgl.engine.errors import RunDirError
    from sgl.engine.rundir.layout import RunDir

    target = _outside(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").symlink_to(target)
    (run_dir / "genotypes").symlink_to(target.parent, target_is_directory=True)
    rundir = RunDir(run_dir)
    with pytest.raises(RunDirError, match="metrics.jsonl"):
        rundir.log({"kind": "iter"})
    with pytest.raises(RunDirError, match="genotypes"):
        rundir.append_jsonl(rundir.architecture_history("alice"), {"epoch": 0})
    with pytest.raises(RunDirError, match="genotypes"):
        rundir.write_json(rundir.architecture("alice"), {})
    assert sorted(p.name for p in target.parent.iterdir()) == ["precious.txt"]
    assert target.read_text() == "not yours\n"


# --------------------------------------------------------------------------- 10: a kill during set-up


@pytest.mark.parametrize("nth", [3, 5])
def test_a_kill_while_the_directory_is_set_up_resumes_by_itself(runs, tmp_path, nth):
    run_dir = tmp_path / "run"
    killed = sgl("run", str(runs["spec"]), "--run-dir", str(run_dir), "-q", cwd=tmp_path, env={"SGL_CRASH_AT": f"write:{nth}"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (run_dir / "run.json").exists() and not (run_dir / "env.json").exists()
    resumed = sgl("resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "was stopped while it was being set up (now finished: " in resumed.stdout, resumed.stdout
    same_run(runs["straight"], run_dir)
    for name in ("spec.yaml", "spec.resolved.yaml", "plan.json", "plan.txt"):
        assert (run_dir / name).read_bytes() == (runs["straight"] / name).read_bytes(), name


def test_a_kill_during_set_up_whose_spec_changed_since_is_refused_with_the_command(runs, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    run_dir = tmp_path / "run"
    killed = sgl("run", str(spec), "seed=3", "--run-dir", str(run_dir), "-q", cwd=tmp_path, env={"SGL_CRASH_AT": "write:2"})
    assert killed.returncode == -signal.SIGKILL
    spec.write_text(SPEC.replace("seed: 3", "seed: 9"))
    refused(sgl("resume", str(run_dir), cwd=tmp_path), "was stopped while it was being set up", "has changed since",
            f"`sgl run {spec} seed=3 --run-dir {run_dir} --overwrite`")
