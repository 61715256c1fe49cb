#!/usr/bin/env bash
# The GPU figures of bench/, in one go (under 8 minutes on one modern GPU):
#   bash bench/gpu.sh            (from the repository root, with the package installed)
# Prints one JSON line per measurement: the SGL iteration (hand loop, engine, engine fused) at the
# quickstart size and CIFAR shape in fp32 and bf16 with peak memory, the data path per iteration,
# and, when two GPUs are present, a 2-process smoke run of a tiny spec.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
python - <<'PY'
import torch
assert torch.cuda.is_available(), "bench/gpu.sh needs a CUDA GPU"
print(f'{{"gpus": {torch.cuda.device_count()}, "name": "{torch.cuda.get_device_name(0)}", "torch": "{torch.__version__}"}}')
PY
for precision in no bf16; do
  timeout 200 python bench/iteration.py --device cuda --precision "$precision" --iterations 20 --cifar-iterations 10 --json
done
timeout 60 python bench/data.py --device cuda --iterations 50
if [ "$(python -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  tmp=$(mktemp -d)
  cat > "$tmp/smoke.yaml" <<'YAML'
name: smoke
seed: 1
data: {dataset: {name: digits, size: 32, channels: 3}, batch_size: 32, split: {train: 0.2, val: 0.2}}
learners:
  alice: {kind: darts, channels: 8, layers: 5, nodes: 4}
  bob: {kind: pc_darts, channels: 8, layers: 5, nodes: 4, partial_channels: 2}
stages:
  - {name: warmup, epochs: 1, steps: [W]}
  - {name: search, epochs: 1, steps: [A, W, PL, V]}
  - {name: derive}
run: {log_every: 5, mixed_precision: bf16}
YAML
  timeout 240 torchrun --standalone --nproc_per_node 2 -m sgl.engine.cli run "$tmp/smoke.yaml" --run-dir "$tmp/run" -q
  python - "$tmp/run/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
d = s["distributed"]
print(json.dumps({"smoke_2_gpus": s["status"], "ranks_agree": d.get("ranks_agree"), "processes": d["processes"],
                  "hours": s["search_cost"]["hours"]}))
assert s["status"] == "completed" and d.get("ranks_agree"), "the two processes disagree"
PY
fi
