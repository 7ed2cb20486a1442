"""GPU figures: tpa-dist's GPU path against its CPU path (correctness) and the seed's GPU method (speed).

Usage: python benchmarks/bench_gpu.py --preset qwen3-4b --work /tmp/tpa-gpu --out results.json
Writes the synthetic checkpoint under --work (8 GB for qwen3-4b), then:
 1. kernel timings per shape on the GPU: float64 Gram+eigvalsh (ours) vs torch svdvals f64 / f32 vs the seed's
    full torch.linalg.svd in float32;
 2. the GPU path against the CPU path on one matrix of every shape: max |Δσ|/σ_max, ranks identical;
 3. end to end on the whole checkpoint: the seed's method (subset of layers, extrapolated per shape) vs
    tpa-dist's GPU worker over every matrix (in-process AnalysisWorker; with Ray too when installed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import median_time, seed_method  # noqa: E402
from tpa_dist.actors import AnalysisWorker  # noqa: E402
from tpa_dist.analysis import analyze_task  # noqa: E402
from tpa_dist.catalog import open_model  # noqa: E402
from tpa_dist.reader import read_all  # noqa: E402
from tpa_dist.settings import AnalysisSettings  # noqa: E402
from tpa_dist.synth import write_synthetic  # noqa: E402
from tpa_dist.tasks import tasks_for_tensor  # noqa: E402

BIG_BLOCKS = AnalysisSettings(block_mib=256)


def log(*args: object) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="qwen3-4b")
    ap.add_argument("--work", default="/tmp/tpa-gpu")
    ap.add_argument("--out", default="gpu_results.json")
    ap.add_argument(
        "--seed-layers",
        type=int,
        default=-1,
        help="layers the seed's method runs end to end (-1: all, the whole model)",
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "torch-cpu")
    args = ap.parse_args()
    dev = args.device
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    res: dict[str, object] = {
        "device": torch.cuda.get_device_name() if dev == "cuda" else dev,
        "torch": torch.__version__,
        "preset": args.preset,
    }
    log("device", res["device"])
    t0 = time.perf_counter()
    folder = write_synthetic(args.preset, Path(args.work) / args.preset)
    res["synth_write_s"] = time.perf_counter() - t0
    log(f"synthetic checkpoint in {res['synth_write_s']:.0f}s")
    tasks = [
        t
        for info in open_model(folder).tensors()
        for t in tasks_for_tensor(args.preset, "r", info)
        if t.kind == "matrix"
    ]
    shapes = Counter((t.region.rows, t.region.cols) for t in tasks)
    res["matrices"] = len(tasks)
    res["shapes"] = {f"{r}x{c}": n for (r, c), n in shapes.items()}
    one_per_shape = {}
    for t in tasks:
        one_per_shape.setdefault((t.region.rows, t.region.cols), t)
    one_per_shape[("planted",)] = next(t for t in tasks if t.param_name.endswith("layers.0.self_attn.k_proj.weight"))

    # 1. kernels per shape
    kernels = {}
    compute = "cuda" if dev == "cuda" else "cpu"
    for key, t in one_per_shape.items():
        if key == ("planted",):
            continue
        w = torch.from_numpy(read_all(t.region)).to(compute)
        w32 = w.float()
        row = {"count": shapes[key]}
        row["gram_eigvalsh_f64"] = median_time(
            lambda w=w: torch.linalg.eigvalsh(w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T), sync=sync
        )
        if dev == "cuda":
            row["gram_gpu_eigvalsh_cpu"] = median_time(
                lambda w=w: np.linalg.eigvalsh((w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T).cpu().numpy())
            )
        row["svdvals_f64"] = median_time(
            lambda w=w: torch.linalg.svdvals(w), runs=1 if w.numel() > 5e7 else 3, sync=sync
        )
        row["svdvals_f32"] = median_time(
            lambda w=w32: torch.linalg.svdvals(w), runs=1 if w.numel() > 5e7 else 3, sync=sync
        )
        row["seed_svd_f32"] = median_time(
            lambda w=w32: torch.linalg.svd(w, full_matrices=False), runs=1 if w.numel() > 5e7 else 3, sync=sync
        )
        kernels[f"{key[0]}x{key[1]}"] = row
        log("kernel", key, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
        del w, w32
        if dev == "cuda":
            torch.cuda.empty_cache()
    res["kernels"] = kernels

    # 2. GPU path vs CPU path
    checks = []
    for t in one_per_shape.values():
        gpu_row, gpu_sv = analyze_task(t, BIG_BLOCKS, device=dev)
        cpu_row, cpu_sv = analyze_task(t, BIG_BLOCKS, device="cpu")
        same = all(
            gpu_row[k] == cpu_row[k]
            for k in ("actual_rank", "energy_rank_50", "energy_rank_90", "energy_rank_95", "energy_rank_99")
        )
        err = float(np.max(np.abs(gpu_sv - cpu_sv)) / cpu_sv[0])
        big = cpu_sv > 1e-3 * cpu_sv[0]
        err_big = float(np.max(np.abs(gpu_sv[big] - cpu_sv[big])) / cpu_sv[0])
        checks.append(
            {
                "matrix": t.matrix_key,
                "shape": f"{t.region.rows}x{t.region.cols}",
                "max_rel_err": err,
                "max_rel_err_above_1e-3": err_big,
                "ranks_identical": same,
                "actual_rank": gpu_row["actual_rank"],
                "alpha_gpu": gpu_row["alpha"],
                "alpha_cpu": cpu_row["alpha"],
                "gpu_s": gpu_row["seconds"],
                "cpu_s": cpu_row["seconds"],
            }
        )
        log("check", checks[-1])
    res["checks"] = checks

    # 3. end to end
    worker = AnalysisWorker(AnalysisSettings(block_mib=256, threads=16), gpu=dev == "cuda")
    if dev != "cuda":
        worker.compute, worker.device = dev, dev
    order = sorted(tasks, key=lambda t: t.cost, reverse=True)
    t0 = time.perf_counter()
    rows = worker.analyze(order)
    res["tpa_gpu_worker_s"] = time.perf_counter() - t0
    res["tpa_gpu_worker_failed"] = sum(r["status"] != "ok" for r, _ in rows)
    log(f"tpa-dist GPU worker, all {len(tasks)} matrices: {res['tpa_gpu_worker_s']:.1f}s")
    subset = {
        t.param_name
        for t in tasks
        if args.seed_layers < 0 or (t.layer_index is not None and t.layer_index < args.seed_layers)
    }
    subset.add("model.embed_tokens.weight")
    sub_tasks = [t for t in order if t.param_name in subset]
    t0 = time.perf_counter()
    worker.analyze(sub_tasks)
    res["tpa_gpu_subset_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    seed_ranks = seed_method(folder, compute, subset)
    res["seed_gpu_subset_s"] = time.perf_counter() - t0
    res["subset_matrices"] = len(sub_tasks)
    ours = {r["matrix_key"]: r["actual_rank"] for r, _ in rows}
    res["seed_rank_disagreements"] = {k: (v, ours[k]) for k, v in seed_ranks.items() if ours.get(k) != v}
    per_shape_seed = sum(kernels[f"{r}x{c}"]["seed_svd_f32"] * n for (r, c), n in shapes.items())
    res["seed_gpu_all_kernel_estimate_s"] = per_shape_seed
    res["speedup_subset_end_to_end"] = res["seed_gpu_subset_s"] / res["tpa_gpu_subset_s"]
    log(
        f"subset ({len(sub_tasks)} matrices): seed {res['seed_gpu_subset_s']:.1f}s vs tpa-dist "
        f"{res['tpa_gpu_subset_s']:.1f}s -> {res['speedup_subset_end_to_end']:.1f}x"
    )
    try:
        import duckdb
        import ray  # noqa: F401

        from tpa_dist.driver import submit
        from tpa_dist.jobs import Job

        del worker
        if dev == "cuda":
            torch.cuda.empty_cache()  # the GPU actors plan with the card's free memory
        db = Path(args.work) / "gpu.duckdb"
        t0 = time.perf_counter()
        summary = submit(
            Job.create(
                models=(str(folder),),
                db=str(db),
                output_dir=str(Path(args.work) / "out"),
                progress=False,
                force=True,
                embedding=False,  # matrices only, as the seed's method
            )
        )
        res["tpa_submit_wall_s"] = time.perf_counter() - t0
        res["tpa_submit_analysis_s"] = summary.seconds
        res["tpa_submit_ray_startup_s"] = summary.ray_startup_s
        res["tpa_submit_ok"] = summary.ok
        con = duckdb.connect(str(db), read_only=True)
        res["tpa_submit_devices"] = dict(
            con.execute("SELECT device, count(*) FROM matrix_analysis GROUP BY 1").fetchall()
        )
        con.close()
        res["speedup_submit_vs_seed"] = res["seed_gpu_subset_s"] / summary.seconds
        log("submit:", summary.describe(), res["tpa_submit_devices"])
    except ImportError:
        res["tpa_submit"] = "ray or duckdb not installed on this machine (see benchmarks/device_site.sh)"
    Path(args.out).write_text(
        json.dumps(res, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o))
    )
    log("wrote", args.out)


if __name__ == "__main__":
    main()
