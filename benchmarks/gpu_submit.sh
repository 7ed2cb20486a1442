#!/usr/bin/env bash
# On the lent GPU machine: `tpa-dist submit` with Ray (4 GPU workers sharing the card + CPU workers) against the
# seed's GPU method and weightwatcher (torch on CUDA by itself), on a qwen3-4b-shaped checkpoint written there.
# Prepare here: bash benchmarks/device_site.sh   (ray, duckdb, weightwatcher for the device's Python 3.12)
# Device call: command "OUT=$OUT bash benchmarks/gpu_submit.sh", carry [".whl"], timeout_s 590
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 RAY_AUTH_MODE=disabled
OUT=${OUT:-/tmp/tpa-gpu-out}
LOG="$OUT/gpu_submit_log.txt"
mkdir -p "$OUT" /tmp/site
tar -C /tmp/site -xJf .whl/site.tar.xz || { echo "no .whl/site.tar.xz: run benchmarks/device_site.sh here first"; exit 1; }
export PYTHONPATH="/tmp/site:$PWD"
nvidia-smi -L | tee "$LOG"
python3 -c "import ray, duckdb, weightwatcher, torch; print('ray', ray.__version__, 'duckdb', duckdb.__version__,
  'torch', torch.__version__, torch.cuda.get_device_name())" 2>&1 | tee -a "$LOG"
# tpa-dist first (3 runs, ~10-20 s each plus Ray start-up), then each baseline once (minutes each)
python3 benchmarks/bench_peers.py --preset "${PRESET:-qwen3-4b}" --device cuda --runs 3 --methods tpa \
  --out "$OUT/gpu_submit.json" 2>&1 | tee -a "$LOG"
python3 benchmarks/bench_peers.py --preset "${PRESET:-qwen3-4b}" --device cuda --runs 1 --methods seed,ww --merge \
  --out "$OUT/gpu_submit.json" 2>&1 | tee -a "$LOG"
