"""One sandbox for every SQL text a user supplies — `sql`, `sql --file`, `export --query`, report sections and
`report --sql-dir`: the results database read-only and nothing else, one statement that only reads, never spliced
into other SQL text, bounded in memory and time.

* The connection: read-only, DuckDB's ``enable_external_access = false`` (no ATTACH, COPY, EXPORT, INSTALL,
  file-reading functions), no extension auto-loading, a ``memory_limit``, and ``lock_configuration = true`` so no
  SET or PRAGMA undoes any of it.
* The text: exactly one statement (``duckdb.extract_statements``), of a reading type (SELECT and its DESCRIBE,
  SHOW, SUMMARIZE, FROM, VALUES forms; EXPLAIN). It runs as it is, as a DuckDB relation; row caps are the
  relation's own ``.limit()``, and exports read its Arrow stream — no text is ever pasted around it.
* Time: the call runs on a thread, and the connection is interrupted after ``timeout_s`` or on Ctrl-C (within a
  tenth of a second); what DuckDB does not account in ``memory_limit`` (a string built by a projection) is bounded
  for the `sql` and `export` commands by the process's own data limit (``bounded_memory``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tpa_dist.errors import StoreError

log = logging.getLogger("tpa_dist")

if TYPE_CHECKING:  # duckdb is imported where a query runs: the command line's start stays light
    import duckdb

T = TypeVar("T")

DEFAULT_MEMORY_MIB = 2048  # DuckDB's memory_limit for a sandboxed connection
DEFAULT_TIMEOUT_S = 300.0  # a query still running after this is interrupted
PROCESS_HEADROOM_MIB = 1024  # bounded_memory: the interpreter, pyarrow and the rows fetched, beyond DuckDB's limit
READING = {"SELECT", "EXPLAIN"}


class QueryTimeout(StoreError):
    """A sandboxed query ran longer than its time limit and was interrupted."""


def check_statement(sql: str) -> None:
    """Refuse anything but exactly one reading statement, with a message that says what was given."""
    import duckdb

    try:
        found = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise StoreError(f"query failed: {str(exc).strip().splitlines()[0]}") from None
    if not found:
        raise StoreError("query failed: empty query")
    if len(found) > 1:
        kinds = ", ".join(s.type.name for s in found[:5])
        raise StoreError(
            f"query failed: one statement at a time: this text holds {len(found)} ({kinds}); run each on its own "
            "(statements are never chained, so no output is lost silently)"
        )
    kind = found[0].type.name
    if kind not in READING:
        raise StoreError(
            f"query failed: only statements that read run here (SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN), not {kind}: "
            "the results database is read-only in tpa-dist sql, reports and exports"
        )


def open_sandbox(db: str | Path, memory_mib: int = DEFAULT_MEMORY_MIB) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a tpa-dist database with the sandbox's settings (module docstring)."""
    from tpa_dist.db.store import connect_db

    return connect_db(db, read_only=True, sandbox=True, memory_mib=memory_mib)


def interruptible(con: duckdb.DuckDBPyConnection, work: Callable[[], T], timeout_s: float | None) -> T:
    """`work()` — DuckDB calls on `con` — on a thread of its own; `con` is interrupted when `timeout_s` passes
    (QueryTimeout) or Ctrl-C arrives (KeyboardInterrupt, within a tenth of a second)."""
    box: dict[str, object] = {}
    done = threading.Event()  # (an interrupted Thread.join may leave a live thread looking finished: an Event)

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread as it is
            box["error"] = exc
        finally:
            done.set()

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    thread = threading.Thread(target=run, name="tpa-sandbox", daemon=True)
    try:  # (a Ctrl-C may land on any line from here: each is inside the handler's reach)
        thread.start()
        log.debug("query running (interrupted after %s s, or by Ctrl-C)", timeout_s)
        while not done.wait(0.1):
            if deadline is not None and time.monotonic() > deadline:
                _stop(con, done, thread)
                box.clear()
                raise QueryTimeout(
                    f"query interrupted after {timeout_s:g} s (--timeout raises the limit; narrow the query with "
                    "WHERE or LIMIT)"
                )
    except KeyboardInterrupt:
        _stop(con, done, thread)
        box.clear()  # the interrupted query's reader goes with it
        raise
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _stop(
    con: duckdb.DuckDBPyConnection, done: threading.Event, thread: threading.Thread, patience_s: float = 10.0
) -> None:
    """Interrupt `con` until its call has returned (an interrupt that lands before the query has started is lost:
    send it again), then let the thread finish: a thread still inside DuckDB when the interpreter exits aborts it."""
    end = time.monotonic() + patience_s
    while True:
        con.interrupt()
        if done.wait(0.05) or time.monotonic() > end:
            break
    thread.join(max(0.0, end - time.monotonic()))


def close(con: duckdb.DuckDBPyConnection) -> None:
    """Close a sandboxed connection, also one whose interrupted query a reader still holds (it is busy then)."""
    import duckdb

    try:
        con.close()
    except duckdb.Error:
        pass


@contextmanager
def bounded_memory(memory_mib: int) -> Iterator[None]:
    """Within the block, this process may grow its data (heap and private mappings) by DuckDB's limit plus headroom
    and no more, so that what DuckDB does not account — a huge string built by a projection — fails as
    out-of-memory instead of exhausting the machine. The previous limit comes back after the block."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX: DuckDB's memory_limit is all there is
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = _data_bytes() + ((memory_mib + PROCESS_HEADROOM_MIB) << 20)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    lowered = soft == resource.RLIM_INFINITY or soft > limit
    if lowered:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    try:
        yield
    finally:
        if lowered:
            resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _data_bytes() -> int:
    """The data this process has now (VmData), 0 where /proc does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmData:"):
                return int(line.split()[1]) << 10
    except (OSError, ValueError, IndexError):
        pass
    return 0


def out_of_memory(exc: BaseException) -> bool:
    import duckdb

    return isinstance(exc, (MemoryError, duckdb.OutOfMemoryException)) or "Out of Memory" in str(exc)


def memory_message(memory_mib: int) -> str:
    return (
        f"query needs more memory than its limit ({memory_mib} MiB): narrow it (WHERE, LIMIT, fewer columns) or "
        "raise --memory-mib"
    )
