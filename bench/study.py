"""A 4-trial study (local executor) against the same four runs launched one after another by hand.

    python bench/study.py [--json] [--rounds 1] [--spec specs/studies/sgl_ablation_digits.yaml] [--vary K=[..] ...]

The study runs its trials as the driver chooses by default (on 2 cores: two at a time, one thread
each); the hand-run baseline runs each trial alone with every core (``run.threads`` = the cores,
OMP_NUM_THREADS likewise), as a user would. Rounds alternate which goes first. Reported: wall
times, their ratio (study / by hand: at most 1.05 is the target), and the peak memory of each (the
resident set of the whole process tree, sampled every 0.1 s: the study's includes every trial
running at once). By default the four trials are the shipped ablation's K2 learners, λ ∈ {0.5, 2}
× seeds {0, 1}, which also answers which is faster for such trials on 2 cores: two trials of one
thread side by side, or one after the other with two threads each.

A busy machine distorts CPU timings badly, so the script waits for the 1-minute load average to
drop below --max-load and reports the load seen before each measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "specs" / "studies" / "sgl_ablation_digits.yaml"
VARY = ["learners={K2: {alice: {kind: darts, channels: 4, layers: 3, nodes: 3}, bob: {kind: pc_darts, channels: 8, "
        "layers: 3, nodes: 3, partial_channels: 2}}}", "loss_weights.pseudo=[0.5, 2.0]", "seed=[0, 1]"]


def wait_for_idle(max_load: float, timeout: float = 600.0) -> float:
    deadline = time.time() + timeout
    while True:
        load = os.getloadavg()[0]
        if load <= max_load or time.time() > deadline:
            return load
        time.sleep(5)


def _tree_rss(root: int) -> int:
    """Resident KiB of ``root`` and all its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(rss.get(pid, 0) for pid in tree)


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of the command's process tree."""
    peak = [0]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(process.pid))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(command)}")
    return wall, peak[0] / 1024


def trial_overrides(spec: Path, vary: list[str]) -> list[list[str]]:
    from sgl.engine.study.trials import load_study

    study = load_study(spec, vary=vary)
    return [t.overrides for t in study.trials]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--vary", action="append", help="the study's --vary (default: 4 trials of the shipped ablation)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--max-load", type=float, default=0.7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    vary = args.vary or VARY
    trials = trial_overrides(args.spec, vary)
    cores = os.cpu_count() or 1
    sgl = [sys.executable, "-m", "sgl.engine.cli.main"]
    hand_env = {**os.environ, "OMP_NUM_THREADS": str(cores), "MKL_NUM_THREADS": str(cores)}
    result: dict = {"trials": len(trials), "cores": cores, "study_seconds": [], "hand_seconds": [], "ratios": [],
                    "study_peak_mib": 0.0, "hand_peak_mib": 0.0, "load_before": []}
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            def study() -> tuple[float, float]:
                command = [*sgl, "study", str(args.spec), *(f"--vary={v}" for v in vary),
                           "--study-dir", f"{tmp}/study", "-q"]
                return measured(command, dict(os.environ))

            def by_hand() -> tuple[float, float]:
                wall, peak = 0.0, 0.0
                for i, overrides in enumerate(trials):
                    command = [*sgl, "run", str(args.spec), *overrides, f"run.threads={cores}",
                               "--run-dir", f"{tmp}/hand/{i}", "-q"]
                    w, p = measured(command, hand_env)
                    wall, peak = wall + w, max(peak, p)
                return wall, peak

            order = [("study", study), ("hand", by_hand)] if round_ % 2 == 0 else [("hand", by_hand), ("study", study)]
            walls = {}
            for name, fn in order:
                result["load_before"].append(round(wait_for_idle(args.max_load), 2))
                walls[name], peak = fn()
                result[f"{name}_seconds"].append(round(walls[name], 1))
                result[f"{name}_peak_mib"] = round(max(result[f"{name}_peak_mib"], peak), 0)
                if not args.json:
                    print(f"round {round_ + 1} {name}: {walls[name]:.1f} s, peak {peak:.0f} MiB", flush=True)
            result["ratios"].append(round(walls["study"] / walls["hand"], 3))
    result["ratio_median"] = statistics.median(result["ratios"])
    result["within_target"] = result["ratio_median"] <= 1.05
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"study / by hand: {result['ratio_median']:.3f} (target ≤ 1.05); peak memory: study "
              f"{result['study_peak_mib']:.0f} MiB, by hand {result['hand_peak_mib']:.0f} MiB; {cores} cores")


if __name__ == "__main__":
    main()
