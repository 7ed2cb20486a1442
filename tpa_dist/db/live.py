"""The live progress of a running submit, beside its database: DuckDB allows one writer, so while a submit holds the
file it publishes its counters to `DB.progress.json` after every stored batch; `status`, `sql` and lock messages read
them from there (any content, size or file type survived)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def live_progress_path(db: str | os.PathLike[str]) -> Path:
    """The JSON file beside the database where a running submit publishes its progress."""
    return Path(f"{db}.progress.json")


def write_live_progress(db: str | os.PathLike[str], summary, progress) -> None:  # noqa: ANN001
    """Atomically publish a run's counters (a RunSummary and the run's Progress), readable while DuckDB's writer
    lock is held."""
    elapsed = time.monotonic() - progress.start
    doc = {
        "run_id": summary.run_id,
        "pid": os.getpid(),
        "updated": time.time(),
        "total": summary.total,
        "done": summary.done,
        "reused": summary.reused,
        "failed": summary.failed,
        "bytes": summary.bytes,
        "elapsed_s": elapsed,
        "by_device": progress.by_device,
        "matrices_per_s": progress.done / elapsed if elapsed > 0 else None,
    }
    path = live_progress_path(db)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


_FIELDS = {
    "run_id": str,
    "pid": int,
    "updated": (int, float),
    "total": int,
    "done": int,
    "reused": int,
    "failed": int,
    "bytes": int,
}


def live_progress(db: str | Path) -> dict | None:
    """The progress a running submit last published for `db`, or None (also for a file that is not one: any
    content, size or file type is survived)."""
    path = live_progress_path(db)
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    for key, kind in _FIELDS.items():
        if not isinstance(doc.get(key), kind) or isinstance(doc.get(key), bool):
            return None
    if not isinstance(doc.get("matrices_per_s"), (int, float, type(None))) or not isinstance(
        doc.get("by_device", {}), dict
    ):
        return None
    return doc


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
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
        f"{rate:.1f} mat/s, ETA {eta:.0f}s, by device {doc.get('by_device', {})}; updated {age:.0f}s ago{gone}"
    )
