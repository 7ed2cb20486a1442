"""The engine's policy, once for every executor (executor.py): dispatch batches from one shared queue to the
workers of the local pool or of the Ray pool, with bounded work in flight per worker, and decide — by batches.py's
rules — what each batch's end means.

Largest first; a worker prefers batches of shards its node already reads, then shards no node has claimed, then
any (work stealing). Matrices that cannot fit a GPU's free memory go to CPU workers (fallback_reason
'gpu_memory'); a GPU batch that hits CUDA OOM comes back as 'oom' rows and is re-run on a CPU worker ('cuda_oom').
A batch whose worker process died is split into suspects that run alone (only the task that kills its worker
fails); one whose node was lost goes back to the queue for any live worker; GPU batches go to CPU workers once no
GPU worker is left ('gpu_lost'). Work waits for a worker under one rule in every phase (matrices, ΔW, embeddings):
at most `wait_for_workers_s` with no worker able to take it, said on the console; then it fails with the reason,
and so does the work of every later phase — the run ends.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tpa_dist.compute.tasks import MatrixTask, Task, batch_tasks, task_paths
from tpa_dist.interrupts import check as check_interrupt
from tpa_dist.run.batches import Batch, after_death, exhausted, failed_rows, split
from tpa_dist.run.executor import Done, Executor, Lost, Raised, Worker
from tpa_dist.sources.hub import ShardState

log = logging.getLogger("tpa_dist")

INFLIGHT_PER_WORKER = 2
WAIT_NOTICE_AFTER_S = 5.0  # work that waited this long for a worker is said on the console ...
WAIT_NOTICE_EVERY_S = 30.0  # ... and again this often


def gpu_bytes_needed(task: MatrixTask, block_bytes: int) -> int:
    """Device memory a matrix needs on the GPU path: Gram + eigvalsh workspace + one block in flight (a ΔW pair:
    three Grams and two blocks)."""
    m, n = max(task.region.rows, task.region.cols), min(task.region.rows, task.region.cols)
    grams = task.grams if task.kind == "delta" else 1
    return grams * 3 * 8 * n * n + 3 * grams * min(block_bytes, 8 * m * n)


class Scheduler:
    """Runs batches to completion on `pool`; `on_results(results, fallback_reason)` receives each result batch,
    `on_idle()` is called between events, `gate(path)` says whether a file has arrived, is still downloading or
    never will (sources/hub.ShardState). One scheduler serves every phase of a run (`run` once per phase)."""

    def __init__(
        self,
        pool: Executor,
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
        self.given_up: str | None = None  # no worker came: every later phase's work fails with this at once
        self._stuck_since: float | None = None
        self._next_notice = 0.0

    # -- planning ------------------------------------------------------------------------------------------------
    def plan(self, tasks: list[Task]) -> None:
        """Queue `tasks` in batches: matrices for the GPU workers where they fit, the rest for the CPU workers.
        Embedding tasks are batches of one (each is a whole phase's worth of work)."""
        free = self.pool.gpu_free_bytes
        n_gpu = len(self.pool.ready("gpu"))
        streams = self.pool.conf.gpu_streams
        gpu_tasks: list[Task] = []
        cpu_tasks: list[Task] = []
        too_big: list[Task] = []
        for t in tasks:
            if t.kind == "embedding":
                self._enqueue(Batch([t], "cpu"))
            elif not n_gpu or t.kind not in ("matrix", "delta"):
                cpu_tasks.append(t)
            elif gpu_bytes_needed(t, self.block_bytes) > 0.9 * free:
                too_big.append(t)
            else:
                gpu_tasks.append(t)
        requested = getattr(self.pool, "requested", None)
        live_cpu = sum(1 for w in self.pool.workers if w.pool == "cpu" and w.state != "gone")
        n_cpu = max(1, live_cpu, requested[0] if requested else 0)  # workers still starting get their share
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
        if worker.alone:
            return 1
        return INFLIGHT_PER_WORKER * (self.pool.conf.gpu_streams if worker.pool == "gpu" else 1)

    def takes(self, worker: Worker, batch: Batch) -> bool:
        """Whether `worker` may run `batch`: its own pool's; a GPU worker also a CPU batch that was not sent there
        for want of GPU memory and fits its share; a CPU worker a GPU batch once no GPU worker is left. A suspect
        only runs on a worker with nothing else in flight."""
        if batch.suspect and worker.load:
            return False
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
    def run(self, tasks: list[Task] | None = None, feed: Callable[[], list[Task] | None] | None = None) -> None:
        """Plan `tasks` (if given) and run every queued batch to a result (rows, or the failures of tasks that
        cannot run). `feed()`, called between events until it returns None, gives more tasks (a census planned
        while it runs). After the engine gave up for want of workers, the work fails at once with that reason."""
        if tasks:
            self.plan(tasks)
        try:
            self._loop(feed)
        except KeyboardInterrupt:  # stop the tasks in flight
            self.pool.cancel()
            raise

    def _loop(self, feed: Callable[[], list[Task] | None] | None) -> None:
        fed: list[Task] = []  # tasks fed and not queued yet: batched together while the queue has work
        while self.queue or self.inflight or feed is not None or fed:
            check_interrupt()
            if feed is not None:
                more = feed()
                if more is None:
                    feed = None
                else:
                    fed += more
            if fed and (feed is None or len(self.queue) < INFLIGHT_PER_WORKER * max(1, len(self.pool.ready()))):
                self.plan(fed)
                fed = []
            if self.given_up is not None:
                self._fail_queue(self.given_up)
            if self.gate:
                self._drop_unfetchable()
            self._launch()
            self._maintain()
            if not (self.queue or self.inflight):
                if feed is None:
                    break
                continue  # nothing to wait for: plan more at once
            # more to plan: only look (planning is this loop's work meanwhile, and waits itself on what it needs);
            # batches waiting for a shard that is downloading: look again soon (it lands between worker events)
            gated = self.gate is not None and any(self._waiting(b) for b in self.queue)
            for event in self.pool.poll(0.0 if feed is not None else 0.05 if gated else 0.5):
                self._ended(event)
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
                worker.alone = batch.suspect
                self.inflight[self.pool.send(worker, batch.tasks)] = (worker, batch)
                worker.load += 1
                launched = True

    def _maintain(self) -> None:
        """Grow the pool for batches no live worker can take now; say that work waits for workers, and fail it
        once none came within wait_for_workers_s."""
        waiting = [b for b in self.queue if not self._waiting(b)]
        wants_cpu = sum(1 for b in waiting if b.pool == "cpu" or not self.pool.alive("gpu"))
        wants_gpu = sum(1 for b in waiting if b.pool == "gpu" or b.fallback_reason is None)
        self.pool.maintain(wants_cpu, wants_gpu)
        if self.inflight:  # work is running: nothing waits for workers yet
            self._stuck_since = None
            return
        ready = self.pool.ready()
        stuck = [b for b in waiting if not any(self._could_take(w, b) for w in ready)]
        if not stuck:
            self._stuck_since = None
            return
        now = time.monotonic()
        if self._stuck_since is None:
            self._stuck_since, self._next_notice = now, now + min(WAIT_NOTICE_AFTER_S, self.wait_for_workers_s / 2)
        waited = now - self._stuck_since
        if waited >= self.wait_for_workers_s:
            self.given_up = f"no worker left to run it (none joined within {self.wait_for_workers_s:.0f} s)"
            log.error("%d batch(es) cannot run: %s; the run ends", len(self.queue), self.given_up)
            self._fail_queue(self.given_up)
            self._stuck_since = None
        elif now >= self._next_notice:
            self._next_notice = now + WAIT_NOTICE_EVERY_S
            starting = sum(1 for w in self.pool.workers if w.state == "starting")
            log.warning(
                "waiting for workers: %d batch(es) queued, no worker ready to take them (%d asked for, not placed: "
                "the cluster's resources are taken, or no node has them); failing them in %.0f s "
                "(--wait-for-workers)",
                len(stuck),
                starting,
                self.wait_for_workers_s - waited,
            )

    @staticmethod
    def _could_take(worker: Worker, batch: Batch) -> bool:
        return batch.pool == worker.pool or worker.pool == "cpu" or batch.fallback_reason is None

    def _fail_queue(self, message: str) -> None:
        while self.queue:
            batch = self.queue.popleft()
            self.on_results(failed_rows(batch, message), batch.fallback_reason)

    def _ended(self, event: Done | Lost | Raised) -> None:
        worker, batch = self.inflight.pop(event.handle)
        worker.load -= 1
        worker.alone = False
        if isinstance(event, Lost) and not event.ran:
            self._enqueue(batch, front=True)
            return
        if isinstance(event, Lost):
            for again in after_death(batch, event.node_lost):
                why = exhausted(again)
                if why is None:
                    self._enqueue(again, front=True)
                else:
                    log.warning("%s: %s", again.tasks[0].matrix_key, why)
                    self.on_results(failed_rows(again, f"{why} ({event.cause})"), again.fallback_reason)
            return
        if isinstance(event, Raised):  # raised outside a task's own guard: isolate it, task by task
            if len(batch.tasks) > 1:
                for one in split(batch):
                    self._enqueue(one)
            else:
                self.on_results(failed_rows(batch, f"worker error {event.error}"), batch.fallback_reason)
            return
        results = event.results
        oom = [t for t, r in zip(batch.tasks, results) if isinstance(r, tuple) and r[0].status == "oom"]
        if oom:
            log.warning("CUDA OOM on %d matrix(es); re-running them on the CPU workers", len(oom))
            for part in batch_tasks(oom, workers=max(1, len(self.pool.ready("cpu")))):
                self._enqueue(Batch(part, "cpu", "cuda_oom"))
            results = [r for r in results if not (isinstance(r, tuple) and r[0].status == "oom")]
        if results:
            self.on_results(results, batch.fallback_reason)

    def _drop_unfetchable(self) -> None:
        """Batches whose file will never arrive (its download failed) fail."""
        for batch in list(self.queue):
            failed = sorted({state.error for p in batch.paths if (state := self.gate(p)).error})
            if failed:
                self.queue.remove(batch)
                self.on_results(failed_rows(batch, failed[0]), batch.fallback_reason)
