"""A census at 10, 100 and 1,000 models: what planning costs per model and the driver's peak memory, and what the
report costs (first draw, and an unchanged re-run that draws nothing) — each measured in a fresh process.

    python -m benchmarks.bench_cohort [--sizes 10,100,1000] [--out benchmarks/results/cohort.json]

The cohort is tiny-llama analyzed once and copied as N models (tests/cohort_db.py: perturbed fine-tunes, exact
copies, planted outliers); planning plans N named entries of a synthetic model against a fresh database.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import peak_rss_mib, run_child


def _child_plan(n: int, work: Path) -> dict:
    from tpa_dist.db.store import Store
    from tpa_dist.jobs import Job
    from tpa_dist.run.planning import plan_job

    job = Job.create(models=tuple(f"m{i:05d}=synth:tiny-llama" for i in range(n)), db=str(work / "plan.duckdb"))
    store = Store(job.db)
    t0 = time.perf_counter()
    plan = plan_job(job, store, "bench")
    seconds = time.perf_counter() - t0
    store.close()
    return {"models": n, "plan_s": seconds, "ms_per_model": 1000 * seconds / n, "tasks": len(plan.tasks),
            "peak_rss_mib": peak_rss_mib()}  # fmt: skip


def _child_report(n: int, work: Path) -> dict:
    import duckdb

    from tpa_dist.report.render import write_report

    db = work / f"cohort{n}.duckdb"
    con = duckdb.connect(str(db), read_only=True)
    models = [m for (m,) in con.execute("SELECT DISTINCT model_id FROM models ORDER BY model_id").fetchall()]
    con.close()
    models.remove("synth:tiny-llama")
    models.insert(0, "synth:tiny-llama")
    t0 = time.perf_counter()
    write_report(db, work / f"out{n}", models)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_report(db, work / f"out{n}", models)
    again = time.perf_counter() - t0
    html = (work / f"out{n}" / "report.html").stat().st_size
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the drawing processes, largest
    return {"models": n, "report_s": first, "unchanged_report_s": again, "peak_rss_mib": peak_rss_mib(),
            "drawing_process_peak_rss_mib": children, "report_html_mib": html / 2**20}  # fmt: skip


def _build(n: int, work: Path) -> None:
    from tests.cohort_db import clone_cohort
    from tpa_dist.jobs import Job
    from tpa_dist.run.driver import submit

    db = work / f"cohort{n}.duckdb"
    job = Job.create(models=("synth:tiny-llama",), db=str(db), output_dir=str(work / "o"), progress=False,
                     embedding=False, report=False)  # fmt: skip
    assert submit(job).ok
    clone_cohort(db, "synth:tiny-llama", n - 1)


def _run_child(kind: str, n: int, work: Path) -> dict:
    return run_child("benchmarks.bench_cohort", kind, n, work)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--out", default="benchmarks/results/cohort.json")
    ap.add_argument("--child", nargs=3, metavar=("KIND", "N", "WORK"))
    args = ap.parse_args()
    if args.child:
        kind, n, work = args.child[0], int(args.child[1]), Path(args.child[2])
        print(json.dumps((_child_plan if kind == "plan" else _child_report)(n, work)))
        return
    results = {"plan": [], "report": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in (int(s) for s in args.sizes.split(",")):
            _build(n, work)
            results["plan"].append(_run_child("plan", n, work))
            results["report"].append(_run_child("report", n, work))
            print(json.dumps({"plan": results["plan"][-1], "report": results["report"][-1]}), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
