"""Dispatch batches from one shared queue to the workers of an elastic pool (workerpool.py), with bounded work in
flight per worker.

Largest first; a worker prefers batches of shards its node already reads, then shards no node has claimed, then
any (work stealing). Matrices that cannot fit a GPU's free memory go to CPU workers (fallback_reason
'gpu_memory'); a GPU batch that hits CUDA OOM comes back as 'oom' rows and is re-run on a CPU worker ('cuda_oom').
A batch whose worker — or whole node — is lost goes back to the queue for any live worker (batches.py decides how
often); GPU batches go to CPU workers once no GPU worker is left ('gpu_lost'), and a GPU worker that joins later
takes the CPU batches that fit it. Batches that no live worker can take fail after `wait_for_workers_s`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tpa_dist.compute.tasks import MatrixTask, batch_tasks, task_paths
from tpa_dist.interrupts import check as check_interrupt
from tpa_dist.run.batches import Batch, after_loss, exhausted, failed_rows, split
from tpa_dist.run.workerpool import Worker, WorkerPool
from tpa_dist.sources.hub import ShardState

log = logging.getLogger("tpa_dist")

INFLIGHT_PER_WORKER = 2


def gpu_bytes_needed(task: MatrixTask, block_bytes: int) -> int:
    """Device memory a matrix needs on the GPU path: Gram + eigvalsh workspace + one block in flight (a ΔW pair:
    three Grams and two blocks)."""
    m, n = max(task.region.rows, task.region.cols), min(task.region.rows, task.region.cols)
    grams = task.grams if task.kind == "delta" else 1
    return grams * 3 * 8 * n * n + 3 * grams * min(block_bytes, 8 * m * n)


class Scheduler:
    """Runs batches to completion; `on_results(rows_and_spectra, fallback_reason)` receives each result batch,
    `on_idle()` is called between events, `gate(path)` says whether a file has arrived, is still downloading or
    never will (sources/hub.ShardState)."""

    def __init__(
        self,
        pool: WorkerPool,
        block_bytes: int,
        on_results: Callable[[list, str | None], None],
        on_idle: Callable[[], None],
        gate: Callable[[str], ShardState] | None = None,
        wait_for_workers_s: float = 600.0,
    ) -> None:
        self.pool = pool
        self.block_bytes = block_bytes
        self.on_results = on_results
        self.on_idle = on_idle
        self.gate = gate
        self.wait_for_workers_s = wait_for_workers_s
        self.queue: deque[Batch] = deque()
        self.inflight: dict[Any, tuple[Worker, Batch]] = {}
        self.shard_node: dict[str, str] = {}  # shard file -> node that read it first (warm page cache)
        self._stuck_since: float | None = None

    # -- planning ------------------------------------------------------------------------------------------------
    def plan(self, tasks: list[MatrixTask]) -> None:
        """Queue `tasks` in batches: matrices for the GPU workers where they fit, the rest for the CPU workers."""
        free = self.pool.gpu_free_bytes
        n_gpu = len(self.pool.ready("gpu"))
        streams = self.pool.conf.gpu_streams
        gpu_tasks: list[MatrixTask] = []
        cpu_tasks: list[MatrixTask] = []
        too_big: list[MatrixTask] = []
        for t in tasks:
            if not n_gpu or t.kind not in ("matrix", "delta"):
                cpu_tasks.append(t)
            elif gpu_bytes_needed(t, self.block_bytes) > 0.9 * free:
                too_big.append(t)
            else:
                gpu_tasks.append(t)
        n_cpu = max(1, len(self.pool.ready("cpu")) or len(self.pool.workers))
        for pool, reason, part, workers in (
            ("cpu", "gpu_memory", too_big, n_cpu),
            ("gpu", None, gpu_tasks, n_gpu * streams),
            ("cpu", None, cpu_tasks, n_cpu),
        ):
            for tasks_ in batch_tasks(part, workers=workers):
                self._enqueue(Batch(tasks_, pool, reason))

    def _enqueue(self, batch: Batch, front: bool = False) -> None:
        if not batch.paths:
            batch.paths = frozenset(p for t in batch.tasks for p in task_paths(t))
        (self.queue.appendleft if front else self.queue.append)(batch)

    # -- choosing ------------------------------------------------------------------------------------------------
    def limit(self, worker: Worker) -> int:
        return INFLIGHT_PER_WORKER * (self.pool.conf.gpu_streams if worker.pool == "gpu" else 1)

    def takes(self, worker: Worker, batch: Batch) -> bool:
        """Whether `worker` may run `batch`: its own pool's; a GPU worker also a CPU batch that was not sent there
        for want of GPU memory and fits its share; a CPU worker a GPU batch once no GPU worker is left."""
        if batch.pool == worker.pool:
            return True
        if worker.pool == "gpu":
            return batch.fallback_reason is None and all(
                gpu_bytes_needed(t, self.block_bytes) <= 0.9 * worker.free_bytes
                for t in batch.tasks
                if t.kind in ("matrix", "delta")
            )
        return not self.pool.alive("gpu")

    def pick(self, worker: Worker) -> int | None:
        """Index of the queued batch `worker` should take: of its own pool before another's; among those, one of a
        shard its node already reads, else of a shard no node has claimed, else any (queue order: largest first)."""
        best, best_rank = None, (9, 9)
        for idx, batch in enumerate(self.queue):
            if not self.takes(worker, batch) or self._waiting(batch):
                continue
            home = self.shard_node.get(batch.shard)
            rank = (int(batch.pool != worker.pool), 0 if home == worker.node else 1 if home is None else 2)
            if rank < best_rank:
                best, best_rank = idx, rank
                if rank == (0, 0):
                    break
        return best

    def _waiting(self, batch: Batch) -> bool:
        return self.gate is not None and any(self.gate(p).coming for p in batch.paths)

    # -- running -------------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Run every queued batch to a result (rows, or error rows for tasks that cannot run)."""
        import ray

        try:
            self._loop()
        except KeyboardInterrupt:  # stop the tasks in flight
            for ref in self.inflight:
                ray.cancel(ref)
            raise

    def _loop(self) -> None:
        import ray

        while self.queue or self.inflight:
            check_interrupt()
            if self.gate:
                self._drop_unfetchable()
            self._launch()
            self._maintain()
            refs = list(self.inflight) + list(self.pool.probes)
            if not refs:  # everything queued waits for a download or a worker
                time.sleep(0.1)
                self.on_idle()
                continue
            ready, _ = ray.wait(refs, num_returns=1, timeout=0.5)
            for ref in ready:
                if ref in self.inflight:
                    self._finished(ref)
                elif ref in self.pool.probes:
                    self.pool.started(ref)
            self.on_idle()

    def _launch(self) -> None:
        launched = True
        while launched and self.queue:
            launched = False
            for worker in sorted(self.pool.ready(), key=lambda w: w.load):
                if worker.load >= self.limit(worker) or not self.queue:
                    continue
                idx = self.pick(worker)
                if idx is None:
                    continue
                batch = self.queue[idx]
                del self.queue[idx]
                self.shard_node.setdefault(batch.shard, worker.node)
                if batch.pool == "gpu" and worker.pool == "cpu":
                    batch.fallback_reason = "gpu_lost"
                self.inflight[worker.actor.analyze.remote(batch.tasks)] = (worker, batch)
                worker.load += 1
                launched = True

    def _maintain(self) -> None:
        """Grow the pool for batches no live worker can take now; fail those no worker will ever take."""
        waiting = [b for b in self.queue if not self._waiting(b)]
        wants_cpu = sum(1 for b in waiting if b.pool == "cpu" or not self.pool.alive("gpu"))
        wants_gpu = sum(1 for b in waiting if b.pool == "gpu" or b.fallback_reason is None)
        self.pool.maintain(wants_cpu, wants_gpu)
        alive = [w for w in self.pool.workers if w.state != "gone"]
        stuck = [
            b
            for b in waiting
            if not any(b.pool == w.pool or w.pool == "cpu" or b.fallback_reason is None for w in alive)
        ]
        if not stuck or self.inflight:
            self._stuck_since = None
            return
        now = time.monotonic()
        self._stuck_since = self._stuck_since or now
        if now - self._stuck_since < self.wait_for_workers_s:
            return
        message = f"no worker left to run it (none joined within {self.wait_for_workers_s:.0f} s)"
        log.error("%d batch(es) cannot run: %s", len(stuck), message)
        for batch in stuck:
            self.queue.remove(batch)
            self.on_results(failed_rows(batch, message), batch.fallback_reason)
        self._stuck_since = None

    def _finished(self, ref: Any) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        worker, batch = self.inflight.pop(ref)
        worker.load -= 1
        try:
            results = ray.get(ref)
        except (RayActorError, WorkerCrashedError) as exc:
            again = after_loss(batch, self.pool.lost(worker, exc))
            why = exhausted(again)
            if why is None:
                log.debug(
                    "worker %s lost (%s); %d task(s) queued again", worker.key, type(exc).__name__, len(batch.tasks)
                )
                self._enqueue(again, front=True)
                return
            results = failed_rows(again, f"{why} ({type(exc).__name__})")
        except RayTaskError as exc:  # raised outside a task's own guard: isolate it, task by task
            if len(batch.tasks) > 1:
                for one in split(batch):
                    self._enqueue(one)
                return
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            first = str(cause).splitlines()[0] if str(cause) else ""
            results = failed_rows(batch, f"worker error {type(cause).__name__}: {first}")
        oom = [t for t, (row, _) in zip(batch.tasks, results) if row.status == "oom"]
        if oom:
            log.warning("CUDA OOM on %d matrix(es); re-running them on the CPU workers", len(oom))
            for part in batch_tasks(oom, workers=max(1, len(self.pool.ready("cpu")))):
                self._enqueue(Batch(part, "cpu", "cuda_oom"))
            results = [r for r in results if r[0].status != "oom"]
        if results:
            self.on_results(results, batch.fallback_reason)

    def _drop_unfetchable(self) -> None:
        """Batches whose file will never arrive (its download failed) become error rows."""
        for batch in list(self.queue):
            failed = sorted({state.error for p in batch.paths if (state := self.gate(p)).error})
            if failed:
                self.queue.remove(batch)
                self.on_results(failed_rows(batch, failed[0]), batch.fallback_reason)
