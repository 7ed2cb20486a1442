"""A census planned while it runs, against the same census planned whole first: a whole `submit` of N entries of a
synthetic model (matrices only, no report) into a fresh database, each in a fresh process, side by side per N.

    python -m benchmarks.bench_census_stream [--sizes 10,100,1000] [--out benchmarks/results/census_stream.json]

Measured per run: the time from the run's start to its first stored matrix (the runs row's start against the
earliest matrix row), the whole run's wall, the per-model overhead (wall / N), the time planning took (before the
analysis, and while it ran), and the driver's peak RSS. "planned first" is the same code with streaming switched off
(STREAM_AFTER above N): planning ends before the analysis begins, as before streaming planning.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import peak_rss_mib, run_child


def _child(n: int, work: Path, stream: bool) -> dict:
    import duckdb

    import tpa_dist.run.driver as driver
    from tpa_dist.jobs import Job

    if not stream:
        driver.STREAM_AFTER = n  # N entries never exceed it: planned whole first
    db = work / f"{'stream' if stream else 'first'}-{n}.duckdb"
    job = Job.create(models=tuple(f"m{i:05d}=synth:tiny-llama" for i in range(n)), db=str(db),
                     output_dir=str(work / "o"), progress=False, embedding=False, report=False)  # fmt: skip
    t0 = time.perf_counter()
    summary = driver.submit(job)
    wall = time.perf_counter() - t0
    assert summary.ok, summary.describe()
    con = duckdb.connect(str(db), read_only=True)
    (first,) = con.execute(
        "SELECT epoch(min(m.created_at)) - epoch(min(r.started_at)) FROM matrix_analysis m, runs r"
    ).fetchone()
    (rows,) = con.execute("SELECT count(*) FROM matrix_analysis WHERE status = 'ok'").fetchone()
    con.close()
    return {
        "models": n,
        "streaming": stream,
        "matrices": rows,
        "first_matrix_stored_s": first,
        "wall_s": wall,
        "ms_per_model": 1000 * wall / n,
        "plan_before_analysis_s": summary.phases.get("plan"),
        "plan_during_analysis_s": summary.streamed_s,
        "analysis_s": summary.analysis_s,
        "peak_rss_mib": peak_rss_mib(),
    }


def _run_child(n: int, work: Path, stream: bool) -> dict:
    return run_child("benchmarks.bench_census_stream", n, work, int(stream))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--out", default="benchmarks/results/census_stream.json")
    ap.add_argument("--child", nargs=3, metavar=("N", "WORK", "STREAM"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(int(args.child[0]), Path(args.child[1]), args.child[2] == "1")))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _run_child(2, work, False)  # the synthetic checkpoint written once, outside the measured runs
        for n in (int(s) for s in args.sizes.split(",")):
            for stream in (True, False):
                results.append(_run_child(n, work, stream))
                print(json.dumps(results[-1]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
