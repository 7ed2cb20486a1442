"""GPU end to end on a qwen3-4b-shaped checkpoint: the seed's GPU method against tpa-dist's GPU worker run
by 1 thread and by several threads, each on its own CUDA stream (what `--gpus-per-worker 0.25` gives a
Ray cluster: several workers sharing one GPU, one's file reading overlapping another's eigvalsh).

Usage (CUDA machine): python benchmarks/bench_gpu_e2e.py --work /tmp/tpa-gpu --out gpu_e2e.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import seed_method  # noqa: E402
from tpa_dist.checkpoint.catalog import open_model  # noqa: E402
from tpa_dist.compute.tasks import plan_tasks  # noqa: E402
from tpa_dist.run.actors import AnalysisWorker  # noqa: E402
from tpa_dist.settings import AnalysisSettings  # noqa: E402
from tpa_dist.sources.synth.writer import write_synthetic  # noqa: E402


def threaded(worker: AnalysisWorker, tasks: list, n: int) -> list:
    def work(chunk: list) -> list:
        if torch.cuda.is_available():
            with torch.cuda.stream(torch.cuda.Stream()):
                return worker.analyze(chunk)
        return worker.analyze(chunk)

    with ThreadPoolExecutor(n) as pool:
        return [r for part in pool.map(work, [tasks[i::n] for i in range(n)]) for r in part]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="qwen3-4b")
    ap.add_argument("--work", default="/tmp/tpa-gpu")
    ap.add_argument("--out", default="gpu_e2e.json")
    ap.add_argument("--threads", default="1,4")
    args = ap.parse_args()
    gpu = torch.cuda.is_available()
    res: dict[str, object] = {"device": torch.cuda.get_device_name() if gpu else "cpu"}
    folder = write_synthetic(args.preset, Path(args.work) / args.preset)
    cat = open_model(folder)
    tasks = sorted(
        (t for t in plan_tasks("m", "r", cat.tensors(), cat.config) if t.kind == "matrix"),
        key=lambda t: t.cost,
        reverse=True,
    )
    worker = AnalysisWorker(AnalysisSettings(block_mib=256, threads=16), gpu=gpu)
    for n in (int(x) for x in args.threads.split(",")):
        t0 = time.perf_counter()
        rows = threaded(worker, tasks, n)
        res[f"tpa_gpu_{n}_threads_s"] = time.perf_counter() - t0
        res[f"tpa_gpu_{n}_threads_failed"] = sum(r["status"] != "ok" for r, _ in rows)
        print(n, "threads", res[f"tpa_gpu_{n}_threads_s"], flush=True)
    t0 = time.perf_counter()
    ranks = seed_method(folder, "cuda" if gpu else "cpu")
    res["seed_gpu_s"] = time.perf_counter() - t0
    res["matrices"] = len(tasks)
    res["seed_matrices"] = len(ranks)
    for key in [k for k in res if k.startswith("tpa_gpu_") and k.endswith("_s")]:
        res["speedup_" + key] = res["seed_gpu_s"] / res[key]
    print(json.dumps(res, indent=1))
    Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
