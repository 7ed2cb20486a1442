"""Files in the output directory (the seed's CSV), written from the database after a run."""

from __future__ import annotations

from pathlib import Path

import pyarrow.csv as pacsv

from .store import connect_db, sql_text


def write_seed_csv(db: str | Path, models: list[tuple[str, str]], output_dir: str | Path) -> Path:
    """Write ``transformer_matrix_analysis.csv`` for `models` ((model_id, revision) pairs)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    con = connect_db(db, read_only=True)
    try:
        table = con.sql(
            sql_text("store/seed_csv.sql"), params={"keys": [f"{m}@{r}" for m, r in models]}
        ).to_arrow_table()
    finally:
        con.close()
    path = out / "transformer_matrix_analysis.csv"
    pacsv.write_csv(table, path)
    return path
