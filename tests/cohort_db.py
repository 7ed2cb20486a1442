"""A cohort database in seconds: one analyzed model's rows copied as N models of a family, each a slightly different
fine-tune (its alphas and stable ranks scaled per matrix by 1 ± a few per cent), with planted outliers and exact
copies — what the cohort sections must find. Used by tests/test_cohort_report.py and benchmarks/bench_cohort.py."""

from __future__ import annotations

from pathlib import Path

import duckdb

#: the tables whose rows belong to a model (copied for each member); runs and settings are shared
MODEL_TABLES = ("models", "tensors", "matrix_analysis", "spectra")


def clone_cohort(
    db: str | Path, source: str, n: int, outliers: int = 3, copies: int = 4, seed: float = 0.25
) -> list[str]:
    """Add `n` models to `db`, copies of `source`'s rows: `member-0001` … in order; the first `copies` are exact
    copies of the source (a near-identical group with it), the last `outliers` have every q_proj's alpha × 1.8 and
    stable rank × 0.4 (outliers), the others scale each matrix's alpha and stable rank by 1 + 3 % × N(0, 1).
    Returns the new model ids in order."""
    names = [f"member-{i:04d}" for i in range(1, n + 1)]
    con = duckdb.connect(str(db))
    try:
        con.execute("SELECT setseed($s)", {"s": seed})
        con.execute("CREATE TEMP TABLE members AS SELECT unnest($names) AS name, generate_subscripts($names, 1) AS i",
                    {"names": names})  # fmt: skip
        for table in MODEL_TABLES:
            generated = ("svd_90_percent_rank", "svd_90_percent_ratio") if table == "matrix_analysis" else ()
            cols = [
                c
                for (c,) in con.execute(f"SELECT name FROM pragma_table_info('{table}')").fetchall()
                if c not in generated
            ]
            listed = ", ".join(f"m.name AS {c}" if c == "model_id" else f"t.{c}" for c in cols)
            con.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) SELECT {listed} "
                f"FROM {table} t, members m WHERE t.model_id = $source",
                {"source": source},
            )
        con.execute(
            """
            UPDATE matrix_analysis SET
                alpha = CASE WHEN i > $n - $outliers AND block_type = 'q_proj' THEN alpha * 1.8
                             WHEN i > $n - $outliers THEN alpha
                             ELSE alpha * (1 + 0.03 * sqrt(-2 * ln(random())) * cos(2 * pi() * random())) END,
                stable_rank = CASE WHEN i > $n - $outliers AND block_type = 'q_proj' THEN stable_rank * 0.4
                                   WHEN i > $n - $outliers THEN stable_rank
                                   ELSE stable_rank * (1 + 0.03 * sqrt(-2 * ln(random())) * cos(2 * pi() * random()))
                              END
            FROM members
            WHERE matrix_analysis.model_id = members.name AND members.i > $copies
            """,
            {"n": n, "outliers": outliers, "copies": copies},
        )
    finally:
        con.close()
    return names
