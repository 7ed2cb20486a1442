#!/usr/bin/env bash
# One prepared device run for --rmt (issue 25): the GPU tests (CUDA path against float64 scipy and the CPU), then
# `tpa-dist submit` on the qwen3-0.6b shapes on the GPU, default and --rmt, timed side by side.
# Carry [".whl"] (bash benchmarks/device_site.sh first). Device call: "OUT=$OUT bash benchmarks/rmt_gpu_check.sh"
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 RAY_AUTH_MODE=disabled
OUT=${OUT:-/tmp/tpa-gpu-out}
LOG="$OUT/rmt_gpu_log.txt"
mkdir -p "$OUT"
if [ -f .whl/site.tar.xz ]; then
  mkdir -p /tmp/site && tar -C /tmp/site -xJf .whl/site.tar.xz && export PYTHONPATH="/tmp/site:$PWD"
fi
nvidia-smi -L | tee "$LOG"
python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_gpu.py 2>&1 | tail -5 | tee -a "$LOG"
python3 -m tpa_dist synth qwen3-0.6b --out /tmp/q06 >/dev/null
TIMEFORMAT="wall %R s"
for args in "" "--rmt" "" "--rmt"; do
  db="/tmp/run-$RANDOM.duckdb"
  echo "submit $args" | tee -a "$LOG"
  { time python3 -m tpa_dist submit --models "q=/tmp/q06" --db "$db" --no-embedding --no-report --quiet --no-progress \
      $args 2>&1 | tail -1 ; } 2>&1 | tee -a "$LOG"
done
