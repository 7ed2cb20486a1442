"""Child processes that never outlive their parent: forked workers (the local pool, figure drawing) take the kernel's
word that they die with it, whatever ends the parent — SIGKILL included — and leave Ctrl-C to the parent."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

log = logging.getLogger("tpa_dist")


def child_of(parent_pid: int) -> None:
    """Called first in a forked child: SIGINT ignored (Ctrl-C reaches the whole process group; the parent handles
    it), SIGTERM back to its default (the parent's `terminate()` must end it), and on Linux PR_SET_PDEATHSIG so the
    kernel kills this child when the parent dies. Elsewhere the parent's own clean-up is all there is."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:  # pragma: no cover - refused only by seccomp
        log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent_pid:  # the parent died before the line above: nobody would kill this child
        os._exit(1)


def stop_pool(pool: object) -> None:
    """Terminate every process of a ProcessPoolExecutor at once and let it go without waiting for its work."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            proc.terminate()
        except (OSError, ValueError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)  # type: ignore[attr-defined]


def process_started() -> float:
    """When this process started, on time.monotonic's clock (now, where /proc cannot say): the start-up of a command
    counts the interpreter's and the imports' seconds too."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.monotonic() - max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic()
