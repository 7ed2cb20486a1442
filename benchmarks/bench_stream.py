"""Download/compute overlap: `tpa-dist submit org/name` streaming shards from a bandwidth-throttled local Hub
versus downloading the snapshot first and then analyzing the local folder (what a script calling
snapshot_download then analyzing would do). Ray is started once, before either is timed.

    python -m benchmarks.bench_stream --bandwidth-mib 40 --shards 4 --runs 3
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from tests.hub_emulator import HubEmulator
from tpa_dist.jobs import Job
from tpa_dist.run.driver import submit
from tpa_dist.sources.resolve import cache_dir, download
from tpa_dist.sources.synth.presets import preset
from tpa_dist.sources.synth.writer import write_preset


def _job(model: str, work: Path, tag: str) -> Job:
    return Job.create(
        models=(model,),
        db=str(work / f"{tag}.duckdb"),
        output_dir=str(work / f"out-{tag}"),
        progress=False,
        embedding=False,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="qwen3-0.6b")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--bandwidth-mib", type=float, default=40.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/stream.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import os

    import ray

    repo = cache_dir() / "synth" / f"{args.preset}-{args.shards}shards"
    if not (repo / "model.safetensors.index.json").exists():
        write_preset(replace(preset(args.preset), shards=args.shards), repo)
    size = sum(p.stat().st_size for p in repo.glob("*.safetensors"))
    ray_t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    ray_s = time.perf_counter() - ray_t0
    times: dict[str, list[float]] = {"download_then_analyze": [], "download_only": [], "streamed": []}
    with HubEmulator({"org/model": repo}, bandwidth=args.bandwidth_mib * 2**20) as hub:
        os.environ["HF_ENDPOINT"] = hub.url
        for p in repo.glob("*.safetensors"):
            hub.etag(p)
        for run in range(args.runs):
            for mode in ("download_then_analyze", "streamed"):
                work = Path(tempfile.mkdtemp(prefix="tpa-stream-"))
                os.environ["HF_HUB_CACHE"] = str(work / "hf-cache")
                t0 = time.perf_counter()
                if mode == "streamed":
                    summary = submit(_job("org/model", work, mode))
                else:
                    source = download("org/model")
                    times["download_only"].append(time.perf_counter() - t0)
                    summary = submit(_job(str(source.path), work, mode))
                elapsed = time.perf_counter() - t0
                assert summary.ok and summary.done == summary.total, summary.describe()
                times[mode].append(elapsed)
                print(f"run {run + 1} {mode}: {elapsed:.1f}s ({summary.done} matrices)", flush=True)
                shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "preset": args.preset,
        "shards": args.shards,
        "checkpoint_bytes": size,
        "bandwidth_mib_s": args.bandwidth_mib,
        "runs": args.runs,
        "ray_startup_s": ray_s,
        "times_s": times,
        "median_s": med,
        "analysis_after_download_s": med["download_then_analyze"] - med["download_only"],
        "speedup": med["download_then_analyze"] / med["streamed"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "times_s"}, indent=2))


if __name__ == "__main__":
    main()
