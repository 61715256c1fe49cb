"""Wall time and peak memory of the quickstart (`sgl run specs/quickstart.yaml`), median of N runs.

    python bench/quickstart.py [--runs 3] [--spec specs/quickstart.yaml] [--plain] [KEY=VALUE ...]

With ``--plain`` each run of the default path (the fused supernets) alternates with one of the plain
networks (``run.fused=false``), and their ratio is printed too.

A busy machine distorts CPU timings badly (two processes with two threads each on two cores can
run ten times slower), so the script refuses to start while the 1-minute load average is above
--max-load, and reports the load seen before each run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wait_for_idle(max_load: float, timeout: float = 120.0) -> float:
    deadline = time.time() + timeout
    while True:
        load = os.getloadavg()[0]
        if load <= max_load:
            return load
        if time.time() > deadline:
            sys.exit(f"machine is busy (1-minute load {load:.2f} > {max_load}); stop other work and retry")
        time.sleep(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spec", default=str(REPO / "specs/quickstart.yaml"))
    parser.add_argument("--max-load", type=float, default=0.7)
    parser.add_argument("--plain", action="store_true", help="alternate with runs of the plain networks")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    ways = {"default": list(args.overrides)}
    if args.plain:
        ways["plain"] = [*args.overrides, "run.fused=false"]
    times: dict[str, list[float]] = {way: [] for way in ways}
    peaks: dict[str, list[float]] = {way: [] for way in ways}
    for i in range(args.runs):
        for way, overrides in ways.items():
            load = wait_for_idle(args.max_load)
            wall, peak = one_run(args.spec, overrides)
            times[way].append(wall)
            peaks[way].append(peak)
            print(f"run {i + 1} ({way}): {wall:.1f} s, peak RSS {peak:.0f} MiB (load before {load:.2f})", flush=True)
    for way in ways:
        print(f"quickstart ({way}): median {statistics.median(times[way]):.1f} s wall, peak RSS {max(peaks[way]):.0f} MiB, "
              f"{os.cpu_count()} CPUs, torch threads default")
    if args.plain:
        print(f"plain / default: {statistics.median(times['plain']) / statistics.median(times['default']):.2f}")


def one_run(spec: str, overrides: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one `sgl run` in a process of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        # a child of its own measures its own peak (RUSAGE_CHILDREN keeps the largest child so far)
        code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "sgl.engine.cli.main", "run", spec,
                              *overrides, "--run-dir", str(Path(tmp) / "run"), "-q"],
                             check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - start
    return wall, int(out.split()[-1]) / 1024  # KiB on Linux


if __name__ == "__main__":
    main()
