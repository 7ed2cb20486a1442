"""`status`: recent runs from the database, or the live progress of a run that holds the writer lock."""

from __future__ import annotations

from pathlib import Path

from tpa_dist.db.live import live_progress
from tpa_dist.db.query import format_result, run_query
from tpa_dist.db.sqlfiles import sql_text
from tpa_dist.errors import StoreLockedError
from tpa_dist.text import printable


def status_text(db: str | Path, limit: int = 10) -> str:
    """Recent runs; while a submit holds the lock, its live progress instead."""
    try:
        result = run_query(db, sql_text("store/recent_runs.sql"), {"limit": limit})
    except StoreLockedError:
        doc = live_progress(db)
        if doc is None:
            return f"{db} is being written by a running submit; no progress published yet"
        return "in flight (database locked by its writer):\n" + printable(doc.describe())  # a model name in its phase
    text = format_result(result, "table")
    doc = live_progress(db)
    running = {row[0] for row in result.rows if row[2] == "running"}
    if doc and doc.run_id in running:
        text += "\n\nlast published progress:\n" + printable(doc.describe())
    return text
