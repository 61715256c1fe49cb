#!/usr/bin/env bash
# The GPU figures of bench/, in one go (under 8 minutes on one modern GPU):
#   bash bench/gpu.sh            (from the repository root, with the package installed)
# Prints one JSON line per measurement: the SGL iteration (hand loop, engine default, engine plain) at
# the quickstart size and CIFAR shape in fp32 and bf16 with peak memory, the data path per iteration,
# and, when two GPUs are present, a 2-process smoke run of a tiny spec.
#
#   bash bench/gpu.sh --smoke    (any machine, CPU only: about a minute on 2 cores)
# The same steps at tiny sizes on the CPU (--device cpu), the 2-process run on gloo processes: CI
# runs it so the script cannot rot before a GPU is lent. Its figures mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
if [ "$smoke" = 1 ]; then
  export OMP_NUM_THREADS=1
  device=cpu; precisions="no bf16"; sizes="--sizes tiny --iterations 1 --threads 1"
  data="--device cpu --images 500 --iterations 2 --threads 1"; processes=2; timeout_run=300
else
  python - <<'PY'
import torch
assert torch.cuda.is_available(), "bench/gpu.sh needs a CUDA GPU (or: bash bench/gpu.sh --smoke)"
print(f'{{"gpus": {torch.cuda.device_count()}, "name": "{torch.cuda.get_device_name(0)}", "torch": "{torch.__version__}"}}')
PY
  device=cuda; precisions="no bf16"; sizes="--iterations 20 --cifar-iterations 10"
  data="--device cuda --iterations 50"; processes=$(python -c 'import torch; print(torch.cuda.device_count())')
  timeout_run=240
fi
for precision in $precisions; do
  # shellcheck disable=SC2086
  timeout 200 python bench/iteration.py --device "$device" --precision "$precision" $sizes --json
done
# shellcheck disable=SC2086
timeout 120 python bench/data.py $data
if [ "$processes" -ge 2 ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if [ "$smoke" = 1 ]; then
    shape="{name: digits}"; learners="channels: 4, layers: 3, nodes: 2"; precision=no; split="{train: 0.1, val: 0.1}"
  else
    shape="{name: digits, size: 32, channels: 3}"; learners="channels: 8, layers: 5, nodes: 4"; precision=bf16
    split="{train: 0.2, val: 0.2}"
  fi
  cat > "$tmp/smoke.yaml" <<YAML
name: smoke
seed: 1
data: {dataset: $shape, batch_size: 32, split: $split}
learners:
  alice: {kind: darts, $learners}
  bob: {kind: pc_darts, $learners, partial_channels: 2}
stages:
  - {name: warmup, epochs: 1, steps: [W]}
  - {name: search, epochs: 1, steps: [A, W, PL, V]}
  - {name: derive}
run: {log_every: 5, mixed_precision: $precision}
YAML
  timeout "$timeout_run" python -m torch.distributed.run --standalone --nproc_per_node 2 -m sgl.engine.cli.main run "$tmp/smoke.yaml" --run-dir "$tmp/run" -q
  python - "$tmp/run/summary.json" "$smoke" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
d = s["distributed"]
key = "smoke_2_cpu_processes" if sys.argv[2] == "1" else "smoke_2_gpus"
print(json.dumps({key: s["status"], "ranks_agree": d.get("ranks_agree"), "processes": d["processes"],
                  "hours": s["search_cost"]["hours"]}))
assert s["status"] == "completed" and d.get("ranks_agree"), "the two processes disagree"
PY
fi
