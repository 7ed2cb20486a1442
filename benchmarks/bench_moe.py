"""Large MoE: tens of thousands of small expert matrices. tpa-dist submit's matrix rate against the kernel
floor (the same per-matrix routine in one process, no Ray), to show that batching hides the round trips.

Usage: python benchmarks/bench_moe.py [--experts 512 --layers 16] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, logging, os, sys, time
sys.path.insert(0, sys.argv[3])
method, folder, out = sys.argv[1], sys.argv[2], {}
if method == "floor":
    from threadpoolctl import threadpool_limits
    from tpa_dist.compute.analysis import analyze_task
    from tpa_dist.checkpoint.catalog import open_model
    from tpa_dist.compute.tasks import tasks_for_tensor
    with threadpool_limits(os.cpu_count()):
        tasks = [t for i in open_model(folder).tensors() for t in tasks_for_tensor("m", "r", i) if t.kind == "matrix"]
        t0 = time.perf_counter()
        for t in tasks:
            analyze_task(t)
        out.update(matrices=len(tasks), wall_s=time.perf_counter() - t0)
else:
    import ray
    from tpa_dist.run.driver import submit
    from tpa_dist.jobs import Job
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    t0 = time.perf_counter()
    s = submit(Job.create(models=(folder,), db=os.path.join(sys.argv[4], f"{time.time_ns()}.duckdb"), output_dir=sys.argv[4],
                   progress=False, force=True, embedding=False))
    assert s.ok, s.describe()
    out.update(tasks=s.done, analysis_s=s.seconds, wall_s=time.perf_counter() - t0)
print("RESULT " + json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--experts", type=int, default=512)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "moe.json"))
    args = ap.parse_args()
    from tpa_dist.sources.synth.presets import _decoder_only
    from tpa_dist.sources.synth.writer import write_preset

    preset = _decoder_only(
        "moe-many",
        arch="GptOssForCausalLM",
        model_type="gpt_oss",
        hidden=128,
        inter=64,
        layers=args.layers,
        heads=4,
        kv_heads=2,
        vocab=1024,
        dtype="BF16",
        tied=False,
        experts=args.experts,
        fused_experts=True,
    )
    res: dict[str, object] = {"experts": args.experts, "layers": args.layers, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_preset(preset, Path(tmp) / "moe")
        for method in ("floor", "tpa"):
            runs = []
            for _ in range(args.runs):
                proc = subprocess.run(
                    [sys.executable, "-c", CHILD, method, str(folder), str(ROOT), tmp],
                    capture_output=True,
                    text=True,
                    env=dict(os.environ, RAY_AUTH_MODE="disabled"),
                )
                line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if not line:
                    raise RuntimeError(proc.stderr[-3000:])
                runs.append(json.loads(line[-1][7:]))
                print(method, runs[-1], flush=True)
            res[method] = {"wall_s_median": statistics.median(r["wall_s"] for r in runs), "runs": runs}
    n = res["floor"]["runs"][0]["matrices"]
    res["matrices"] = n
    res["floor_matrices_per_s"] = n / res["floor"]["wall_s_median"]
    res["tpa_matrices_per_s"] = n / res["tpa"]["wall_s_median"]
    res["tpa_over_floor"] = res["tpa_matrices_per_s"] / res["floor_matrices_per_s"]
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k not in ("floor", "tpa")}, indent=1))


if __name__ == "__main__":
    main()
