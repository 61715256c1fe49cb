"""Engine overhead: one SGL search iteration through the executor vs a hand-written PyTorch loop.

    python bench/iteration.py [--iterations 20] [--learners 2] [--threads 2]

Both sides run the same math on the same networks (digits 8x8, DARTS supernets, first-order
A-step, then W, PL and V steps for every learner, the authors' order) from the same initial
weights; the script prints the median seconds per iteration of each and their ratio. The hand
loop is deliberately plain: what a researcher forking DARTS' train_search.py would write.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
SPEC = """
name: bench
seed: 0
data: {{dataset: digits, batch_size: 64}}
learners:
{learners}
stages:
  - {{epochs: 1, steps: [A, W, PL, V]}}
run: {{cpu: true, log_every: 1000000}}
"""


def hand_iteration(learners, opts, arch_opts, x, y, xu, xv, yv, clip=5.0) -> None:
    # A: first order through V on the validation batch
    for k, (space, w, v) in learners.items():
        arch_opts[k].zero_grad()
        loss = F.cross_entropy(v(xv, space()), yv)
        grads = torch.autograd.grad(loss, space.arch_parameters(), allow_unused=True)
        for p, g in zip(space.arch_parameters(), grads):
            p.grad = torch.zeros_like(p) if g is None else g
        arch_opts[k].step()
    # W
    for k, (space, w, v) in learners.items():
        with torch.no_grad():
            arch = space()
        opts[k, "W"].zero_grad()
        F.cross_entropy(w(x, arch), y).backward()
        torch.nn.utils.clip_grad_norm_(w.parameters(), clip)
        opts[k, "W"].step()
    # PL
    labels = {}
    with torch.no_grad():
        for k, (space, w, v) in learners.items():
            labels[k] = F.softmax(w(xu, space()), dim=1)
    # V
    for k, (space, w, v) in learners.items():
        with torch.no_grad():
            arch = space()
        opts[k, "V"].zero_grad()
        loss = F.cross_entropy(v(x, arch), y)
        logits_u = v(xu, arch)
        for j in learners:
            if j != k:
                loss = loss - (labels[j] * F.log_softmax(logits_u, dim=1)).sum(1).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(v.parameters(), clip)
        opts[k, "V"].step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--learners", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    if load > 0.7:
        print(f"warning: 1-minute load is {load:.2f}; timings on a busy machine are unreliable", file=sys.stderr)

    import tempfile

    from sgl.engine.runner import build_runner

    names = [f"l{i}" for i in range(args.learners)]
    learners_yaml = "\n".join(f"  {n}: {{kind: darts, channels: 8, layers: 5, nodes: 4}}" for n in names)
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "bench.yaml"
        spec_path.write_text(SPEC.format(learners=learners_yaml))
        runner = build_runner(spec_path)

    # The hand loop gets its own copies of the same networks, optimizers built as DARTS does.
    import copy

    hand, opts, arch_opts = {}, {}, {}
    for k, learner in runner.learners.items():
        space = copy.deepcopy(learner.space)
        w, v = copy.deepcopy(learner.nets["W"].module), copy.deepcopy(learner.nets["V"].module)
        hand[k] = (space, w, v)
        for name, net in (("W", w), ("V", v)):
            opts[k, name] = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
        arch_opts[k] = torch.optim.Adam(space.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    streams = runner.streams

    def batches():
        x, y = streams["train"].next()
        return x, y, streams["unlabeled"].next()[0], *streams["val"].next()

    engine_times, hand_times = [], []
    for _ in range(args.iterations + 2):  # two warm-up iterations of each, not timed
        start = time.perf_counter()
        runner.search_iteration()
        engine_times.append(time.perf_counter() - start)
        data = batches()
        start = time.perf_counter()
        hand_iteration(hand, opts, arch_opts, *data)
        hand_times.append(time.perf_counter() - start)
    engine_med, hand_med = statistics.median(engine_times[2:]), statistics.median(hand_times[2:])
    print(f"{args.learners} DARTS learners (5 cells, C=8, 8x8, batch 64), {args.threads} threads, "
          f"{args.iterations} iterations: engine {engine_med:.3f} s/it, hand-written {hand_med:.3f} s/it, "
          f"ratio {engine_med / hand_med:.3f}")


if __name__ == "__main__":
    main()
