"""The single-machine path for small jobs: the same worker code (`AnalysisWorker`) in forked processes, no Ray.

Starting Ray and its worker processes costs several seconds, more than the whole analysis of a small model. For
jobs where the benchmark (BENCHMARKS.md, bench_small) shows that this wins, `submit` runs the batches in a pool of
forked processes instead: no address or RAY_ADDRESS given, no Ray running in this process, no GPU on the
machine, nothing still downloading, and at most LOCAL_MAX_BYTES to read. `TPA_DIST_EXECUTOR=ray|local` forces
the choice; `--address` always means Ray.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from tpa_dist.compute.tasks import MatrixTask, batch_tasks
from tpa_dist.faults import NO_FAULTS, Faults
from tpa_dist.interrupts import check as check_interrupt
from tpa_dist.processes import child_of, stop_pool
from tpa_dist.run.batches import Batch, after_loss, exhausted, failed_rows, split
from tpa_dist.settings import AnalysisSettings, WorkerSettings

log = logging.getLogger("tpa_dist")

LOCAL_MAX_BYTES = 2 << 30  # bench_small: below this the local pool beats Ray's start-up (BENCHMARKS.md)

_worker = None


def has_gpu() -> bool:
    """Whether this machine shows an NVIDIA GPU (without importing torch, which takes seconds)."""
    return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None


def choose_local(address: str | None, cpu_only: bool, nbytes: int, downloading: bool) -> bool:
    """Whether a submit runs on the local pool rather than on Ray (see the module docstring)."""
    forced = os.environ.get("TPA_DIST_EXECUTOR", "").strip().lower()
    if forced in ("ray", "local"):
        return forced == "local" and not address
    if address or os.environ.get("RAY_ADDRESS", "").strip() or downloading:
        return False
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return False
    return nbytes <= LOCAL_MAX_BYTES and (cpu_only or not has_gpu())


def _init(settings: AnalysisSettings, driver_pid: int, faults: Faults) -> None:
    global _worker
    child_of(driver_pid)  # dies with the driver, whatever kills it (as Ray's own processes do)
    from tpa_dist.run.actors import AnalysisWorker

    _worker = AnalysisWorker(settings, gpu=False, faults=faults)


def _run(batch: list[MatrixTask]) -> list:
    return _worker.analyze(batch)


def workers_for(workers: WorkerSettings) -> int:
    return workers.num_workers or max(1, (os.cpu_count() or 1) // workers.threads_per_worker)


def run_local(
    tasks: list[MatrixTask],
    settings: AnalysisSettings,
    workers: WorkerSettings,
    on_results: Callable[[list, str | None], None],
    on_idle: Callable[[], None],
    on_started: Callable[[], None] | None = None,
    faults: Faults = NO_FAULTS,
) -> None:
    """Run every task on a pool of forked worker processes; results go to `on_results` batch by batch. A worker
    that dies has its batches re-run, and a batch that raises outside its tasks' guards is split (batches.py's
    policy, as on Ray). `on_started` runs once, in this thread, when every worker has been forked and has work:
    the driver idles then."""
    n = workers_for(workers)
    queue = [Batch(part) for part in batch_tasks(tasks, workers=n)]
    log.info("workers: %d local processes (%d BLAS thread(s) each)", n, workers.threads_per_worker)
    while queue:
        queue = _pool_pass(queue, n, settings, on_results, on_idle, on_started, faults)
        on_started = None


def _pool_pass(
    queue: list[Batch],
    n: int,
    settings: AnalysisSettings,
    on_results: Callable,
    on_idle: Callable,
    on_started: Callable | None = None,
    faults: Faults = NO_FAULTS,
) -> list[Batch]:
    """Run `queue` on one pool; return what must run again (a worker died and broke the pool)."""
    pool = ProcessPoolExecutor(
        n, mp_context=multiprocessing.get_context("fork"), initializer=_init, initargs=(settings, os.getpid(), faults)
    )
    pending: dict[Future, Batch] = {}
    retry: list[Batch] = []
    try:
        pending = {pool.submit(_run, batch.tasks): batch for batch in queue}
        if on_started is not None:  # a fork-context pool forks all its workers at the first submit
            on_started()
        while pending:
            check_interrupt()
            done, _ = wait(list(pending), timeout=1.0, return_when=FIRST_COMPLETED)
            for fut in done:
                batch = pending.pop(fut)
                try:
                    on_results(fut.result(), None)
                except BrokenProcessPool:  # a worker died: the pool cannot tell whose batch killed it
                    again = after_loss(batch, blamed=True)
                    why = exhausted(again)
                    if why is None:
                        retry.append(again)
                    else:
                        on_results(failed_rows(again, why), None)
                except Exception as exc:  # noqa: BLE001 - raised outside a task's own guard: isolate it
                    if len(batch.tasks) > 1:
                        retry += split(batch)
                    else:
                        on_results(failed_rows(batch, f"worker error {type(exc).__name__}: {exc}"), None)
            on_idle()
            check_interrupt()
        if retry:
            log.warning("a local worker was lost; re-running %d batch(es)", len(retry))
        return retry
    except BaseException:  # Ctrl-C, or anything else: no worker outlives the run (a held one would block exit)
        for fut in pending:
            fut.cancel()
        stop_pool(pool)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
