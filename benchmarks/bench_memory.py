"""Memory bound of streaming: a 1,000,000 × 1024 bf16 matrix (2 GB on disk, 8 GB as float64) analyzed within
the same block budget as a 10,000 × 1024 one; results equal whatever the block size.

Usage: python benchmarks/bench_memory.py [--budget-mib 16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROBE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
import numpy as np
from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.compute.tasks import tasks_for_tensor
from tpa_dist.compute.analysis import analyze_task
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
np.zeros(1)
base = hwm()
(info,) = open_model(sys.argv[1]).tensors()
(task,) = tasks_for_tensor("m", "r", info)
t0 = time.perf_counter()
row, sv = analyze_task(task, block_bytes=int(sys.argv[2]))
print("RESULT " + json.dumps({"rss_growth_mib": (hwm() - base) / 1024, "seconds": time.perf_counter() - t0,
                              "status": row["status"], "actual_rank": row["actual_rank"], "sv": sv.tolist()}))
"""


def probe(folder: Path, block: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder), str(block), str(ROOT)], capture_output=True, text=True, check=True
    )
    return json.loads(next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))[7:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-mib", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "memory.json"))
    args = ap.parse_args()
    import numpy as np

    from tpa_dist.sources.synth.writer import TensorSpec, _write_shard

    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (10_000, 1_000_000):
            folder = Path(tmp) / f"m{rows}"
            folder.mkdir()
            _write_shard(
                folder / "model.safetensors", [TensorSpec("model.embed_tokens.weight", (rows, 1024), "BF16")], seed=0
            )
            small = probe(folder, args.budget_mib << 20)
            big = probe(folder, 16 * args.budget_mib << 20)
            a, b = np.asarray(small.pop("sv")), np.asarray(big.pop("sv"))
            res[rows] = {
                "budget_mib": args.budget_mib,
                **small,
                "rss_growth_mib_16x_budget": big["rss_growth_mib"],
                "max_rel_diff_vs_16x_blocks": float(np.max(np.abs(a - b)) / a[0]),
            }
            print(rows, res[rows], flush=True)
    Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
