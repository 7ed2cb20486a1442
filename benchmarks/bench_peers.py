"""tpa-dist side by side with its peers on a shape-accurate checkpoint (qwen3-0.6b on CPU, qwen3-4b on a GPU).

Usage: python benchmarks/bench_peers.py [--preset qwen3-0.6b] [--runs 3] [--device cpu|cuda] [--out FILE]
Methods, same matrices, same run, medians of --runs:
  seed     the seed tool: whole model to float32 in RAM, torch.linalg.svd + rank count per matrix (on --device)
  ww       weightwatcher.analyze() on the same folder (it skips matrices with a side > 50,000: the embedding;
           it uses torch on CUDA by itself when a GPU is visible)
  tpa      tpa-dist submit on a local Ray (one single-threaded worker per core; with a GPU, 4 GPU workers
           sharing it plus CPU workers; Ray start-up reported separately)
  tpa1x2   tpa-dist submit with 1 worker of 2 BLAS threads
  tpa1x1   tpa-dist submit with 1 single-threaded worker (scaling: 1 worker vs 2)
  floor    tpa-dist's own per-matrix routine in one process with all cores' BLAS threads, no Ray
Each method runs in a fresh subprocess so that its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, logging, os, sys, time
sys.path.insert(0, sys.argv[3])
from benchmarks.common import peak_rss_mib, seed_method
method, folder = sys.argv[1], sys.argv[2]
out = {}
t0 = time.perf_counter()
if method == "seed":
    import torch
    torch.set_num_threads(os.cpu_count())
    out["matrices"] = len(seed_method(folder, device=sys.argv[5]))
elif method == "ww":
    logging.disable(logging.WARNING)
    import weightwatcher as ww
    details = ww.WeightWatcher(model=folder).analyze(plot=False, randomize=False, mp_fit=False)
    out["matrices"] = int(len(details))
elif method == "floor":
    from threadpoolctl import threadpool_limits
    from tpa_dist.compute.analysis import analyze_task
    from tpa_dist.checkpoint.catalog import open_model
    from tpa_dist.compute.tasks import tasks_for_tensor
    with threadpool_limits(os.cpu_count()):
        tasks = [t for i in open_model(folder).tensors() for t in tasks_for_tensor("m", "r", i) if t.kind == "matrix"]
        for t in tasks:
            analyze_task(t)
    out["matrices"] = len(tasks)
else:
    import ray
    from tpa_dist.run.driver import submit
    from tpa_dist.jobs import Job
    workers, threads = {"tpa": (None, 1), "tpa1x2": (1, 2), "tpa1x1": (1, 1)}[method]
    t_ray = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ray_s = time.perf_counter() - t_ray
    db = os.path.join(sys.argv[4], f"{method}-{time.time_ns()}.duckdb")
    s = submit(Job.create(models=(folder,), db=db, output_dir=sys.argv[4], num_workers=workers,
                   threads_per_worker=threads, progress=False, force=True, embedding=False))
    assert s.ok, s.describe()
    import duckdb
    con = duckdb.connect(db, read_only=True)
    devices = dict(con.execute("SELECT device, count(*) FROM matrix_analysis GROUP BY 1").fetchall())
    con.close()
    out.update(tasks=s.done, analysis_s=s.seconds, ray_startup_s=ray_s, devices=devices)
out["wall_s"] = time.perf_counter() - t0 - out.get("ray_startup_s", 0.0)
out["peak_rss_mib"] = peak_rss_mib()
print("RESULT " + json.dumps(out))
"""


def run_once(method: str, folder: Path, work: str, device: str = "cpu") -> dict:
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, method, str(folder), str(ROOT), work, device],
        capture_output=True,
        text=True,
        env=env,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{method} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="qwen3-0.6b")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--methods", default="seed,ww,tpa,tpa1x2,floor")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cpu_qwen3-0.6b.json"))
    ap.add_argument("--merge", action="store_true", help="keep other methods' results already in --out")
    ap.add_argument("--device", default="cpu", help="where the seed's method runs its SVDs (cpu or cuda)")
    ap.add_argument("--folder", help="an existing checkpoint of --preset (default: written into the cache)")
    args = ap.parse_args()
    from tpa_dist.sources.resolve import cache_dir
    from tpa_dist.sources.synth.writer import write_synthetic

    folder = (
        Path(args.folder)
        if args.folder
        else write_synthetic(args.preset, cache_dir() / "synth" / f"{args.preset}-seed0")
    )
    nbytes = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    from tpa_dist.checkpoint.catalog import open_model
    from tpa_dist.compute.tasks import tasks_for_tensor

    n_matrices = sum(t.kind == "matrix" for i in open_model(folder).tensors() for t in tasks_for_tensor("m", "r", i))
    results: dict[str, object] = {
        "preset": args.preset,
        "device": args.device,
        "cpus": os.cpu_count(),
        "bytes": nbytes,
        "runs": args.runs,
        "matrices": n_matrices,
        "methods": {},
    }
    with tempfile.TemporaryDirectory() as work:
        for method in args.methods.split(","):
            runs = []
            try:
                for i in range(args.runs):
                    runs.append(run_once(method, folder, work, args.device))
                    print(time.strftime("%H:%M:%S"), method, i, runs[-1], flush=True)
            except RuntimeError as exc:  # one method failing (e.g. Ray on an odd machine) keeps the others
                print(exc, flush=True)
                results["methods"][method] = {"error": str(exc)[-3000:]}
                continue
            wall = statistics.median(r["wall_s"] for r in runs)
            matrices = runs[0].get("matrices", n_matrices)
            results["methods"][method] = {
                "wall_s_median": wall,
                "wall_s_all": [r["wall_s"] for r in runs],
                "peak_rss_mib_median": statistics.median(r["peak_rss_mib"] for r in runs),
                "matrices": matrices,
                "matrices_per_s": matrices / wall,
                "bytes_per_s": nbytes / wall,
                "ray_startup_s_median": statistics.median(r.get("ray_startup_s", 0.0) for r in runs),
            }
    if args.merge and Path(args.out).exists():
        previous = json.loads(Path(args.out).read_text())["methods"]
        results["methods"] = {**previous, **results["methods"]}
    m = results["methods"]
    if "wall_s_median" in m.get("tpa", {}):
        for other in ("seed", "ww", "floor", "tpa1x2", "tpa1x1"):
            if "wall_s_median" in m.get(other, {}):
                results[f"tpa_speedup_vs_{other}"] = m[other]["wall_s_median"] / m["tpa"]["wall_s_median"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if k != "methods"}, indent=1))


if __name__ == "__main__":
    main()
