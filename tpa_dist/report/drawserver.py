"""The drawing server: a process forked when a command that will draw figures starts, which imports matplotlib at
once — on the core a starting run leaves idle while it imports, plans and starts its workers — and then waits for
figures. Without it the run imports matplotlib itself (0.4–0.5 s) while its workers analyze, on the cores they need:
for a small model that was a third of the analysis phase.

The server forks its own drawing children (matplotlib inherited) at the first figure; each figure comes by pipe with
its rows and goes back as PNG bytes (or the exception it raised). The server and its children die with their parent
whatever ends it (processes.child_of) and never touch the database. drawing.Drawing uses it when one runs."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from functools import partial
from typing import Any

from tpa_dist.processes import child_of, stop_pool


def can_fork() -> bool:
    """Whether figures may be drawn in forked children here: Linux (macOS frameworks are not fork-safe; Windows has
    no fork), not inside a daemonic worker, and not where Ray's gRPC threads live in this process."""
    if not sys.platform.startswith("linux") or multiprocessing.current_process().daemon:
        return False
    ray = sys.modules.get("ray")
    return not (ray is not None and ray.is_initialized())


def fork_pool(workers: int) -> ProcessPoolExecutor:
    """Drawing children forked from this process (matplotlib and what else it imported inherited), each dying with
    it (processes.child_of); they fork at the pool's first submit."""
    ctx = multiprocessing.get_context("fork")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=child_of, initargs=(os.getpid(),))


def draw_job(before: Callable[[], None] | None, draw: Callable[..., bytes | None], args: tuple) -> bytes | None:
    """One figure, where figures are drawn: `before()` first (injected faults), then draw(*args)."""
    if before is not None:
        before()
    return draw(*args)


def _serve(conn: Any, parent: int, workers: int) -> None:
    """The server's loop: (id, before, draw, args) in, (id, PNG bytes or exception) out; None ends it."""
    child_of(parent)
    from tpa_dist.report import plots  # noqa: F401 - what this process exists for: matplotlib, imported now

    pool: ProcessPoolExecutor | None = None
    lock = threading.Lock()  # replies come from the pool's thread, one at a time

    def reply(i: int, future: Future) -> None:
        try:
            result: object = future.result()
        except BaseException as exc:  # noqa: BLE001 - the figure's own failure, sent back as its result
            result = exc
        with lock:
            try:
                conn.send((i, result))
            except Exception as exc:  # noqa: BLE001 - an exception that does not pickle: its words
                conn.send((i, RuntimeError(f"{type(result).__name__}: {result} ({exc})")))

    try:
        while (message := conn.recv()) is not None:
            i, before, draw, args = message
            if pool is None:  # the children fork at its first submit, before the pool's own thread starts
                pool = fork_pool(workers)
            pool.submit(draw_job, before, draw, args).add_done_callback(partial(reply, i))
    except (EOFError, OSError):  # the parent is gone
        pass
    finally:
        if pool is not None:
            stop_pool(pool)
        os._exit(0)


class DrawServer:
    """The parent's side of the server: `send` a figure, `receive` the results of figures sent."""

    def __init__(self, workers: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(theirs, os.getpid(), workers), name="tpa-dist drawing")
        self.proc.start()
        theirs.close()
        self._next = 0
        self._results: dict[int, object] = {}

    def send(self, before: Callable[[], None] | None, draw: Callable[..., bytes | None], args: tuple) -> int:
        """Send one figure; its id. Raises OSError when the server is gone (the caller draws it itself)."""
        i = self._next
        self._next += 1
        self.conn.send((i, before, draw, args))
        return i

    def receive(self, ids: list[int]) -> list[object]:
        """The results of `ids`, in order (waiting for them); EOFError when the server died meanwhile."""
        while any(i not in self._results for i in ids):
            i, result = self.conn.recv()
            self._results[i] = result
        return [self._results.pop(i) for i in ids]

    def alive(self) -> bool:
        return self.proc.is_alive()

    def stop(self) -> None:
        """End it now (its children die with it)."""
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join(5)
        self.conn.close()


_server: DrawServer | None = None


def start() -> None:
    """Start the server, once per process, where it is safe and useful: Linux, two cores or more, and no thread but
    this one (the command line, before its work)."""
    global _server
    workers = os.cpu_count() or 1
    if _server is None and workers >= 2 and can_fork() and threading.active_count() == 1:
        _server = DrawServer(workers)
        atexit.register(stop)  # a library caller's interpreter exit (the command line's ends with os._exit)


def running() -> DrawServer | None:
    """The server, if one was started and is alive."""
    return _server if _server is not None and _server.alive() else None


def stop() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


__all__ = ["DrawServer", "can_fork", "draw_job", "fork_pool", "running", "start", "stop"]
