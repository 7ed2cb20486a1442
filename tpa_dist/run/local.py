"""The local engine (executor.py's contract) for small jobs: the same worker code (`AnalysisWorker`) in forked
processes of this machine, no Ray.

Starting Ray and its worker processes costs several seconds, more than the whole analysis of a small model. For
jobs where the benchmark (BENCHMARKS.md, bench_small) shows that this wins, `submit` runs on a pool of forked
processes instead: no address or RAY_ADDRESS given, no Ray running in this process, no GPU on the machine,
nothing still downloading, and at most LOCAL_MAX_BYTES to read. `TPA_DIST_EXECUTOR=ray|local` forces the choice;
`--address` always means Ray.

Each worker is one process with its own pipe, running the batches it is sent one at a time in order, so a process
that dies names exactly the batch it was running (those queued behind it go back unblamed); a new process takes
its place at once (this machine is never lost, only a process).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import socket
import sys
from multiprocessing.connection import Connection, wait
from typing import Any

from tpa_dist import constants
from tpa_dist.faults import NO_FAULTS, Faults
from tpa_dist.processes import child_of
from tpa_dist.run.executor import Done, Event, Lost, Raised, Worker
from tpa_dist.settings import AnalysisSettings, WorkerSettings

log = logging.getLogger("tpa_dist")

LOCAL_MAX_BYTES = 2 << 30  # bench_small: below this the local pool beats Ray's start-up (BENCHMARKS.md)
MAX_IDLE_DEATHS = 8  # worker processes dying with no batch, in a row, before the pool stops replacing them


def has_gpu() -> bool:
    """Whether this machine shows an NVIDIA GPU (without importing torch, which takes seconds)."""
    return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None


def choose_local(address: str | None, cpu_only: bool, nbytes: int, downloading: bool) -> bool:
    """Whether a submit runs on the local pool rather than on Ray (see the module docstring)."""
    forced = constants.executor()
    if forced is not None:
        return forced == "local" and not address
    if address or constants.ray_address() or downloading:
        return False
    if ray_running():
        return False
    return nbytes <= LOCAL_MAX_BYTES and (cpu_only or not has_gpu())


def ray_running() -> bool:
    """Whether this process already runs Ray (then a submit joins it instead of starting the local pool)."""
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def workers_for(workers: WorkerSettings) -> int:
    return workers.num_workers or max(1, (os.cpu_count() or 1) // workers.threads_per_worker)


def _serve(conn: Connection, settings: AnalysisSettings, driver_pid: int, faults: Faults) -> None:
    """A worker process: analyze each batch the driver sends, answer with its results (or what it raised)."""
    child_of(driver_pid)  # dies with the driver, whatever kills it (as Ray's own processes do)
    from tpa_dist.run.actors import AnalysisWorker

    worker = AnalysisWorker(settings, gpu=False, faults=faults)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        handle, tasks = message
        try:
            answer = (handle, "done", worker.analyze(tasks))
        except Exception as exc:  # noqa: BLE001 - raised outside the tasks' own guards: the scheduler splits
            first = str(exc).splitlines()[0] if str(exc) else ""
            answer = (handle, "raised", f"{type(exc).__name__}: {first}")
        conn.send(answer)


class LocalPool:
    """`workers_for(conf)` forked worker processes of `threads_per_worker` BLAS threads each (see the module
    docstring). The processes are forked when the pool starts and replaced when one dies."""

    def __init__(self, settings: AnalysisSettings, conf: WorkerSettings, faults: Faults = NO_FAULTS) -> None:
        self.settings = settings
        self.conf = conf
        self.faults = faults
        self.workers: list[Worker] = []
        self.requested = None
        self._calls: dict[int, Worker] = {}  # handle -> worker
        self._sent: dict[int, list[int]] = {}  # worker id -> its handles in order: the first one is running
        self._next = 0
        self._idle_deaths = 0  # processes that died holding no batch, in a row (a worker that cannot start)
        self._host = socket.gethostname()
        self._context = multiprocessing.get_context("fork")

    # -- views ---------------------------------------------------------------------------------------------------
    def ready(self, pool: str | None = None) -> list[Worker]:
        return [w for w in self.workers if w.state == "ready" and pool in (None, "cpu")]

    def alive(self, pool: str | None = None) -> bool:
        return pool in (None, "cpu") and any(w.state != "gone" for w in self.workers)

    @property
    def gpu_free_bytes(self) -> int:
        return 0

    # -- the executor contract -----------------------------------------------------------------------------------
    def start(self) -> None:
        n = workers_for(self.conf)
        for _ in range(n):
            self._create()
        log.info("workers: %d local processes (%d BLAS thread(s) each)", n, self.conf.threads_per_worker)

    def _create(self) -> Worker:
        ours, theirs = self._context.Pipe()
        proc = self._context.Process(
            target=_serve, args=(theirs, self.settings, os.getpid(), self.faults), daemon=True, name="tpa-worker"
        )
        proc.start()
        theirs.close()
        worker = Worker((proc, ours), "cpu", wid=len(self.workers), state="ready", node=self._host, host=self._host)
        worker.device = "cpu"
        self.workers.append(worker)
        return worker

    def send(self, worker: Worker, tasks: list) -> Any:
        self._next += 1
        handle = self._next
        _proc, conn = worker.actor
        self._calls[handle] = worker
        self._sent.setdefault(worker.wid, []).append(handle)
        try:
            conn.send((handle, tasks))
        except (BrokenPipeError, OSError):  # it died since it was last seen: poll() reports the loss
            pass
        return handle

    def poll(self, timeout: float) -> list[Event]:
        live = [w for w in self.workers if w.state != "gone"]
        busy = {w.actor[1]: w for w in live if self._sent.get(w.wid)}
        sentinels = {w.actor[0].sentinel: w for w in live}
        ready = wait(list(busy) + list(sentinels), timeout=timeout)
        events: list[Event] = []
        dead: list[Worker] = []
        for obj in ready:
            if obj in busy:
                worker = busy[obj]
                try:
                    handle, how, payload = obj.recv()
                except (EOFError, OSError):
                    dead.append(worker)
                    continue
                self._calls.pop(handle, None)
                self._sent[worker.wid].remove(handle)
                events.append(Done(handle, payload) if how == "done" else Raised(handle, payload))
            else:
                dead.append(sentinels[obj])
        for worker in {w.wid: w for w in dead}.values():
            events += self._lost(worker)
        return events

    def _lost(self, worker: Worker) -> list[Event]:
        """A worker process died: the batch it ran (if any) is reported lost; a new process takes its place."""
        proc, conn = worker.actor
        proc.join(timeout=5)
        worker.state = "gone"
        conn.close()
        events: list[Event] = []
        handles = self._sent.pop(worker.wid, [])
        code = proc.exitcode
        cause = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        for i, handle in enumerate(handles):
            self._calls.pop(handle, None)
            events.append(Lost(handle, node_lost=False, cause=cause, ran=i == 0))
        if handles:
            self._idle_deaths = 0
        else:
            self._idle_deaths += 1
        if self._idle_deaths <= MAX_IDLE_DEATHS:
            self._create()
        else:
            log.error("local worker processes keep dying before taking work (exit status %s)", proc.exitcode)
        return events

    def maintain(self, wants_cpu: int, wants_gpu: int) -> None:  # noqa: ARG002 - every worker is replaced at once
        return

    def cancel(self) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Stop every worker process at once (no batch outlives the run)."""
        for worker in self.workers:
            if worker.state == "gone":
                continue
            proc, conn = worker.actor
            worker.state = "gone"
            try:
                proc.terminate()
            except (OSError, ValueError):
                pass
            conn.close()
        for worker in self.workers:
            worker.actor[0].join(timeout=5)
        self._calls.clear()
        self._sent.clear()
