"""Ctrl-C that cannot be lost: the SIGINT handler of a submit records the interrupt before raising
KeyboardInterrupt, and the executor loops check the record — so an interrupt that lands inside a library call
which swallows the exception (DuckDB's client, while it scans a registered Arrow table) still stops the run."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

INTERRUPTED = threading.Event()


def _handler(signum: int, frame: object) -> None:  # noqa: ARG001 - the signal module's signature
    INTERRUPTED.set()
    raise KeyboardInterrupt


@contextmanager
def recorded() -> Iterator[None]:
    """Within the block Ctrl-C is recorded as well as raised (main thread only; an ignored SIGINT — a background
    job — stays ignored); the previous handler comes back after it."""
    INTERRUPTED.clear()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    if previous is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C came, even if the exception it raised was swallowed on the way."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt
