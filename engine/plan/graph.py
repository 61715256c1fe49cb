"""The plan as a graph: one node per step and learner (and per derive / evaluate stage), edges for
the data and gradients that flow between them, and the passes an iteration costs."""

from __future__ import annotations

from sgl.registry.hypergrad import HypergradientConfig

from .types import Edge, LearnerPlan, Node, StagePlan, TrainStagePlan, node_id


def graph(learners: dict[str, LearnerPlan], stages: list[StagePlan],
          method: HypergradientConfig) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
    seen: dict[str, Node] = {}
    for stage in stages:
        if isinstance(stage, TrainStagePlan):
            for action in stage.actions:
                for k in action.learners:
                    seen.setdefault(node_id(action.step, k), Node(node_id(action.step, k), action.step, k))
        else:
            nid = f"{stage.type}:{stage.name}"
            seen.setdefault(nid, Node(nid, stage.type, getattr(stage, "learner", None)))
    edges = []
    for k, lp in learners.items():
        if node_id("PL", k) in seen:
            edges.append(Edge(node_id("W", k), node_id("PL", k), "data", f"W_{k} labels D_u"))
        for j in lp.peers:
            if node_id("V", k) in seen and node_id("PL", j) in seen:
                edges.append(Edge(node_id("PL", j), node_id("V", k), "data", f"q_{j}"))
        if lp.arch_net and node_id("A", k) in seen:
            edges.append(Edge(node_id(lp.arch_net, k), node_id("A", k), "grad", f"L_val through {lp.arch_net}_{k}"))
            if method.follows_pseudo_labels:
                for j in learners:
                    if k in learners[j].peers and node_id("V", j) in seen:
                        edges.append(Edge(node_id("V", j), node_id("A", k), "grad", f"L_val,{j} through q_{k}"))
    for node in seen.values():
        if node.step in ("derive", "evaluate"):
            sources = [node_id("A", k) for k in learners if node_id("A", k) in seen and (node.learner in (None, k))]
            edges += [Edge(src, node.id, "data", "architecture") for src in sources]
    return tuple(seen.values()), tuple(edges)


def passes(method: HypergradientConfig, learners: dict[str, LearnerPlan], steps: set[str]) -> dict[str, dict[str, int]]:
    """Forward/backward passes per iteration, summed over learners, by step."""
    out: dict[str, dict[str, int]] = {}
    n = len(learners)
    if "W" in steps:
        out["W"] = {"forward": n, "backward": n}
    producers = {j for lp in learners.values() for j in lp.peers}
    if "PL" in steps and producers:
        out["PL"] = {"forward": len(producers), "backward": 0}
    if "V" in steps:
        with_u = sum(1 for lp in learners.values() if lp.peers)
        out["V"] = {"forward": n + with_u, "backward": n}
    if "A" in steps:
        totals = {"forward": 0, "backward": 0}
        for lp in learners.values():
            if lp.searchable:
                for key, value in method.passes(len(lp.peers)).items():
                    totals[key] = totals.get(key, 0) + value
        out["A"] = totals
    return out
