"""The live progress of a running submit, beside its database: DuckDB allows one writer, so while a submit holds the
file it publishes its counters to `DB.progress.json` after every stored batch; `status`, `sql` and lock messages read
them from there (any content, size or file type survived)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path


def live_progress_path(db: str | os.PathLike[str]) -> Path:
    """The JSON file beside the database where a running submit publishes its progress."""
    return Path(f"{db}.progress.json")


@dataclass(frozen=True)
class LiveProgress:
    """What a running submit publishes after every stored batch (one definition: written and read from here)."""

    run_id: str
    pid: int
    updated: float  # time.time() of the publication
    total: int
    done: int
    reused: int
    failed: int
    bytes: int
    elapsed_s: float = 0.0
    by_device: dict[str, int] = field(default_factory=dict)
    matrices_per_s: float | None = None
    phase: str = "analysis"  # what the run does now: "analysis" (matrices), then "embeddings i/n: <model>"

    @property
    def finished(self) -> int:
        return self.done + self.reused + self.failed

    @property
    def alive(self) -> bool:
        """Whether the process that published it still runs."""
        return _alive(self.pid)

    def describe(self) -> str:
        age = time.time() - self.updated
        gone = "" if self.alive else " — its driver is no longer running: run the same submit again to resume"
        rate = self.matrices_per_s or 0.0
        eta = (self.total - self.finished) / rate if rate else float("nan")
        if self.phase == "analysis":
            now = f", ETA {eta:.0f}s"
        elif self.phase.startswith("analysis ("):  # a census still being planned: the total grows
            now = f", ETA of what is planned {eta:.0f}s {self.phase[len('analysis ') :]}"
        elif self.phase in ("planning", "starting workers"):
            now = f"; now {self.phase}"
        else:
            now = f"; matrices done, now {self.phase}"
        return (
            f"run {self.run_id} (pid {self.pid}): {self.finished}/{self.total} matrices "
            f"({self.reused} reused, {self.failed} failed), {self.bytes / 2**30:.2f} GiB, "
            f"{rate:.1f} mat/s{now}, by device {self.by_device}; updated {age:.0f}s ago{gone}"
        )


def write_live_progress(db: str | os.PathLike[str], summary, progress) -> None:  # noqa: ANN001
    """Atomically publish a run's counters (a RunSummary and the run's Progress), readable while DuckDB's writer
    lock is held."""
    elapsed = time.monotonic() - progress.start
    doc = LiveProgress(
        run_id=summary.run_id,
        pid=os.getpid(),
        updated=time.time(),
        total=summary.total,
        done=summary.done,
        reused=summary.reused,
        failed=summary.failed,
        bytes=summary.bytes,
        elapsed_s=elapsed,
        by_device=dict(progress.by_device),
        matrices_per_s=progress.done / elapsed if elapsed > 0 else None,
        phase=f"analysis ({progress.note}; the total grows)" if progress.note else "analysis",
    )
    _publish(db, doc)


def write_live_phase(db: str | os.PathLike[str], summary, phase: str) -> None:  # noqa: ANN001
    """Publish what the run does after its matrices (`phase`), keeping the counters and rate this run last
    published (none yet: a fully reused run starts here)."""
    last = live_progress(db)
    if last is None or last.run_id != summary.run_id:
        last = LiveProgress(summary.run_id, os.getpid(), 0.0, summary.total, 0, 0, 0, 0)
    counts = {"done": summary.done, "reused": summary.reused, "failed": summary.failed, "bytes": summary.bytes}
    _publish(db, replace(last, pid=os.getpid(), updated=time.time(), total=summary.total, phase=phase, **counts))


def _publish(db: str | os.PathLike[str], doc: LiveProgress) -> None:
    path = live_progress_path(db)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(doc)))
    tmp.replace(path)


def live_progress(db: str | Path) -> LiveProgress | None:
    """The progress a running submit last published for `db`, or None (also for a file that is not one: any
    content, size or file type is survived, every field type-checked)."""
    path = live_progress_path(db)
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or set(doc) - {f.name for f in fields(LiveProgress)}:
        return None
    try:
        record = LiveProgress(**doc)
    except TypeError:  # a field missing
        return None
    numbers = (record.pid, record.total, record.done, record.reused, record.failed, record.bytes)
    if not isinstance(record.run_id, str) or not all(isinstance(v, int) and not isinstance(v, bool) for v in numbers):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (record.updated, record.elapsed_s)):
        return None
    if not isinstance(record.matrices_per_s, (int, float, type(None))) or not isinstance(record.by_device, dict):
        return None
    if not isinstance(record.phase, str):
        return None
    return record


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
