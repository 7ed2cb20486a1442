"""A census as a dataset to publish: every table of the database (spectra included) as Parquet, hive-partitioned by a
column (model_id) — `tpa-dist export --format parquet --partition-by model_id --out DIR`.

Layout: DIR/<table>/model_id=<value>/data_0.parquet for the tables with the column (DuckDB escapes each value into
one folder name: `org%2Fname`, never a path), DIR/<table>/data.parquet for the others, and DIR/manifest.json naming
each table, its rows and the read_parquet call that reads it back equal. The rows stream from the sandbox
(sandbox.py) through a private in-memory DuckDB into a temporary folder beside DIR, which becomes DIR in one rename:
an interrupted export leaves nothing, and nothing is written outside DIR."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import duckdb

from tpa_dist import __version__
from tpa_dist.db.sandbox import DEFAULT_MEMORY_MIB, close, interruptible, memory_message, open_sandbox, out_of_memory
from tpa_dist.errors import StoreError

MANIFEST = "manifest.json"
_BATCH_ROWS = 2048


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_call(out: str, table: str, partitioned: bool, partition_by: str = "model_id") -> str:
    """The DuckDB expression that reads one exported table back (the partition column as text: a model named
    `2024` stays a name, not a number)."""
    if partitioned:
        column = _literal(partition_by)
        return (
            f"read_parquet('{out}/{table}/*/*.parquet', hive_partitioning = true, hive_types = {{{column}: VARCHAR}})"
        )
    return f"read_parquet('{out}/{table}/data.parquet')"


def export_dataset(
    db: str | Path,
    out: str | Path,
    partition_by: str = "model_id",
    tables: list[str] | None = None,
    overwrite: bool = False,
    *,
    timeout_s: float | None = None,
    memory_mib: int = DEFAULT_MEMORY_MIB,
) -> dict[str, int]:
    """Write every table (or `tables`) of `db` under the folder `out`; returns each table's row count. An existing
    `out` is replaced only with `overwrite` and only when it is an earlier export (it has manifest.json)."""
    target = Path(out)
    if target.is_symlink() or target.exists():
        if not overwrite:
            raise StoreError(f"{target} exists (--force replaces an earlier export)")
        if not (target.is_dir() and not target.is_symlink() and (target / MANIFEST).is_file()):
            raise StoreError(f"{target} exists and is not an earlier export (no {MANIFEST}); choose another --out")
    con = open_sandbox(db, memory_mib)
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    try:
        known = {
            name: [c for (c,) in con.execute(f"SELECT name FROM pragma_table_info({_literal(name)})").fetchall()]
            for (name,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY table_name"
            ).fetchall()
        }
        chosen = tables or list(known)
        unknown = [t for t in chosen if t not in known]
        if unknown:
            raise StoreError(f"no table {', '.join(map(repr, unknown))}; tables: {', '.join(known)}")
        if not any(partition_by in known[t] for t in chosen):
            raise StoreError(f"--partition-by {partition_by!r}: no exported table has that column")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
        except OSError as exc:
            raise StoreError(f"{target}: cannot create the folder: {exc.strerror or exc}") from None
        manifest: dict[str, object] = {
            "format": "tpa-dist dataset (Parquet)",
            "tpa_dist": __version__,
            "database": Path(db).name,
            "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "partition_by": partition_by,
            "tables": {},
        }
        counts = {}
        for table in chosen:
            partitioned = partition_by in known[table]
            try:
                rows = interruptible(con, lambda t=table, p=partitioned: _copy(con, t, partition_by, p, tmp), timeout_s)
            except duckdb.Error as exc:
                if out_of_memory(exc):
                    raise StoreError(memory_message(memory_mib)) from None
                raise StoreError(f"export of {table} failed: {exc}") from None
            except OSError as exc:
                raise StoreError(f"export of {table} failed: {exc.strerror or exc}") from None
            counts[table] = rows
            manifest["tables"][table] = {  # type: ignore[index]
                "rows": rows,
                "partitioned": partitioned,
                "read": read_call(".", table, partitioned, partition_by),
            }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")
        _publish(tmp, target)
    finally:
        close(con)
        shutil.rmtree(tmp, ignore_errors=True)
    return counts


def _literal(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _copy(con: duckdb.DuckDBPyConnection, table: str, partition_by: str, partitioned: bool, tmp: Path) -> int:
    """Stream one table from the sandbox into tmp/<table>; its row count."""
    rows = con.execute(f"SELECT count(*) FROM {_ident(table)}").fetchone()[0]  # a name from the catalog
    folder = tmp / table
    if not rows:
        folder.mkdir()  # an empty table: its folder, with no file (the manifest says 0 rows)
        return 0
    cursor = con.cursor()  # its own pending result: the next table's starts clean
    reader = cursor.sql(f"SELECT * FROM {_ident(table)}").to_arrow_reader(_BATCH_ROWS)  # streamed, never held whole
    writer = duckdb.connect(":memory:")
    try:
        writer.register("result", reader)
        if partitioned:
            writer.execute(
                f"COPY (SELECT * FROM result) TO $path (FORMAT parquet, PARTITION_BY ({_ident(partition_by)}))",
                {"path": str(folder)},
            )
        else:
            folder.mkdir()
            writer.execute(
                "COPY (SELECT * FROM result) TO $path (FORMAT parquet)", {"path": str(folder / "data.parquet")}
            )
    finally:
        writer.close()
        reader.close()
        cursor.close()
    return int(rows)


def _publish(tmp: Path, target: Path) -> None:
    """`tmp` becomes `target`; an earlier export there is moved aside first and removed after."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.{os.getpid()}.old"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["MANIFEST", "export_dataset", "read_call"]
