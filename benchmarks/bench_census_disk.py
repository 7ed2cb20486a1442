"""A census on bounded disk against the same census into the Hugging Face cache, side by side: N two-shard models
served by the local Hub emulator (tests/hub_emulator.py, optionally throttled), analyzed with `--max-cache-gib B` and
without it — wall time, the most bytes on disk at once (sampled every 2 ms, and as the census counts it), and what is
left on disk at the end.

    python -m benchmarks.bench_census_disk [--models 60] [--budget-mib 1] [--mib-per-s 50]
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


def _census(work: Path, listing: Path, budget_mib: float | None, watch: Path) -> dict:
    from click.testing import CliRunner

    from tpa_dist.cli import main

    db = work / ("budget.duckdb" if budget_mib else "cache.duckdb")
    args = ["submit", "--models-from", str(listing), "--db", str(db), "--no-embedding", "--no-report", "--quiet"]
    args += ["--no-progress"] + (["--max-cache-gib", str(budget_mib / 1024)] if budget_mib else [])
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], disk_bytes(watch))
            done.wait(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.perf_counter()
    result = CliRunner().invoke(main, args)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    stated = None
    if "census cache: peak " in result.output:
        stated = float(result.output.split("census cache: peak ")[1].split(" MiB")[0])
    return {
        "budget_mib": budget_mib,
        "exit_code": result.exit_code,
        "wall_s": wall,
        "peak_on_disk_mib": peak[0] / 2**20,
        "peak_counted_mib": stated,
        "left_on_disk_mib": disk_bytes(watch) / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=60)
    ap.add_argument("--budget-mib", type=float, default=1.0)
    ap.add_argument("--mib-per-s", type=float, default=50.0, help="the emulator's link (0: unthrottled)")
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
            budget = _census(work, listing, args.budget_mib, work / "budget.duckdb.census-cache")
            cache = _census(work, listing, None, work / "hf-cache")
    out = {"models": args.models, "shards_total_mib": total / 2**20, "budgeted": budget, "hf_cache": cache}
    print(json.dumps(out, indent=2))
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
