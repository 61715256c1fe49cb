"""A sweep of kill points (slow; not part of the suite): every one must resume bit-identically.

    python tests/sweep_kills.py [--points iteration:1-12 checkpoint:1-15 write:1-20 summary:1]

For each point, `sgl run` of SMALL (tests/conftest.py; a checkpoint after every iteration) is
killed there with SIGKILL (``SGL_CRASH_AT``), `sgl resume` finishes it, and the run is compared with
an uninterrupted one: metrics, genotypes and every weight. A kill inside the set-up's first write
(run.json's, before anything of the spec is on disk) cannot be resumed: resume must say so, and the
advised ``sgl run --overwrite`` is compared instead; a kill later in the set-up is finished by
resume itself. Prints one line per point and a count.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import EVERY, SMALL, assert_same_run, build_spec, run_sgl as sgl  # noqa: E402


def _points(specs: list[str]) -> list[tuple[str, int]]:
    out = []
    for spec in specs:
        name, _, numbers = spec.partition(":")
        low, _, high = numbers.partition("-")
        out += [(name, n) for n in range(int(low), int(high or low) + 1)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", nargs="+", default=["iteration:1-12", "checkpoint:1-15", "write:1-20", "summary:1"])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    try:
        spec = build_spec(tmp / "spec.yaml", SMALL)
        straight = tmp / "straight"
        assert sgl("run", str(spec), *EVERY, "--run-dir", str(straight), "-q", cwd=tmp).returncode == 0
        tried = same = restarts = 0
        for point, nth in _points(args.points):
            run_dir = tmp / f"{point}-{nth}"
            killed = sgl("run", str(spec), *EVERY, "--run-dir", str(run_dir), "-q", cwd=tmp, env={"SGL_CRASH_AT": f"{point}:{nth}"})
            if killed.returncode != -signal.SIGKILL:
                print(f"{point}:{nth}: not reached (the run has fewer such points)")
                continue
            tried += 1
            resumed = sgl("resume", str(run_dir), "-q", cwd=tmp)
            how = "resumed"
            if resumed.returncode == 2 and "was being set up" in resumed.stdout:
                # killed inside run.json's write: nothing of the spec on disk; resume says to start again: do so
                how, restarts = "resume said to start again, started again", restarts + 1
                resumed = sgl("run", str(spec), *EVERY, "--run-dir", str(run_dir), "--overwrite", "-q", cwd=tmp)
            try:
                assert resumed.returncode == 0, resumed.stdout
                assert_same_run(straight, run_dir)
                assert not list(run_dir.rglob(".*.tmp"))
                same += 1
                print(f"{point}:{nth}: killed, {how}, bit-identical", flush=True)
            except AssertionError as exc:
                print(f"{point}:{nth}: DIFFERENT: {exc}", flush=True)
            shutil.rmtree(run_dir, ignore_errors=True)
        print(f"{tried} kill points tried, {same} bit-identical to the uninterrupted run "
              f"({restarts} of them killed before run.json and started again as resume advised)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
