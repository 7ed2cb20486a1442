"""Files in the output directory (the seed's CSV), written from the database after a run."""

from __future__ import annotations

from pathlib import Path

import duckdb

from .errors import StoreError
from .sqlfiles import sql_text, strip_comments
from .store import connect_db


def write_seed_csv(db: str | Path, models: list[tuple[str, str]], output_dir: str | Path) -> Path:
    """Write ``transformer_matrix_analysis.csv`` for `models` ((model_id, revision) pairs)."""
    keys = [f"{m}@{r}" for m, r in models]
    return export(
        db,
        "csv",
        Path(output_dir) / "transformer_matrix_analysis.csv",
        query=sql_text("store/seed_csv.sql"),
        params={"keys": keys},
        overwrite=True,
    )


FORMATS = {"csv": "(FORMAT csv, HEADER)", "json": "(FORMAT json, ARRAY true)", "parquet": "(FORMAT parquet)"}


def export(
    db: str | Path,
    fmt: str,
    out: str | Path,
    table: str | None = None,
    query: str | None = None,
    params: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """COPY a table/view or a query's result (with its named `params`) to a csv, json or parquet file; an
    existing `out` is replaced only with `overwrite`."""
    if fmt not in FORMATS:
        raise StoreError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if (table is None) == (query is None):
        raise StoreError("give exactly one of --table or --query")
    con = connect_db(db, read_only=True)
    try:
        if table is not None:
            known = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            if table not in known:
                raise StoreError(f"no table or view {table!r}; known: {', '.join(sorted(known))}")
            source = f'SELECT * FROM "{table}"'  # an identifier checked against the catalog, not a value
        else:
            source = strip_comments(query).strip().rstrip(";")
        target = Path(out)
        if target.exists() and (not overwrite or not target.is_file()):
            what = "exists (--force overwrites it)" if target.is_file() else "exists and is not a regular file"
            raise StoreError(f"{target} {what}")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            con.execute(f"COPY ({source}) TO $path {FORMATS[fmt]}", {**(params or {}), "path": str(out)})
        except duckdb.Error as exc:
            raise StoreError(f"export failed: {exc}") from None
    finally:
        con.close()
    return Path(out)
