"""Dispatch batches of tasks to GPU and CPU actor pools with bounded in-flight work.

Largest first; a GPU batch that hits CUDA OOM comes back as 'oom' rows and is re-run on the CPU pool
(fallback_reason='cuda_oom'); matrices that cannot fit a GPU's free memory go to the CPU pool directly
(fallback_reason='gpu_memory'); a lost worker's batch is re-run (Ray restarts the actor).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .interrupts import check as check_interrupt
from .settings import AnalysisSettings, WorkerSettings
from .tasks import MatrixTask, batch_tasks, task_paths

log = logging.getLogger("tpa_dist")

INFLIGHT_PER_WORKER = 2
MAX_BATCH_ATTEMPTS = 3


@dataclass
class Pools:
    cpu: list = field(default_factory=list)
    gpu: list = field(default_factory=list)
    gpu_free_bytes: int = 0  # device memory one GPU task may plan with (its worker's share, divided by streams)
    gpu_streams: int = 1  # batches each GPU actor runs at once
    nodes: dict[tuple[str, int], str] = field(default_factory=dict)  # (pool, index) -> Ray node id

    def all(self) -> list:
        return self.cpu + self.gpu


def worker_env() -> dict[str, str]:
    """Settings the driver passes to its workers: tpa-dist's own and the Hub endpoint (never tokens: a node
    that fetches uses its own HF_TOKEN)."""
    return {k: v for k, v in os.environ.items() if k.startswith("TPA_DIST_") or k == "HF_ENDPOINT"}


def make_pools(settings: AnalysisSettings, workers: WorkerSettings) -> Pools:
    """GPU actors (1/gpus_per_worker per GPU), each running gpu_streams batches at once on CUDA streams, unless
    cpu_only; CPU actors on the remaining cores. All actors start together (a GPU actor's torch import and CUDA
    context take seconds: the CPU actors' start overlaps it)."""
    import ray

    from .actors import AnalysisWorker

    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 1)), float(resources.get("GPU", 0))
    env = worker_env()
    opts = {"max_restarts": 4, "max_task_retries": 2}
    if env:
        opts["runtime_env"] = {"env_vars": env}
    remote = ray.remote(AnalysisWorker)
    pools = Pools()
    gpus_per_worker, threads, streams = workers.gpus_per_worker, workers.threads_per_worker, workers.gpu_streams
    gpu_actors: list = []
    if gpus > 0 and not workers.cpu_only:
        n_gpu = int(gpus / gpus_per_worker)
        gpu_cpus = min(float(streams), cpus / (2 * n_gpu))  # GPU workers take at most half the CPUs
        gpu_actors = [
            remote.options(num_cpus=gpu_cpus, num_gpus=gpus_per_worker, max_concurrency=streams, **opts).remote(
                settings, True
            )
            for _ in range(n_gpu)
        ]
        cpus = int(cpus - gpu_cpus * n_gpu)
    n_cpu = workers.num_workers or max(1, cpus // threads)
    pools.cpu = [remote.options(num_cpus=threads, **opts).remote(settings, False) for _ in range(n_cpu)]
    infos = _describe_all(gpu_actors + pools.cpu)
    gpu_infos, cpu_infos = infos[: len(gpu_actors)], infos[len(gpu_actors) :]
    for actor, info in zip(gpu_actors, gpu_infos):
        if info["device"] in ("unavailable", "unknown"):
            log.warning("GPU worker on %s has no usable CUDA device; its work goes to the CPU workers", info["host"])
            ray.kill(actor)
        else:
            pools.nodes[("gpu", len(pools.gpu))] = info["node"]
            pools.gpu.append(actor)
    freed = int(gpu_cpus * (len(gpu_actors) - len(pools.gpu))) // threads if gpu_actors else 0
    if freed and not workers.num_workers:  # the CPUs of GPU workers that found no device
        extra = [remote.options(num_cpus=threads, **opts).remote(settings, False) for _ in range(freed)]
        cpu_infos += _describe_all(extra)
        pools.cpu += extra
    if pools.gpu:
        # workers sharing a GPU share its memory, and a worker's concurrent batches share the worker's
        share = max(1, round(1 / gpus_per_worker)) if gpus_per_worker < 1 else 1
        free = min((i["free_bytes"] for i in gpu_infos if i["free_bytes"]), default=0)
        pools.gpu_free_bytes = free // (share * streams)
        pools.gpu_streams = streams
    for i, info in enumerate(cpu_infos):
        pools.nodes[("cpu", i)] = info["node"]
    return pools


def _describe_all(actors: list) -> list[dict]:
    """Each actor's description (node, device, free GPU bytes). An actor lost meanwhile (its node removed)
    is kept — Ray restarts it elsewhere — with an unknown node, rather than failing the run."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError, WorkerCrashedError

    refs = [a.describe.remote() for a in actors]
    out = []
    for ref in refs:
        try:
            out.append(ray.get(ref, timeout=120))
        except (RayActorError, WorkerCrashedError, GetTimeoutError):
            out.append({"node": "", "device": "unknown", "free_bytes": 0, "host": "?", "worker": ""})
    return out


def gpu_bytes_needed(task: MatrixTask, block_bytes: int) -> int:
    """Device memory a matrix needs on the GPU path: Gram + eigvalsh workspace + one block in flight (a ΔW pair:
    three Grams and two blocks)."""
    m, n = max(task.region.rows, task.region.cols), min(task.region.rows, task.region.cols)
    grams = task.grams if task.kind == "delta" else 1
    return grams * 3 * 8 * n * n + 3 * grams * min(block_bytes, 8 * m * n)


class Scheduler:
    """Runs batches to completion; `on_results(rows_and_spectra, fallback_reason)` receives each result batch."""

    def __init__(
        self,
        pools: Pools,
        block_bytes: int,
        on_results: Callable[[list, str | None], None],
        on_idle: Callable[[], None],
        gate: Callable[[str], str | None] | None = None,
    ) -> None:
        self.pools = pools
        self.gate = gate  # file path -> 'ready', None (still downloading) or why it never will be
        self._batch_paths: dict[int, tuple[list, frozenset[str]]] = {}
        self.block_bytes = block_bytes
        self.on_results = on_results
        self.on_idle = on_idle
        self.queue: deque = deque()  # (pool name, tasks, attempt, fallback_reason)
        self.shard_node: dict[str, str] = {}  # shard file -> node that read it first (warm page cache)
        self.load: dict[tuple[str, int], int] = {}
        self.limit = {"cpu": INFLIGHT_PER_WORKER, "gpu": INFLIGHT_PER_WORKER * pools.gpu_streams}
        for name in ("cpu", "gpu"):
            for i in range(len(getattr(pools, name))):
                self.load[(name, i)] = 0

    def plan(self, tasks: list[MatrixTask]) -> None:
        gpu_tasks: list[MatrixTask] = []
        cpu_tasks: list[MatrixTask] = []
        too_big: list[MatrixTask] = []
        for t in tasks:
            if not self.pools.gpu or t.kind not in ("matrix", "delta"):
                cpu_tasks.append(t)
            elif gpu_bytes_needed(t, self.block_bytes) > 0.9 * self.pools.gpu_free_bytes:
                too_big.append(t)
            else:
                gpu_tasks.append(t)
        n_cpu, n_gpu = len(self.pools.cpu), len(self.pools.gpu)
        for batch in batch_tasks(too_big, workers=n_cpu):
            self.queue.append(("cpu", batch, 1, "gpu_memory"))
        for batch in batch_tasks(gpu_tasks, workers=n_gpu * self.pools.gpu_streams):
            self.queue.append(("gpu", batch, 1, None))
        for batch in batch_tasks(cpu_tasks, workers=n_cpu):
            self.queue.append(("cpu", batch, 1, None))

    def _pick(self, key: tuple[str, int]) -> int | None:
        """Index of the queued batch this worker should take: one of a shard its node already reads, else
        one of a shard no node has claimed, else any batch of its pool (work stealing)."""
        node = self.pools.nodes.get(key)
        unclaimed = steal = None
        for idx, (pool, batch, _attempt, _reason) in enumerate(self.queue):
            if pool != key[0] or self._waiting(batch):
                continue
            home = self.shard_node.get(batch[0].region.path)
            if home == node:
                return idx
            if home is None and unclaimed is None:
                unclaimed = idx
            if steal is None:
                steal = idx
        return unclaimed if unclaimed is not None else steal

    def _states(self, batch: list[MatrixTask]) -> set[str | None]:
        if self.gate is None:
            return {"ready"}
        entry = self._batch_paths.get(id(batch))
        if entry is None:  # once per batch (the queue is scanned on every launch); holding it keeps its id unique
            entry = self._batch_paths[id(batch)] = (batch, frozenset(p for t in batch for p in task_paths(t)))
        return {self.gate(p) for p in entry[1]}

    def _waiting(self, batch: list[MatrixTask]) -> bool:
        return None in self._states(batch)

    def _drop_unfetchable(self, error_row: Callable[[MatrixTask, str], dict]) -> None:
        """Batches whose file will never arrive (its download failed) become error rows."""
        for entry in list(self.queue):
            failed = sorted(s for s in self._states(entry[1]) if s not in (None, "ready"))
            if failed:
                self.queue.remove(entry)
                self.on_results([(error_row(t, failed[0]), None) for t in entry[1]], entry[3])

    def _launch(self, inflight: dict) -> None:
        launched = True
        while launched and self.queue:
            launched = False
            for key in sorted(self.load, key=self.load.get):
                if self.load[key] >= self.limit[key[0]] or not self.queue:
                    continue
                idx = self._pick(key)
                if idx is None:
                    continue
                pool, batch, attempt, reason = self.queue[idx]
                del self.queue[idx]
                self.shard_node.setdefault(batch[0].region.path, self.pools.nodes.get(key, ""))
                actor = getattr(self.pools, pool)[key[1]]
                inflight[actor.analyze.remote(batch)] = (key, batch, attempt, reason)
                self.load[key] += 1
                launched = True

    def run(self, error_row: Callable[[MatrixTask, str], dict]) -> None:
        """Run every queued batch; `error_row(task, message)` makes the row of a task that cannot run."""
        import ray

        inflight: dict = {}
        try:
            self._loop(inflight, error_row)
        except KeyboardInterrupt:  # stop the tasks in flight (cancelled tasks are not retried: no retry chatter)
            for ref in inflight:
                ray.cancel(ref)
            raise

    def _loop(self, inflight: dict, error_row: Callable[[MatrixTask, str], dict]) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        while self.queue or inflight:
            check_interrupt()
            if self.gate:
                self._drop_unfetchable(error_row)
            self._launch(inflight)
            if not inflight:  # everything queued waits for a download
                time.sleep(0.1)
                self.on_idle()
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.25 if self.gate else 1.0)
            for ref in ready:
                key, batch, attempt, reason = inflight.pop(ref)
                self.load[key] -= 1
                try:
                    results = ray.get(ref)
                except (RayActorError, WorkerCrashedError) as exc:
                    if attempt < MAX_BATCH_ATTEMPTS:
                        log.warning("worker lost (%s); re-running %d task(s)", type(exc).__name__, len(batch))
                        self.queue.append((key[0], batch, attempt + 1, reason))
                        continue
                    message = f"worker lost {MAX_BATCH_ATTEMPTS} times ({type(exc).__name__})"
                    results = [(error_row(t, message), None) for t in batch]
                except RayTaskError as exc:  # raised outside a task's own guard: isolate it, task by task
                    if len(batch) > 1:
                        self.queue.extend((key[0], [t], attempt, reason) for t in batch)
                        continue
                    cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                    message = f"worker error {type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
                    results = [(error_row(t, message), None) for t in batch]
                oom = [t for t, (row, _) in zip(batch, results) if row.status == "oom"]
                if oom:
                    log.warning("CUDA OOM on %d matrix(es); re-running them on the CPU pool", len(oom))
                    for retry in batch_tasks(oom, workers=len(self.pools.cpu)):
                        self.queue.append(("cpu", retry, 1, "cuda_oom"))
                    results = [r for r in results if r[0].status != "oom"]
                if results:
                    self.on_results(results, reason)
            self.on_idle()
