#!/usr/bin/env bash
# One prepared device run: GPU tests; benchmarks/bench_gpu.py on a qwen3-4b-shaped checkpoint written there (kernels,
# GPU vs CPU results, the seed's GPU method vs tpa-dist's GPU worker, and `tpa-dist submit` with Ray when
# importable); then weightwatcher (torch on CUDA by itself) on the same checkpoint.
# The device image lacks ray, duckdb and weightwatcher: build .whl/site.tar.xz here first
# (bash benchmarks/device_site.sh, 48 MB) and carry it. Device call:
#   command "OUT=$OUT bash benchmarks/gpu_check.sh", carry [".whl"], timeout_s 590
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 RAY_AUTH_MODE=disabled
OUT=${OUT:-/tmp/tpa-gpu-out}
PRESET=${PRESET:-qwen3-4b}
BENCH_ARGS=${BENCH_ARGS:-}  # e.g. --skip-kernels (the per-shape kernel table is in BENCHMARKS.md already)
LOG="$OUT/gpu_log.txt"
mkdir -p "$OUT"
if [ -f .whl/site.tar.xz ]; then
  mkdir -p /tmp/site && tar -C /tmp/site -xJf .whl/site.tar.xz && export PYTHONPATH="/tmp/site:$PWD"
fi
nvidia-smi -L | tee "$LOG"
python3 -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__)" | tee -a "$LOG"
python3 -c "import ray, duckdb, weightwatcher; print('ray', ray.__version__, 'duckdb', duckdb.__version__)" 2>&1 \
  | tail -1 | tee -a "$LOG"
python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_gpu.py tests/test_spectrum.py 2>&1 | tail -5 | tee -a "$LOG"
python3 benchmarks/bench_gpu.py --preset "$PRESET" --work /tmp/tpa-gpu --out "$OUT/gpu_results.json" $BENCH_ARGS 2>&1 \
  | tee -a "$LOG"
python3 benchmarks/bench_peers.py --preset "$PRESET" --folder "/tmp/tpa-gpu/$PRESET" --device cuda --runs 1 \
  --methods ww --out "$OUT/gpu_peers.json" 2>&1 | tee -a "$LOG"
