"""Exports of the results: `tpa-dist export` (a table, view or query to csv/json/parquet) and the seed's CSV that
every run writes — through the SQL sandbox, into exactly the file asked for."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from tpa_dist.db.sandbox import (
    DEFAULT_MEMORY_MIB,
    check_statement,
    close,
    interruptible,
    memory_message,
    open_sandbox,
    out_of_memory,
)
from tpa_dist.db.sqlfiles import sql_text, strip_comments
from tpa_dist.errors import StoreError
from tpa_dist.files import OutputPathError, make_folder, prepare_output


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
_BATCH_ROWS = 2048


def export(
    db: str | Path,
    fmt: str,
    out: str | Path,
    table: str | None = None,
    query: str | None = None,
    params: dict | None = None,
    overwrite: bool = False,
    *,
    timeout_s: float | None = None,
    memory_mib: int = DEFAULT_MEMORY_MIB,
) -> Path:
    """Write a table/view or a query's result (with its named `params`) to a csv, json or parquet file.

    The query runs in the sandbox (sandbox.py: read-only, no file access, one reading statement, never pasted into
    other SQL); its rows stream as Arrow into a private in-memory DuckDB whose fixed COPY writes them to a temporary
    file beside `out`, which then becomes `out` in one rename — so nothing but `out` is ever written, a failed or
    interrupted export leaves no partial file, and an existing `out` is replaced only with `overwrite`."""
    if fmt not in FORMATS:
        raise StoreError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if (table is None) == (query is None):
        raise StoreError("give exactly one of --table or --query")
    try:
        target = prepare_output(out, overwrite, create=False)
    except OutputPathError as exc:
        raise StoreError(str(exc)) from None
    con = open_sandbox(db, memory_mib)
    try:
        if table is not None:
            known = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            if table not in known:
                raise StoreError(f"no table or view {table!r}; known: {', '.join(sorted(known))}")
            source = 'SELECT * FROM "' + table.replace('"', '""') + '"'  # a name from the catalog, quoted
        else:
            source = strip_comments(query).strip()
        check_statement(source)
        try:
            make_folder(target)
        except OutputPathError as exc:
            raise StoreError(str(exc)) from None
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            interruptible(con, lambda: _write(con, source, params, fmt, tmp), timeout_s)
            _publish(tmp, target, overwrite)
        except duckdb.Error as exc:
            if out_of_memory(exc):
                raise StoreError(memory_message(memory_mib)) from None
            raise StoreError(f"export failed: {exc}") from None
        except OSError as exc:
            raise StoreError(f"export failed: {target}: {exc.strerror or exc}") from None
        finally:
            tmp.unlink(missing_ok=True)  # after a hard link the target keeps the data
    finally:
        close(con)
    return target


def _write(con: duckdb.DuckDBPyConnection, source: str, params: dict | None, fmt: str, tmp: Path) -> None:
    """Stream `source`'s rows from the sandbox into `tmp` through a private in-memory DuckDB (its COPY text is
    fixed: the only value in it, the path, is a parameter)."""
    relation = con.sql(source, params=params) if params else con.sql(source)
    reader = relation.to_arrow_reader(_BATCH_ROWS)
    writer = duckdb.connect(":memory:")
    try:
        writer.register("result", reader)
        writer.execute(f"COPY (SELECT * FROM result) TO $path {FORMATS[fmt]}", {"path": str(tmp)})
    finally:
        writer.close()


def _publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """`tmp` becomes `target` in one step; without `overwrite`, never over a file that appeared meanwhile."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # fails if target exists: no window in which another file is replaced
    except FileExistsError:
        raise StoreError(f"{target} exists (--force overwrites it)") from None
    except OSError:  # a filesystem without hard links
        if target.exists() or target.is_symlink():
            raise StoreError(f"{target} exists (--force overwrites it)") from None
        os.replace(tmp, target)
