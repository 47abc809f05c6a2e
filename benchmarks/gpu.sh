#!/usr/bin/env bash
# The benchmarks on the first CUDA device, each under a time limit so that one that hangs leaves the others'
# figures: stacked LeNet-5s (fp32, then bf16), then the engine against the notebook loop and the 12-run study.
# Usage: bash benchmarks/gpu.sh [OUTDIR]   (default: benchmarks/results; PYTHON defaults to python3)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-benchmarks/results}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
timeout 180 "$PY" benchmarks/bench_stacked.py --separate-max 2 --out "$OUT_DIR/stacked-gpu.json"
timeout 80 "$PY" benchmarks/bench_stacked.py --precision bf16 --ks 32 128 --separate-max 1 \
    --out "$OUT_DIR/stacked-gpu-bf16.json"
timeout 300 "$PY" benchmarks/bench_training.py --device cuda --repeats 1 --out "$OUT_DIR/training-gpu.json"
