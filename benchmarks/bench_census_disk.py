"""A census on bounded disk against the same census into the Hugging Face cache, side by side: N two-shard models
served by the local Hub emulator (tests/hub_emulator.py, optionally throttled), analyzed with `--max-cache-gib B` and
without it — wall time, the most bytes on disk at once (sampled every 2 ms, and as the census counts it), and what is
left on disk at the end.

    python -m benchmarks.bench_census_disk [--models 60] [--budget-mib 1] [--mib-per-s 50] [--nodes 2]

With `--nodes N` the census runs on a Ray cluster of N one-CPU worker nodes (ray.cluster_utils, one machine, each
node with a cache of its own): each node fetches its own shards and keeps the budget on its own disk; the most on
each node's disk is sampled the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from tests.hub_emulator import HubEmulator, disk_bytes


def _census(
    work: Path, listing: Path, budget_mib: float | None, watch: Path | list[Path], address: str | None = None
) -> dict:
    from click.testing import CliRunner

    from tpa_dist.cli import main

    db = work / ("budget.duckdb" if budget_mib else "cache.duckdb")  # (a fresh `work` per run on a cluster)
    args = ["submit", "--models-from", str(listing), "--db", str(db), "--no-embedding", "--no-report", "--quiet"]
    args += ["--no-progress"] + (["--max-cache-gib", str(budget_mib / 1024)] if budget_mib else [])
    args += ["--address", address] if address else []
    watched = watch if isinstance(watch, list) else [watch]
    peaks, done = [0] * len(watched), threading.Event()

    def sample() -> None:
        while not done.is_set():
            for i, w in enumerate(watched):
                peaks[i] = max(peaks[i], disk_bytes(w))
            done.wait(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.perf_counter()
    result = CliRunner().invoke(main, args)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    stated = None
    for marker in ("census cache: peak ", "): peak "):
        if marker in result.output:
            stated = float(result.output.split(marker)[1].split(" MiB")[0])
    return {
        "budget_mib": budget_mib,
        "exit_code": result.exit_code,
        "wall_s": wall,
        "peak_on_disk_mib": max(peaks) / 2**20,
        "peak_on_disk_mib_by_node": [p / 2**20 for p in peaks] if address else None,
        "peak_counted_mib": stated,
        "left_on_disk_mib": sum(disk_bytes(w) for w in watched) / 2**20,
    }


def _on_nodes(work: Path, listing: Path, budget_mib: float, nodes: int, rounds: int) -> tuple[dict, dict]:
    """Both censuses on one cluster of `nodes` one-CPU nodes, alternated `rounds` times (the median run of each kept),
    each run with empty caches of its own: the driver's (configs, indexes) and every node's."""
    import statistics

    import ray
    from ray.cluster_utils import Cluster

    os.environ["TPA_DIST_HIDE_PREFIX"] = str(work)  # nodes read nothing of the driver's: they fetch their own
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    runs: dict[str, list[dict]] = {"budget": [], "cache": []}
    try:
        for _ in range(nodes):
            c.add_node(num_cpus=1)
        c.wait_for_nodes()
        ray.init(address=c.address, log_to_driver=False)
        ids = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
        for k in range(rounds):
            for kind in ("budget", "cache"):
                here = work / f"{kind}-{k}"
                here.mkdir()
                os.environ.update(HF_HUB_CACHE=str(here / "hf-cache"), TPA_DIST_NODE_CACHE=str(here / "nodes"))
                watch = [here / "nodes" / i / ("tpa-census" if kind == "budget" else "") for i in ids]
                runs[kind].append(_census(here, listing, budget_mib if kind == "budget" else None, watch, c.address))
    finally:
        ray.shutdown()
        c.shutdown()
    out = []
    for kind in ("budget", "cache"):
        walls = [r["wall_s"] for r in runs[kind]]
        median = sorted(runs[kind], key=lambda r: r["wall_s"])[len(walls) // 2]
        out.append(dict(median, walls_s=walls, median_wall_s=statistics.median(walls)))
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=60)
    ap.add_argument("--budget-mib", type=float, default=1.0)
    ap.add_argument("--mib-per-s", type=float, default=50.0, help="the emulator's link (0: unthrottled)")
    ap.add_argument("--nodes", type=int, default=0, help="worker nodes of a local Ray cluster (0: one machine)")
    ap.add_argument("--rounds", type=int, default=3, help="with --nodes: the two censuses alternated this many times")
    ap.add_argument("--out", default="benchmarks/results/census_disk.json")
    args = ap.parse_args()
    from benchmarks.common import synth_folder

    folder = synth_folder("tiny-llama")
    repos = {f"org/m{i:04d}": folder for i in range(args.models)}
    total = sum(p.stat().st_size for p in folder.glob("*.safetensors")) * args.models
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        listing = work / "models.txt"
        listing.write_text("\n".join(repos) + "\n", encoding="utf-8")
        bandwidth = args.mib_per_s * 2**20 if args.mib_per_s else None
        with HubEmulator(repos, bandwidth=bandwidth) as hub:
            os.environ.update(HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(work / "hf-cache"))
            if args.nodes:
                budget, cache = _on_nodes(work, listing, args.budget_mib, args.nodes, args.rounds)
            else:
                budget = _census(work, listing, args.budget_mib, work / "budget.duckdb.census-cache")
                cache = _census(work, listing, None, work / "hf-cache")
    out = {"models": args.models, "nodes": args.nodes, "shards_total_mib": total / 2**20, "budgeted": budget}
    out["hf_cache"] = cache
    print(json.dumps(out, indent=2))
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
