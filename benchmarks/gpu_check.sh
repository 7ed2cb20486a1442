#!/usr/bin/env bash
# One prepared device run: GPU tests, then the GPU benchmark on a qwen3-4b-shaped checkpoint.
# Usage (on a CUDA machine, repo root): OUT=/some/dir bash benchmarks/gpu_check.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
OUT=${OUT:-/tmp/tpa-gpu-out}
mkdir -p "$OUT"
nvidia-smi -L | tee "$OUT/gpu_log.txt"
python3 -c "import torch, numpy, scipy; print('torch', torch.__version__, 'numpy', numpy.__version__)" | tee -a "$OUT/gpu_log.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_spectrum.py 2>&1 | tail -5 | tee -a "$OUT/gpu_log.txt"
python3 benchmarks/bench_gpu.py --preset "${PRESET:-qwen3-4b}" --work /tmp/tpa-gpu --out "$OUT/gpu_results.json" 2>&1 \
  | tee -a "$OUT/gpu_log.txt"
