"""The report's figures alone: every figure of a small report drawn one after another in one process — the CPU
seconds matplotlib spends, and how many times it draws a whole figure (once per PNG is the least it can).

The database is one real run of four synthetic models (tiny-llama, tiny-mixtral, tiny-gpt2, tiny-bert; every table
filled, embeddings too), as a small-model report sees it. Run it on two trees (PYTHONPATH=tree) to compare them.

    python benchmarks/bench_figures.py [--rounds 3] [--out benchmarks/results/figures.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = "synth:tiny-llama,synth:tiny-mixtral,synth:tiny-gpt2,synth:tiny-bert"


def build(db: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "tpa_dist", "submit", "--models", MODELS, "--db", str(db), "--no-report"]
        + ["--output-dir", str(db.parent / "run"), "--no-progress", "--quiet"],
        check=True,
        capture_output=True,
    )


def draw_all(db: Path, rounds: int) -> dict:
    """Every figure of the report's sections and each model's embedding figures, `rounds` times: CPU seconds per
    round (process time), whole-figure draws per round."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from tpa_dist.db.query import plan_objects, show_latest
    from tpa_dist.db.sandbox import open_sandbox
    from tpa_dist.report import plots, render
    from tpa_dist.report.embedding_files import stored_results
    from tpa_dist.report.palette import Palette
    from tpa_dist.report.sections import load_sections

    draws = [0]
    draw = Figure.draw

    def counted(fig: Figure, renderer: object) -> None:
        draws[0] += 1
        draw(fig, renderer)

    Figure.draw = counted  # type: ignore[method-assign]
    con = open_sandbox(db)
    show_latest(con, latest=True)
    plan_objects(con)
    models = sorted(r[0] for r in con.execute("SELECT DISTINCT model_id FROM models").fetchall())
    revisions = dict(con.execute("SELECT model_id, revision FROM models").fetchall())
    palette = Palette(models)
    sections = [r for r in render.query(con, load_sections(), models) if r.section.draw != "table" and r.rows]
    con.close()
    embeddings = [(m, stored_results(db, m, revisions[m])) for m in models]
    jobs = [(render._draw, (r.section, r.columns, render._figure_rows(r), palette)) for r in sections]
    jobs += [(f, (m, res)) for m, res in embeddings if res for f in (plots.anova_curve, plots.embedding_projection)]
    cpu = []
    for _ in range(rounds):
        draws[0] = 0
        t0 = time.process_time()
        for fn, args in jobs:
            fn(*args)
        cpu.append(round(time.process_time() - t0, 3))
    return {"figures": len(jobs), "draws_per_round": draws[0], "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "figures.duckdb"
        build(db)
        result = draw_all(db, args.rounds)
    result["median_cpu_s"] = sorted(result["cpu_s"])[len(result["cpu_s"]) // 2]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
