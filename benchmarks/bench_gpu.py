"""GPU figures: tpa-dist's GPU path against its CPU path (correctness) and the seed's GPU method (speed).

Usage: python benchmarks/bench_gpu.py --preset qwen3-4b --work /tmp/tpa-gpu --out results.json
Writes the synthetic checkpoint under --work (8 GB for qwen3-4b), then:
 1. kernel timings per shape on the GPU: float64 Gram+eigvalsh (ours) vs torch svdvals f64 / f32 vs the seed's
    full torch.linalg.svd in float32;
 2. the GPU path against the CPU path on one matrix of every shape: max |Δσ|/σ_max, ranks identical;
 3. end to end on the whole checkpoint: the seed's method vs tpa-dist's GPU worker class in this process (1
    and 4 threads, each on its CUDA stream), and `tpa-dist submit` on a local Ray with GPU workers when Ray and
    duckdb are installed (the default: one GPU worker running 4 streams; then 4 fractional workers, 1 stream each).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import median_time, seed_method  # noqa: E402
from tpa_dist.checkpoint.catalog import open_model  # noqa: E402
from tpa_dist.checkpoint.reader import read_all  # noqa: E402
from tpa_dist.compute.analysis import analyze_task  # noqa: E402
from tpa_dist.compute.tasks import tasks_for_tensor  # noqa: E402
from tpa_dist.run.actors import AnalysisWorker  # noqa: E402
from tpa_dist.settings import AnalysisSettings  # noqa: E402
from tpa_dist.sources.synth.writer import write_synthetic  # noqa: E402

BIG_BLOCKS = AnalysisSettings(block_mib=256)


def log(*args: object) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def run_submit(folder: Path, work: Path, config: str, seed_s: float) -> dict[str, object]:
    """`tpa-dist submit` (matrices only, as the seed's method) on a local Ray with GPU workers; config is
    GPUS_PER_WORKER:STREAMS. Its figures, the devices that analyzed the matrices and the ratio to the seed."""
    import duckdb

    from tpa_dist.jobs import Job
    from tpa_dist.run.driver import submit

    gpus, streams = config.split(":")
    db = work / f"gpu-{gpus}-{streams}.duckdb"
    t0 = time.perf_counter()
    summary = submit(
        Job.create(
            models=(str(folder),),
            db=str(db),
            output_dir=str(work / "out"),
            progress=False,
            force=True,
            embedding=False,
            gpus_per_worker=float(gpus),
            gpu_streams=int(streams),
        )
    )
    out: dict[str, object] = {
        "wall_s": time.perf_counter() - t0,
        "analysis_s": summary.seconds,
        "ray_startup_s": summary.ray_startup_s,
        "phases": summary.phases,
        "ok": summary.ok,
    }
    con = duckdb.connect(str(db), read_only=True)
    out["devices"] = dict(con.execute("SELECT device, count(*) FROM matrix_analysis GROUP BY 1").fetchall())
    out["gpu_task_seconds"] = con.execute(
        "SELECT sum(seconds), max(seconds), count(DISTINCT worker) FROM matrix_analysis WHERE device LIKE 'cuda%'"
    ).fetchone()
    con.close()
    out["speedup_vs_seed"] = seed_s / summary.seconds
    log(f"submit {config}:", summary.describe(), out)
    return out


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
    ap.add_argument("--skip-kernels", action="store_true", help="skip step 1 (per-shape kernel timings)")
    ap.add_argument("--worker-streams", default="1,4", help="in-process GPU worker runs: streams of each")
    ap.add_argument(
        "--submit-configs", default="1:4,0.25:1", help="submit runs, GPUS_PER_WORKER:STREAMS each (default first)"
    )
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
        if key == ("planted",) or args.skip_kernels:
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

    # 3. end to end: the GPU worker class in this process (no Ray), one stream and several
    worker = AnalysisWorker(AnalysisSettings(block_mib=256, threads=16), gpu=dev == "cuda")
    if dev != "cuda":
        worker.compute, worker.device = dev, dev
    order = sorted(tasks, key=lambda t: t.cost, reverse=True)
    rows: list = []
    for streams in (int(x) for x in args.worker_streams.split(",") if x):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(streams) as pool:
            rows = [r for part in pool.map(worker.analyze, [order[i::streams] for i in range(streams)]) for r in part]
        res[f"tpa_gpu_worker_{streams}_streams_s"] = time.perf_counter() - t0
        res[f"tpa_gpu_worker_{streams}_streams_failed"] = sum(r["status"] != "ok" for r, _ in rows)
        log(f"tpa-dist GPU worker, {streams} stream(s), all {len(tasks)} matrices: {time.perf_counter() - t0:.1f}s")
    subset = {
        t.param_name
        for t in tasks
        if args.seed_layers < 0 or (t.layer_index is not None and t.layer_index < args.seed_layers)
    }
    subset.add("model.embed_tokens.weight")
    t0 = time.perf_counter()
    seed_ranks = seed_method(folder, compute, subset)
    res["seed_gpu_subset_s"] = time.perf_counter() - t0
    res["subset_matrices"] = len(seed_ranks)
    log(f"seed's method on {len(seed_ranks)} matrices: {res['seed_gpu_subset_s']:.1f}s")
    ours = {r["matrix_key"]: r["actual_rank"] for r, _ in rows}
    res["seed_rank_disagreements"] = {k: (v, ours[k]) for k, v in seed_ranks.items() if ours.get(k) != v}
    if kernels:
        res["seed_gpu_all_kernel_estimate_s"] = sum(
            kernels[f"{r}x{c}"]["seed_svd_f32"] * n for (r, c), n in shapes.items()
        )
    del worker
    try:
        import duckdb  # noqa: F401
        import ray  # noqa: F401
    except ImportError:
        res["tpa_submit"] = "ray or duckdb not installed on this machine (see benchmarks/device_site.sh)"
    else:
        if dev == "cuda":
            torch.cuda.empty_cache()  # the GPU actors plan with the card's free memory
        for config in args.submit_configs.split(","):
            res[f"tpa_submit_{config}"] = run_submit(folder, Path(args.work), config, res["seed_gpu_subset_s"])
    Path(args.out).write_text(
        json.dumps(res, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o))
    )
    log("wrote", args.out)


if __name__ == "__main__":
    main()
