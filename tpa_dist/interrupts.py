"""Stops that cannot be lost: while a submit runs, Ctrl-C (SIGINT) and SIGTERM (`kill PID`, a batch system's
time limit) are recorded before KeyboardInterrupt is raised, and the executor loops check the record — so a stop
that lands inside a library call which swallows the exception (DuckDB's client, while it scans a registered Arrow
table) still ends the run as `interrupted`, with every stored batch kept and no worker left behind."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

INTERRUPTED = threading.Event()
_received: list[int] = []
_taken: list[int] = []  # the signals the active `recorded()` block handles


def _handler(signum: int, frame: object) -> None:  # noqa: ARG001 - the signal module's signature
    _received.append(signum)
    INTERRUPTED.set()
    raise KeyboardInterrupt


@contextmanager
def recorded() -> Iterator[None]:
    """Within the block SIGINT and SIGTERM are recorded and raised as KeyboardInterrupt (main thread only, and only
    where the default disposition stands: an ignored SIGINT — a background job — stays ignored, a user's own
    handler stays theirs); the previous handlers come back after it."""
    INTERRUPTED.clear()
    _received.clear()
    main = threading.current_thread() is threading.main_thread()
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    taken = [s for s, default in defaults.items() if main and signal.getsignal(s) is default]
    for s in taken:
        signal.signal(s, _handler)
    _taken[:] = taken
    try:
        yield
    finally:
        _taken.clear()
        for s in taken:
            signal.signal(s, defaults[s])


def reclaim() -> None:
    """Install the `recorded()` handlers again: a library that set its own at the C level (Ray's driver installs
    a failure handler for SIGTERM that prints a stack trace and loses the stop) is overruled."""
    if threading.current_thread() is threading.main_thread():
        for s in _taken:
            signal.signal(s, _handler)


def received() -> int | None:
    """The first stop signal recorded by the last `recorded()` block (None if none came)."""
    return _received[0] if _received else None


def exit_code() -> int:
    """The shell's convention for a process stopped by a signal: 128 + its number (130 for Ctrl-C)."""
    return 128 + (received() or signal.SIGINT)


def describe() -> str:
    """'interrupted' for Ctrl-C, 'interrupted by SIGTERM' (or the signal's name) otherwise: the start of messages."""
    signum = received() or signal.SIGINT
    return "interrupted" if signum == signal.SIGINT else f"interrupted by {signal.Signals(signum).name}"


def check() -> None:
    """Raise KeyboardInterrupt if a stop signal came, even if the exception it raised was swallowed on the way."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt
