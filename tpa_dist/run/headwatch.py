"""Notice, within seconds, that the Ray cluster a submit joined has lost its head (its GCS), and say so plainly.

Without it Ray's driver is silent for a minute, then its C++ core ends the process with
``rpc_client.h: Failed to connect to GCS`` and the run stays `running` in the database. The watch probes the GCS
port from a thread; once it has refused connections for LOST_AFTER_S, it marks the cluster lost and interrupts
the main thread, which stores what finished, records the run `failed` with one line, and exits 1 (driver.py,
cli.py). Ray calls that would wait on the dead GCS are skipped from then on (`lost()`).
"""

from __future__ import annotations

import _thread
import logging
import os
import socket
import sys
import threading
import time

log = logging.getLogger("tpa_dist")

PROBE_EVERY_S = 1.0
LOST_AFTER_S = 5.0  # refused (or unanswered) this long: the head is gone
EXIT_AFTER_S = 30.0  # the main thread did not end the run by then (stuck in a Ray call): exit from here

_LOST = threading.Event()
_WATCHED: list[tuple[str, int]] = []  # the GCS being watched


def lost() -> bool:
    """Whether the joined cluster's head is gone (no Ray call should wait on it)."""
    return _LOST.is_set()


def gcs_answers() -> bool:
    """Whether the watched GCS accepts a connection now (True when none is watched): a Ray call that asks the GCS
    is made only then, so that it cannot wait a minute on a head that is gone."""
    if _LOST.is_set():
        return False
    if not _WATCHED:
        return True
    return _answers(_WATCHED[0])


def _answers(target: tuple[str, int]) -> bool:
    try:
        socket.create_connection(target, timeout=PROBE_EVERY_S).close()
        return True
    except OSError:
        return False


class HeadWatch:
    """A daemon thread probing `gcs_address` (HOST:PORT) until `stop()`; see the module docstring."""

    def __init__(self, gcs_address: str, shown: str) -> None:
        host, _, port = gcs_address.rpartition(":")
        self.target = (host.strip("[]"), int(port))
        self.shown = shown  # the address as the user gave it
        self.stored = lambda: 0  # how many matrices are stored (for the fallback line)
        self._stop = threading.Event()
        self._ended = threading.Event()  # the main thread handled the loss
        _LOST.clear()
        _WATCHED[:] = [self.target]
        self._thread = threading.Thread(target=self._run, name="tpa-head-watch", daemon=True)
        self._thread.start()

    def message(self, stored: int) -> str:
        return f"lost the Ray cluster at {self.shown} (its head is gone): {stored} matrices stored, run again to resume"

    def handled(self) -> None:
        """The main thread recorded the loss: the fallback exit is not needed."""
        self._ended.set()

    def stop(self) -> None:
        self._stop.set()
        _WATCHED.clear()

    def _run(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.wait(PROBE_EVERY_S):
            if _answers(self.target):
                last_ok = time.monotonic()
                continue
            if time.monotonic() - last_ok < LOST_AFTER_S:
                continue
            _LOST.set()
            log.debug("the GCS at %s:%d refuses connections: the head is gone", *self.target)
            _thread.interrupt_main()
            if self._ended.wait(EXIT_AFTER_S) or self._stop.is_set():
                return
            print(f"error: {self.message(self.stored())}", file=sys.stderr, flush=True)
            os._exit(1)
