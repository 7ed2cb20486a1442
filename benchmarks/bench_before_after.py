"""`tpa-dist submit` of all-MiniLM-L6-v2 (trained) as a user runs it, this checkout against another one, side by side
in one run: fresh processes, the two checkouts alternating run by run, medians of --runs; without and with the
embedding step. Wall time and the run's own phases (analysis: the matrix phase; embedding).

Usage:
    git worktree add /tmp/before <commit>
    python benchmarks/bench_before_after.py --before /tmp/before [--runs 3]
    # -> benchmarks/results/before_after_minilm.json
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


def one(src: Path, folder: Path, extra: list[str]) -> dict:
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=str(src), RAY_AUTH_MODE="disabled")
        env.pop("RAY_ADDRESS", None)
        cmd = [sys.executable, "-m", "tpa_dist", "submit", "--models", f"m={folder}", "--db", f"{tmp}/d.duckdb"]
        cmd += ["--no-progress", "--quiet", *extra]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
        con = duckdb.connect(f"{tmp}/d.duckdb", read_only=True)
        phases = json.loads(con.execute("SELECT phases FROM runs").fetchone()[0])
        con.close()
    return {"wall_s": wall, "analysis_s": phases.get("analysis"), "embedding_s": phases.get("embedding")}


def main() -> None:
    from benchmarks.common import minilm_folder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="a checkout of the baseline (git worktree add …)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "before_after_minilm.json"))
    args = ap.parse_args()
    folder = minilm_folder()
    out: dict = {"cpus": os.cpu_count(), "runs": args.runs}
    for label, extra in (("no-embedding", ["--no-embedding"]), ("with-embedding", [])):
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for i in range(args.runs):
            for name, src in (("before", Path(args.before)), ("after", ROOT)):
                runs[name].append(one(src, folder, extra))
                print(label, name, i, runs[name][-1], flush=True)
        out[label] = {
            name: {
                key: statistics.median(r[key] for r in rs)
                for key in ("wall_s", "analysis_s", "embedding_s")
                if rs[0][key] is not None
            }
            for name, rs in runs.items()
        }
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
