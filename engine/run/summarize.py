"""The summary of a run (``summary.Summary``) from where it stands: what each learner reached, the
search cost, the evaluations, and across processes the proof that every rank agrees."""

from __future__ import annotations

import hashlib
from typing import Any

from .. import records as R
from ..summary import Distributed, EvaluationResult, LearnerResult, SearchCost, Status, Summary
from .checkpoint import Cursor
from .runtime import Runtime
from .sink import RunSink


def learner_results(runtime: Runtime, sink: RunSink, completed: bool) -> dict[str, LearnerResult]:
    """Each learner's last D_val accuracy, its test accuracy (a completed run's), size and architecture file."""
    test = runtime.test_accuracies() if completed else {}
    results = {}
    for name, learner in runtime.learners.items():
        last = sink.last_epoch(name)
        results[name] = LearnerResult(
            kind=learner.plan.kind, searchable=learner.plan.searchable,
            val_acc={net: last.get(R.val_acc(net)) for net in learner.nets}, test_acc=test.get(name, {}),
            genotype=sink.architecture_file(name) if learner.space is not None else None,
            params_M=sum(p.numel() for p in learner.nets["W"].module.parameters()) / 1e6,
        )
    return results


def distributed(runtime: Runtime, peers_answer: bool) -> Distributed:
    """The processes of the run and, with several that still answer, each rank's fingerprints."""
    collectives = runtime.collectives
    if collectives.world == 1 or not peers_answer:
        return Distributed(processes=collectives.world)
    # Every rank must hold the same architecture; record each rank's fingerprint to prove it.
    fingerprints = collectives.gather_objects(fingerprint(runtime))  # a collective: all are here
    return Distributed(processes=collectives.world, architecture_fingerprints=[f[0] for f in fingerprints],
                       weights_fingerprints=[f[1] for f in fingerprints], ranks_agree=len(set(fingerprints)) == 1)


def fingerprint(runtime: Runtime) -> tuple[str, str]:
    """Digests of every learner's architecture and of its network weights (BatchNorm statistics,
    which each process gathers from its own data, left out): equal on every process."""
    arch, weights = hashlib.sha256(), hashlib.sha256()
    for name in sorted(runtime.learners):
        learner = runtime.learners[name]
        if learner.space is not None:
            for param in learner.space.arch_parameters():
                arch.update(param.detach().cpu().contiguous().numpy().tobytes())
        for net in learner.nets.values():
            for param in net.module.parameters():
                weights.update(param.detach().cpu().contiguous().numpy().tobytes())
    return arch.hexdigest()[:16], weights.hexdigest()[:16]


def summarize(runtime: Runtime, sink: RunSink, cursor: Cursor, status: Status, *, search_hours: float,
              wall_seconds: float, peers_answer: bool) -> Summary:
    plan, collectives = runtime.plan, runtime.collectives
    return Summary(
        name=plan.name, status=status, dataset=plan.data.dataset.name, hypergradient=plan.hypergradient.method,
        seed=plan.seed, epochs_done=plan.search_epochs_before(cursor.stage, cursor.epoch),
        learners=learner_results(runtime, sink, status == "completed"),
        search_cost=SearchCost(device=collectives.device.type, hours=search_hours,
                               device_hours=search_hours * collectives.world, wall_seconds=wall_seconds),
        evaluations=[EvaluationResult.model_validate(e) for e in cursor.completed],
        early_stopped=dict(cursor.early_stopped),
        distributed=distributed(runtime, peers_answer),
    )


def summary_rows(summary: Summary, runtime: Runtime, sink: RunSink) -> list[dict[str, Any]]:
    """The rows of the table printed at the end of a run, under the keys metrics.jsonl uses: each
    learner's result network, and its networks' accuracies (a network's D_val accuracy only once
    it trained: V's before the search stage is an untrained network's)."""
    rows = []
    for name, result in summary.learners.items():
        last = sink.last_epoch(name)
        row: dict[str, Any] = {"learner": name, "kind": result.kind, "result": runtime.plan.learners[name].final_net,
                               "genotype": result.genotype}
        for net in R.NETWORKS:
            trained = last.get(R.train_loss(net)) is not None
            row[R.val_acc(net)] = result.val_acc.get(net) if trained else None
            row[f"test/{net}/acc"] = result.test_acc.get(net)
        rows.append(row)
    return rows
