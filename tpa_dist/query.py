"""Read-only queries for the `sql` command and Python users."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb

from .errors import StoreError
from .store import connect_db


def run_query(db: str | Path, query: str, params: dict | None = None) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of a query on a read-only connection; SQL errors become StoreError."""
    con = connect_db(db, read_only=True)
    try:
        cur = con.execute(query, params) if params else con.execute(query)
        return [d[0] for d in cur.description or []], cur.fetchall()
    except duckdb.Error as exc:
        raise StoreError(f"query failed: {exc}") from None
    finally:
        con.close()


def format_result(result: tuple[list[str], list[tuple]], fmt: str) -> str:
    cols, rows = result
    if fmt == "json":
        return json.dumps([dict(zip(cols, r)) for r in rows], default=str, indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(cols)
        writer.writerows(rows)
        return buf.getvalue().rstrip("\n")
    cells = [cols] + [
        ["NULL" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v)) for v in r] for r in rows
    ]
    widths = [min(60, max(len(row[i]) for row in cells)) for i in range(len(cols))]
    lines = [" | ".join(c[:60].ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)
