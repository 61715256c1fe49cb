"""Run directories written before the house was reorganised (#17) still resume, report and export:
their checkpoints name the cursor's epoch count ``epochs_done``, and they have no plan.json."""

from __future__ import annotations

import json
import shutil

import torch

import sgl


def _as_before_17(run_dir):
    """Rewrite a run directory as an earlier version left it."""
    (run_dir / "plan.json").unlink()
    for name in ("last.pt", "previous.pt"):
        path = run_dir / "checkpoints" / name
        if path.exists():
            state = torch.load(path, weights_only=True)
            state["cursor"]["epochs_done"] = state["cursor"].pop("trained_epochs")
            torch.save(state, path)


def test_an_earlier_run_resumes_bit_identically_and_reports(make_spec, tmp_path):
    spec = make_spec(stages=[{"name": "warmup", "epochs": 1, "steps": ["W"]},
                             {"name": "search", "epochs": 1, "steps": ["A", "W", "PL", "V"]}, {"name": "derive"}])
    whole = sgl.run(spec, run_dir=tmp_path / "whole", progress=False)
    stopped = tmp_path / "stopped"
    try:
        sgl.run(spec, run_dir=stopped, stop_after=1, progress=False)
    except sgl.Interrupted:
        pass
    _as_before_17(stopped)
    sgl.resume(stopped, progress=False)

    def lines(path):
        return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in path.read_text().splitlines()]

    assert lines(stopped / "metrics.jsonl") == lines(whole.dir / "metrics.jsonl")
    run = sgl.open_run(stopped)
    assert run.summary.status == "completed" and run.summary.learners["alice"].test_acc == whole.summary.learners["alice"].test_acc
    result = sgl.report([stopped], tmp_path / "report")
    assert result["html"].exists() and not result["failed_expectations"]
    assert sgl.export(stopped, "alice", "pt").exists()
    shutil.rmtree(tmp_path / "report")
