"""Peak RSS of one analysis is bounded by the block budget, not by the matrix size."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from .conftest import write_safetensors

PROBE = r"""
import json, sys
from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.compute.tasks import tasks_for_tensor
from tpa_dist.compute.analysis import analyze_task
import numpy as np
def hwm_kib():  # VmHWM: peak RSS of this process image (ru_maxrss would include the parent's, across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
np.zeros(1)  # libraries loaded before the baseline
base = hwm_kib()
(info,) = open_model(sys.argv[1]).tensors()
(task,) = tasks_for_tensor("m", "r", info)
row, sv = analyze_task(task, block_bytes=int(sys.argv[2]))
peak = hwm_kib()
print(json.dumps({"base_kib": base, "peak_kib": peak, "status": row["status"], "rank": row["actual_rank"],
                  "sv0": float(sv[0]), "mean": row["mean"]}))
"""


def _probe(folder, block_bytes: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder), str(block_bytes)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _tall(tmp_path, rows: int, cols: int = 256):
    folder = tmp_path / f"tall{rows}"
    folder.mkdir()
    rng = np.random.default_rng(rows)
    bits = (rng.standard_normal((rows, cols), dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    write_safetensors(folder / "model.safetensors", {"model.embed_tokens.weight": ("BF16", bits, (rows, cols))})
    return folder


def test_peak_rss_independent_of_row_count(tmp_path):
    budget = 8 << 20
    small = _probe(_tall(tmp_path, 10_000), budget)
    large = _probe(_tall(tmp_path, 1_000_000), budget)  # 512 MB stored, 2 GB as float64
    assert small["status"] == large["status"] == "ok"
    assert small["rank"] == large["rank"] == 256
    growth_small = small["peak_kib"] - small["base_kib"]
    growth_large = large["peak_kib"] - large["base_kib"]
    # the large matrix is 100x the rows; its analysis may use at most a few blocks more
    assert growth_large < growth_small + 4 * budget // 1024, (growth_small, growth_large)
    assert growth_large < 64 * 1024  # far below the 2 GiB a whole-matrix float64 load would take
