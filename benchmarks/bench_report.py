"""The report at scale: a database of N models (default 300) and `tpa-dist report` over all of them — wall time and
the peak resident memory of the command and every process it starts (the drawing children included).

The database is one real run of two synthetic models (tiny-llama, tiny-qwen3: every table filled, embeddings too)
whose rows are copied under N/2 − 1 more names each, so the report's queries and figures see N models.

    python benchmarks/bench_report.py [--models 300] [--runs 3] [--out benchmarks/results/report_300.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb


def build(db: Path, models: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "tpa_dist", "submit", "--models", "synth:tiny-llama,synth:tiny-qwen3", "--db", str(db)]
        + ["--output-dir", str(db.parent / "run"), "--no-progress", "--quiet"],
        check=True,
        capture_output=True,
    )
    con = duckdb.connect(str(db))
    tables = con.execute(
        "SELECT c.table_name FROM duckdb_columns() c JOIN duckdb_tables() t USING (database_name, table_name) "
        "WHERE c.database_name = current_database() AND c.column_name = 'model_id' GROUP BY 1"
    ).fetchall()
    for (table,) in tables:
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND database_name = current_database() "
                "AND NOT (column_default IS NOT NULL AND column_default LIKE '%energy_rank_90%')",
                [table],
            ).fetchall()
        ]
        names = ", ".join(f'"{c}"' for c in cols)
        picked = ", ".join("model_id || '-' || i::VARCHAR" if c == "model_id" else f'"{c}"' for c in cols)
        con.execute(f'INSERT INTO "{table}" ({names}) SELECT {picked} FROM "{table}", range(1, ?) r(i)', [models // 2])
    con.close()


def _tree_rss(pid: int) -> int:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                children.setdefault(int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]), []).append(int(d.name))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            total += next(int(line.split()[1]) << 10 for line in open(f"/proc/{p}/status") if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total


def measure(db: Path, out: Path) -> tuple[float, int]:
    """(wall seconds, peak summed RSS of the command's process tree, sampled every 0.1 s)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tpa_dist", "report", "--db", str(db), "--out", str(out)])
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.1)
    assert proc.returncode == 0
    return time.perf_counter() - t0, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "report.duckdb"
        build(db, args.models)
        con = duckdb.connect(str(db), read_only=True)
        n, rows = con.execute("SELECT count(DISTINCT model_id), count(*) FROM matrix_analysis").fetchone()
        con.close()
        runs = [measure(db, Path(tmp) / f"report-{i}") for i in range(args.runs)]
    result = {
        "models": n,
        "matrix_rows": rows,
        "seconds": [round(s, 2) for s, _ in runs],
        "median_s": round(statistics.median(s for s, _ in runs), 2),
        "peak_tree_rss_mib": [round(m / 2**20) for _, m in runs],
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
