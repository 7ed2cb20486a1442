"""Read-only SQL for the `sql` command and report sections: the tpa-dist database and nothing else, through the one
sandbox (sandbox.py). Results stream from DuckDB as small Arrow batches and are cut at a row and a byte cap before
more is fetched, so a runaway query is stopped early rather than held in memory whole."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from tpa_dist.db.sandbox import (
    DEFAULT_MEMORY_MIB,
    DEFAULT_TIMEOUT_S,
    check_statement,
    close,
    interruptible,
    memory_message,
    open_sandbox,
    out_of_memory,
)
from tpa_dist.db.sqlfiles import strip_comments
from tpa_dist.errors import StoreError
from tpa_dist.files import read_text_limited

MAX_ROWS = 10_000
MAX_BYTES = 64 << 20
MAX_SQL_BYTES = 1 << 20
_BATCH_ROWS = 64  # rows per Arrow batch: the byte cap is checked between batches


@dataclass
class QueryResult:
    """Column names, rows, and — when a cap cut the result — a note saying so and how to raise it."""

    columns: list[str]
    rows: list[tuple]
    truncated: bool = False
    note: str | None = None


def fetch_capped(
    con: duckdb.DuckDBPyConnection, query: str, params: dict | None, max_rows: int, max_bytes: int
) -> QueryResult:
    """At most `max_rows` rows (the relation's own limit: DuckDB stops there) and about `max_bytes` bytes of one
    reading statement's result."""
    check_statement(query)
    relation = con.sql(query, params=params) if params else con.sql(query)
    if relation is None:  # pragma: no cover - check_statement lets only reading statements through
        raise StoreError("query failed: the statement returned no result")
    cols = list(relation.columns)
    rows: list[tuple] = []
    size = 0
    for batch in relation.limit(max_rows + 1).to_arrow_reader(_BATCH_ROWS):
        for row in zip(*(column.to_pylist() for column in batch.columns)):
            if len(rows) >= max_rows:
                return QueryResult(cols, rows, True, f"result cut at {max_rows:,} rows; --max-rows raises the cap")
            if size > max_bytes:
                note = f"result cut at {max_bytes >> 20} MiB; --max-mib raises the cap"
                return QueryResult(cols, rows, True, note)
            rows.append(row)
            size += sum(_size(v) for v in row)
    return QueryResult(cols, rows)


def _size(v: object) -> int:
    if isinstance(v, (str, bytes)):
        return len(v) + 16
    if isinstance(v, (list, tuple)):
        return 16 + sum(_size(x) for x in v)
    if isinstance(v, dict):
        return 16 + sum(_size(k) + _size(x) for k, x in v.items())
    return 16


def run_query(
    db: str | Path,
    query: str,
    params: dict | None = None,
    max_rows: int = MAX_ROWS,
    max_bytes: int = MAX_BYTES,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    memory_mib: int = DEFAULT_MEMORY_MIB,
) -> QueryResult:
    """A query's result from the sandbox; SQL errors, time-outs and out-of-memory become StoreError."""
    if max_rows < 1 or max_bytes < 1:
        raise StoreError(f"--max-rows and --max-bytes must be at least 1, got {max_rows} and {max_bytes}")
    con = open_sandbox(db, memory_mib)
    try:
        return interruptible(con, lambda: fetch_capped(con, query, params, max_rows, max_bytes), timeout_s)
    except duckdb.Error as exc:
        if out_of_memory(exc):
            raise StoreError(memory_message(memory_mib)) from None
        raise StoreError(f"query failed: {exc}") from None
    except MemoryError:
        raise StoreError(memory_message(memory_mib)) from None
    finally:
        close(con)


def run_sql(
    db: str | Path,
    query: str | None,
    sql_file: str | Path | None,
    models: list[str] | None,
    max_rows: int | None = None,
    *,
    max_bytes: int = MAX_BYTES,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    memory_mib: int = DEFAULT_MEMORY_MIB,
) -> QueryResult:
    """`tpa-dist sql`: a query or a .sql file (header comments allowed); `$models` is bound to `models`, or to
    every model in the database when not given."""
    if sql_file is not None and not Path(sql_file).exists():
        query, sql_file = bundled_section(str(sql_file)), None
    if sql_file is not None:
        try:
            query = read_text_limited(sql_file, MAX_SQL_BYTES)
        except UnicodeDecodeError:
            raise StoreError(f"{sql_file}: not UTF-8 text") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"{sql_file}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    body = strip_comments(query or "").strip()
    if not body:
        raise StoreError("empty query")
    params = None
    if "$models" in body:
        if models is None:
            models = [m for (m,) in run_query(db, "SELECT DISTINCT model_id FROM models ORDER BY 1").rows]
        params = {"models": models}
    limits = dict(max_bytes=max_bytes, timeout_s=timeout_s, memory_mib=memory_mib)
    return run_query(db, body, params, max_rows=MAX_ROWS if max_rows is None else max_rows, **limits)


def bundled_section(name: str) -> str:
    """The SQL of a bundled report section by name — `05_compressibility`, `05_compressibility.sql` or
    `compressibility` — for `tpa-dist sql --file NAME`; an unknown name is an error listing the names there are."""
    from tpa_dist.db.sqlfiles import sql_files

    sections = {f.name.removesuffix(".sql"): f for f in sql_files("reports")}
    key = name.removesuffix(".sql")
    found = sections.get(key) or next((f for stem, f in sections.items() if stem.split("_", 1)[-1] == key), None)
    if found is None:
        raise StoreError(
            f"--file {name}: no such file, and no bundled report section of that name; the sections are: "
            + ", ".join(sorted(sections))
        )
    return found.read_text(encoding="utf-8")


#: columns newer than some stored databases: read as NULL from those (a read-only connection cannot add them)
NEWER_COLUMNS = {
    "matrix_analysis": {"snr": "DOUBLE"},
    "delta_analysis": {"snr": "DOUBLE"},
    "embedding_gap": {"gap_se": "DOUBLE", "chosen": "INTEGER"},
    "embedding_choice": {"verdict": "VARCHAR", "verdict_words": "VARCHAR", "gap_subsamples": "INTEGER"},
}


def show_latest(con: duckdb.DuckDBPyConnection, latest: bool = True) -> None:
    """On this connection, every table of per-model rows shows each model's latest revision only
    (sql/outputs/latest_revisions.sql; all of them with `latest=False`) and has the columns of the current schema:
    temporary views of the same names shadow the tables, so the report's sections — a user's own included — and the
    bundled views read them unchanged."""
    from tpa_dist.db.sqlfiles import sql_text

    database = con.execute("SELECT current_database()").fetchone()[0]
    columns: dict[str, set[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main'"
    ).fetchall():
        columns.setdefault(table, set()).add(column)
    latest_sql = sql_text("outputs/latest_revisions.sql").strip().rstrip(";")
    con.execute(f"CREATE OR REPLACE TEMP VIEW latest_revisions AS {latest_sql}")  # the project's own SQL
    for table, have in sorted(columns.items()):
        keyed = {"model_id", "revision"} <= have and table != "models"  # models also lists failures ('unresolved')
        missing = {c: kind for c, kind in NEWER_COLUMNS.get(table, {}).items() if c not in have}
        if not (keyed and latest) and not missing:
            continue
        source = '"' + database.replace('"', '""') + '".main."' + table.replace('"', '""') + '"'
        extra = "".join(f", NULL::{kind} AS {c}" for c, kind in missing.items())
        where = (
            " SEMI JOIN latest_revisions l ON t.model_id = l.model_id AND t.revision = l.revision"
            if keyed and latest
            else ""
        )
        con.execute(f'CREATE OR REPLACE TEMP VIEW "{table}" AS SELECT t.*{extra} FROM {source} t{where}')


def plan_objects(con: duckdb.DuckDBPyConnection) -> None:
    """On this (read-only) connection, the project's views and macros (sql/views.sql) as temporary ones: a database
    stored before a view existed has it too (the same definitions shadow the stored ones), and a table it lacks
    (stored before --rmt existed) is there empty, so the views over it read as no rows."""
    from tpa_dist.db.sqlfiles import sql_text, statements

    have = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() OR temporary"
        ).fetchall()
    }
    for stmt in statements(sql_text("schema.sql")):
        found = re.match(r"^CREATE TABLE IF NOT EXISTS (\w+)", stmt)
        if found and found.group(1) not in have:
            con.execute(stmt.replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1))
    for stmt in statements(sql_text("views.sql")):
        con.execute(re.sub(r"^CREATE OR REPLACE (VIEW|MACRO)", r"CREATE OR REPLACE TEMP \1", stmt))


def _display(v: object) -> str:
    from tpa_dist.text import cell_number, printable

    if v is None:
        return "NULL"
    if isinstance(v, float):
        return cell_number(v, significant=6)
    return printable(str(v))


def format_result(result: QueryResult, fmt: str) -> str:
    cols, rows = result.columns, result.rows
    note = f"\n({result.note})" if result.note else ""
    if fmt == "json":
        return json.dumps([dict(zip(cols, r)) for r in rows], default=str, indent=1) + note
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(cols)
        writer.writerows(rows)
        return buf.getvalue().rstrip("\n") + note
    cells = [cols] + [[_display(v) for v in r] for r in rows]
    widths = [min(CELL_WIDTH, max(len(row[i]) for row in cells)) for i in range(len(cols))]
    cut = any(len(c) > CELL_WIDTH for row in cells for c in row)
    lines = [" | ".join(_fit(c).ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    notes = [result.note] if result.note else []
    if cut:
        notes.append(f"cells over {CELL_WIDTH} characters end with … here: --format csv or json shows them whole")
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''}{''.join(', ' + n for n in notes)})")
    return "\n".join(lines)


CELL_WIDTH = 60  # characters of a table cell on the console


def _fit(cell: str) -> str:
    """A console cell: whole, or cut with a visible mark."""
    return cell if len(cell) <= CELL_WIDTH else cell[: CELL_WIDTH - 1] + "…"
