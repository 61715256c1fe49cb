"""Wall time and peak memory of the quickstart (`sgl run specs/quickstart.yaml`), median of N runs.

    python bench/quickstart.py [--runs 3] [--spec specs/quickstart.yaml] [KEY=VALUE ...]

A busy machine distorts CPU timings badly (two processes with two threads each on two cores can
run ten times slower), so the script refuses to start while the 1-minute load average is above
--max-load, and reports the load seen before each run.
"""

from __future__ import annotations

import argparse
import os
import resource
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
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    times, peaks = [], []
    for i in range(args.runs):
        load = wait_for_idle(args.max_load)
        with tempfile.TemporaryDirectory() as tmp:
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sgl.engine.cli.main", "run", args.spec, *args.overrides,
                            "--run-dir", str(Path(tmp) / "run"), "-q"], check=True)
            wall = time.perf_counter() - start
            # ru_maxrss of children is the largest child so far (KiB on Linux).
            peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
        times.append(wall)
        peaks.append(peak)
        print(f"run {i + 1}: {wall:.1f} s, peak RSS {peak:.0f} MiB (load before {load:.2f})", flush=True)
    print(f"quickstart: median {statistics.median(times):.1f} s wall, peak RSS {max(peaks):.0f} MiB, "
          f"{os.cpu_count()} CPUs, torch threads default")


if __name__ == "__main__":
    main()
