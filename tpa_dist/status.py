"""`status`: recent runs from the database, or the live progress of a run that holds the writer lock."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .errors import StoreLockedError
from .progress import live_progress_path
from .query import format_result, run_query
from .store import sql_text


def live_progress(db: str | Path) -> dict | None:
    """The progress a running submit last published for `db`, or None."""
    path = live_progress_path(db)
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_live(doc: dict) -> str:
    age = time.time() - doc.get("updated", 0)
    gone = (
        ""
        if _alive(int(doc.get("pid", 0)))
        else (" — its driver is no longer running: run the same submit again to resume")
    )
    finished = doc["done"] + doc["reused"] + doc["failed"]
    rate = doc.get("matrices_per_s") or 0.0
    eta = (doc["total"] - finished) / rate if rate else float("nan")
    return (
        f"run {doc['run_id']} (pid {doc['pid']}): {finished}/{doc['total']} matrices "
        f"({doc['reused']} reused, {doc['failed']} failed), {doc['bytes'] / 2**30:.2f} GiB, "
        f"{rate:.1f} mat/s, ETA {eta:.0f}s, by device {doc['by_device']}; updated {age:.0f}s ago{gone}"
    )


def status_text(db: str | Path, limit: int = 10) -> str:
    """Recent runs; while a submit holds the lock, its live progress instead."""
    try:
        result = run_query(db, sql_text("store/recent_runs.sql"), {"limit": limit})
    except StoreLockedError:
        doc = live_progress(db)
        if doc is None:
            return f"{db} is being written by a running submit; no progress published yet"
        return "in flight (database locked by its writer):\n" + describe_live(doc)
    text = format_result(result, "table")
    doc = live_progress(db)
    running = any(row[2] == "running" for row in result[1])
    if doc and running:
        text += "\n\nlast published progress:\n" + describe_live(doc)
    return text
