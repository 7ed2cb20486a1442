"""Planning a Hub census: N models behind a Hub with a round-trip latency (the local emulator, tests/hub_emulator.py),
planned with their resolution one at a time against RESOLVE_AHEAD at once, side by side in one run — the planning
phase of a `--models-from` submit (`runs.phases.plan`), medians of --runs.

    python -m benchmarks.bench_census_plan [--models 40] [--latency-ms 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path


def _plan_seconds(work: Path, listing: Path, name: str) -> float:
    import duckdb
    from click.testing import CliRunner

    from tpa_dist.cli import main

    db = work / f"{name}.duckdb"
    args = ["submit", "--models-from", str(listing), "--db", str(db), "--no-embedding", "--no-report", "--quiet"]
    result = CliRunner().invoke(main, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db), read_only=True)
    (phases,) = con.execute("SELECT phases FROM runs").fetchone()
    con.close()
    return json.loads(phases)["plan"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=40)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/census_plan.json")
    args = ap.parse_args()
    from benchmarks.common import synth_folder
    from tests.hub_emulator import HubEmulator
    from tpa_dist.run import planning

    folder = synth_folder("tiny-llama")
    repos = {f"org/m{i:04d}": folder for i in range(args.models)}
    ahead = planning.RESOLVE_AHEAD
    times: dict[str, list[float]] = {"one at a time": [], f"{ahead} at once": []}
    with tempfile.TemporaryDirectory() as tmp, HubEmulator(repos, latency=args.latency_ms / 1000) as hub:
        work = Path(tmp)
        listing = work / "models.txt"
        listing.write_text("\n".join(repos) + "\n", encoding="utf-8")
        os.environ["HF_ENDPOINT"] = hub.url
        for run in range(args.runs):  # alternated, each into a fresh Hugging Face cache
            for label, n in ((f"{ahead} at once", ahead), ("one at a time", 1)):
                os.environ["HF_HUB_CACHE"] = str(work / f"cache-{run}-{n}")
                planning.RESOLVE_AHEAD = n
                times[label].append(_plan_seconds(work, listing, f"r{run}-{n}"))
    planning.RESOLVE_AHEAD = ahead
    out = {
        "models": args.models,
        "latency_ms": args.latency_ms,
        "plan_s": times,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
    }
    print(json.dumps(out, indent=2))
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
