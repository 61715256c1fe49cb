"""`sgl plan SPEC --estimate` for a spec with a study: each distinct trial (seeds aside: a seed changes
no cost) is timed here as `sgl plan --estimate` times a run, with the threads the study would give
it; the study's wall time is projected by handing the trials, in order, to the slots it would run."""

from __future__ import annotations

import heapq
from typing import Any

from ..plan.compile import compile_spec
from ..specs.study import SEED_KEY
from .resources import choose, cpu_count
from .trials import StudyPlan


def estimate_study(plan: StudyPlan, iterations: int = 3) -> dict[str, Any]:
    from ..run.estimate import estimate

    slots = choose(len(plan.trials), cpu_count(), (), plan.section.parallel, plan.section.threads)
    seconds: dict[tuple[str, ...], float] = {}
    variants = []
    per_trial = []
    for trial in plan.trials:
        key = tuple(c.override for c in trial.choices if c.key != SEED_KEY)
        if key not in seconds:
            compiled = compile_spec(plan.spec_path, [*plan.base_overrides, *trial.overrides,
                                                     f"run.threads={slots.threads}"])
            seconds[key] = estimate(compiled, iterations=iterations).seconds()
            variants.append({"overrides": list(key), "seconds_each": seconds[key], "trials": 0})
        next(v for v in variants if tuple(v["overrides"]) == key)["trials"] += 1
        per_trial.append(seconds[key])
    free = [0.0] * slots.parallel
    for cost in per_trial:  # each trial to the slot that frees first, as the driver hands them out
        heapq.heappush(free, heapq.heappop(free) + cost)
    total = sum(per_trial)
    return {"parallel": slots.parallel, "threads": slots.threads, "variants": variants, "trial_seconds": total,
            "wall_seconds": max(free), "cpu_hours": total * slots.threads / 3600}


def render(data: dict[str, Any]) -> str:
    lines = [f"estimate of the study here: {data['parallel']} trial(s) at once, {data['threads']} thread(s) each"]
    for variant in data["variants"]:
        what = " ".join(variant["overrides"]) or "(the spec's own values)"
        lines.append(f"  {what}: {variant['seconds_each']:.0f} s per trial × {variant['trials']}")
    lines.append(f"  all trials: {data['trial_seconds']:.0f} s of training ({data['cpu_hours']:.2f} CPU-hours); "
                 f"wall time about {data['wall_seconds']:.0f} s ({data['wall_seconds'] / 60:.1f} min), plus a few "
                 "seconds per trial to start its process")
    return "\n".join(lines)
