"""Read-only SQL for the `sql` command, report sections and Python users: the tpa-dist database and nothing else.

Connections are opened read-only with DuckDB's own switches: ``enable_external_access = false`` (no ATTACH,
COPY, EXPORT, INSTALL, file-reading table functions) and ``lock_configuration = true`` (no SET/PRAGMA that
would undo it). Results are fetched in chunks up to a row and byte cap, so a runaway query cannot exhaust memory.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .errors import StoreError
from .files import read_text_limited
from .sqlfiles import strip_comments
from .store import connect_db

MAX_ROWS = 10_000
MAX_BYTES = 64 << 20
MAX_SQL_BYTES = 1 << 20
_CHUNK = 2048


@dataclass
class QueryResult:
    """Column names, rows, and — when a cap cut the result — a note saying so and how to raise it."""

    columns: list[str]
    rows: list[tuple]
    truncated: bool = False
    note: str | None = None


def fetch_capped(cur: duckdb.DuckDBPyConnection, max_rows: int, max_bytes: int) -> QueryResult:
    """Fetch at most `max_rows` rows and about `max_bytes` bytes of a query's result."""
    cols = [d[0] for d in cur.description or []]
    rows: list[tuple] = []
    size = 0
    while True:
        chunk = cur.fetchmany(_CHUNK)
        if not chunk:
            return QueryResult(cols, rows)
        for row in chunk:
            if len(rows) >= max_rows or size > max_bytes:
                what = f"{max_rows:,} rows" if len(rows) >= max_rows else f"{max_bytes >> 20} MiB"
                return QueryResult(cols, rows, True, f"result cut at {what}; --max-rows raises the cap")
            rows.append(row)
            size += sum(_size(v) for v in row)


def _size(v: object) -> int:
    if isinstance(v, (str, bytes)):
        return len(v) + 16
    if isinstance(v, (list, tuple)):
        return 16 + sum(_size(x) for x in v)
    return 16


def run_query(
    db: str | Path, query: str, params: dict | None = None, max_rows: int = MAX_ROWS, max_bytes: int = MAX_BYTES
) -> QueryResult:
    """A query's result on a sandboxed read-only connection; SQL errors become StoreError."""
    con = connect_db(db, read_only=True, sandbox=True)
    try:
        cur = con.execute(query, params) if params else con.execute(query)
        return fetch_capped(cur, max_rows, max_bytes)
    except duckdb.Error as exc:
        raise StoreError(f"query failed: {exc}") from None
    finally:
        con.close()


def run_sql(
    db: str | Path, query: str | None, sql_file: str | Path | None, models: list[str] | None, max_rows: int | None
) -> QueryResult:
    """`tpa-dist sql`: a query or a .sql file (header comments allowed); `$models` is bound to `models`, or to
    every model in the database when not given."""
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
    return run_query(db, body, params, max_rows=max_rows or MAX_ROWS)


def _display(v: object) -> str:
    from .text import printable

    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:.6g}"
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
    widths = [min(60, max(len(row[i]) for row in cells)) for i in range(len(cols))]
    lines = [" | ".join(c[:60].ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''}{', ' + result.note if result.note else ''})")
    return "\n".join(lines)
