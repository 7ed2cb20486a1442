"""The Ray actors a run analyzes on, as an elastic pool: started on the resources free at the start, grown into
resources that become free while it runs (nodes that join, an autoscaler's new nodes, a lost worker's CPUs), and
shrunk by every worker that is lost.

Ray never restarts a lost worker (``max_restarts=0``): a restart waits for resources that a lost node's share may
never get back, and calls sent to it meanwhile wait with it. Instead its batches go back to the shared queue for
the live workers, and the pool grows a new worker wherever a CPU (or GPU) is free. A new worker that has not
started within START_WAIT_S (its resources went elsewhere) is dropped, so nothing waits on it for ever.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tpa_dist.faults import NO_FAULTS, Faults
from tpa_dist.settings import AnalysisSettings, WorkerSettings

log = logging.getLogger("tpa_dist")

START_WAIT_S = 120.0  # a created worker that has not answered by then is dropped
GROW_EVERY_S = 2.0  # how often free resources are looked for while batches wait
NODE_CHECK_EVERY_S = 1.0  # how often lost workers are matched with dead nodes (one console line per node)
WORKER_DEATH_GRACE_S = 10.0  # a lost worker whose node is still up after this was its own death, not its node's
NODE_PROBE_TIMEOUT_S = 2.0  # a node whose raylet does not accept a connection within this is gone


@dataclass
class Worker:
    """One actor of the pool and what the scheduler knows of it."""

    actor: Any
    pool: str  # 'cpu' | 'gpu'
    wid: int
    state: str = "starting"  # starting | ready | gone
    node: str = ""  # Ray node id
    host: str = ""
    device: str = ""
    free_bytes: int = 0  # GPU: device memory one of its concurrent batches may plan with
    load: int = 0  # batches in flight
    created: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple[str, int]:
        return (self.pool, self.wid)


def worker_env() -> dict[str, str]:
    """Settings the driver passes to its workers: tpa-dist's own (caches, the node cache) and the Hub endpoint (never
    tokens: a node that fetches uses its own HF_TOKEN). Injected faults travel as the workers' `Faults` plan."""
    return {k: v for k, v in os.environ.items() if k in WORKER_VARIABLES}


#: the environment a worker needs from the driver's
WORKER_VARIABLES = ("TPA_DIST_CACHE", "TPA_DIST_NODE_CACHE", "HF_ENDPOINT")


class WorkerPool:
    """GPU workers (one per `gpus_per_worker` GPUs, each running `gpu_streams` batches at once) unless cpu_only,
    and CPU workers (`threads_per_worker` CPUs each) on the CPUs left; see the module docstring."""

    def __init__(
        self,
        settings: AnalysisSettings,
        workers: WorkerSettings,
        on_event: Callable[[str], None] = lambda _message: None,
        faults: Faults = NO_FAULTS,
    ) -> None:
        self.settings = settings
        self.faults = faults
        self.conf = workers
        self.on_event = on_event  # one line per lost node (or worker), also kept in the run's summary
        self.workers: list[Worker] = []
        self.probes: dict[Any, Worker] = {}  # describe() calls of starting workers
        self.gpu_ok = not workers.cpu_only  # False once a GPU worker found no usable device
        self.lost_nodes: set[str] = set()
        self._unclassified: list[tuple[Worker, float, str]] = []  # lost, not yet matched with a dead node
        self._next_grow = 0.0
        self._next_node_check = 0.0
        self.requested: tuple[int, int] | None = None  # (CPU, GPU) workers asked of the autoscaler
        self._initial_done = False  # the first workers have answered (later ones are announced)
        self._opts: dict[str, Any] = {"max_restarts": 0, "max_task_retries": 0}
        env = worker_env()
        if env:
            self._opts["runtime_env"] = {"env_vars": env}

    # -- views ---------------------------------------------------------------------------------------------------
    def ready(self, pool: str | None = None) -> list[Worker]:
        return [w for w in self.workers if w.state == "ready" and (pool is None or w.pool == pool)]

    def alive(self, pool: str | None = None) -> bool:
        """Whether some worker (of `pool`) is ready or still starting."""
        return any(w.state != "gone" and (pool is None or w.pool == pool) for w in self.workers)

    @property
    def gpu_free_bytes(self) -> int:
        """Device memory one GPU batch may plan with: the smallest share among the ready GPU workers."""
        return min((w.free_bytes for w in self.ready("gpu") if w.free_bytes), default=0)

    # -- start and growth ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the first workers on the resources free now and wait (at most START_WAIT_S) until they answer;
        GPU and CPU workers start together (a GPU worker's torch import and CUDA context take seconds)."""
        import ray

        free = ray.available_resources()
        cpus, gpus = float(free.get("CPU", 0)), float(free.get("GPU", 0))
        conf = self.conf
        if gpus >= conf.gpus_per_worker and self.gpu_ok:
            n_gpu = int(gpus / conf.gpus_per_worker)
            gpu_cpus = min(float(conf.gpu_streams), cpus / (2 * n_gpu))  # GPU workers take at most half the CPUs
            for _ in range(n_gpu):
                self._create("gpu", gpu_cpus)
            cpus -= gpu_cpus * n_gpu
        for _ in range(conf.num_workers or int(cpus // conf.threads_per_worker)):
            self._create("cpu")
        if not self.workers:
            self._initial_done = True
            log.warning(
                "no free CPU or GPU in the Ray cluster yet: waiting up to %.0f s for nodes to join",
                conf.wait_for_workers_s,
            )
            return
        deadline = time.monotonic() + START_WAIT_S
        while self.probes and time.monotonic() < deadline:
            done, _ = ray.wait(list(self.probes), num_returns=len(self.probes), timeout=deadline - time.monotonic())
            for ref in done:
                self.started(ref)
            if not done:
                break
        self._initial_done = True

    def _create(self, pool: str, gpu_cpus: float = 0.0) -> Worker:
        import ray

        from tpa_dist.run.actors import AnalysisWorker

        remote = ray.remote(AnalysisWorker)
        conf = self.conf
        if pool == "gpu":
            actor = remote.options(
                num_cpus=gpu_cpus, num_gpus=conf.gpus_per_worker, max_concurrency=conf.gpu_streams, **self._opts
            ).remote(self.settings, True, self.faults)
        else:
            actor = remote.options(num_cpus=conf.threads_per_worker, **self._opts).remote(
                self.settings, False, self.faults
            )
        worker = Worker(actor, pool, wid=len(self.workers))
        self.workers.append(worker)
        self.probes[actor.describe.remote()] = worker
        return worker

    def started(self, ref: Any) -> Worker | None:
        """A starting worker answered (or failed to start): it is ready, or gone."""
        import ray
        from ray.exceptions import RayError

        worker = self.probes.pop(ref)
        if worker.state != "starting":
            return None
        try:
            info = ray.get(ref)
        except RayError as exc:
            log.debug("worker %s did not start: %s", worker.key, exc)
            self._drop(worker)
            return None
        worker.node, worker.host, worker.device = info["node"], info["host"], info["device"]
        if worker.pool == "gpu" and info["device"] in ("unavailable", "unknown"):
            log.warning("GPU worker on %s has no usable CUDA device; its work goes to the CPU workers", worker.host)
            self.gpu_ok = False  # no more GPU workers: their CPUs go to CPU workers as the pool grows
            self._drop(worker)
            self._next_grow = 0.0
            return None
        if worker.pool == "gpu":  # workers sharing a GPU share its memory, and a worker's batches share the worker's
            conf = self.conf
            share = max(1, round(1 / conf.gpus_per_worker)) if conf.gpus_per_worker < 1 else 1
            worker.free_bytes = int(info["free_bytes"]) // (share * conf.gpu_streams)
        worker.state = "ready"
        if self._initial_done:
            log.info("a new %s worker is ready on %s (node %s)", worker.pool.upper(), worker.host, worker.node[:8])
        return worker

    def maintain(self, wants_cpu: int, wants_gpu: int) -> None:
        """Drop workers that never started, report lost nodes, and grow into free resources for `wants_*`
        queued batches that no live worker can take now."""
        now = time.monotonic()
        for ref, worker in list(self.probes.items()):
            if now - worker.created > START_WAIT_S:
                log.info("a new worker did not start within %.0f s (no free resources for it); dropped", START_WAIT_S)
                del self.probes[ref]
                self._drop(worker)
        if self._unclassified and now >= self._next_node_check:
            self._next_node_check = now + NODE_CHECK_EVERY_S
            self._classify_losses(now)
        if (wants_cpu or wants_gpu) and now >= self._next_grow and not self.probes:
            self._next_grow = now + GROW_EVERY_S
            self._grow(wants_cpu, wants_gpu)

    def _grow(self, wants_cpu: int, wants_gpu: int) -> None:
        import ray

        free = ray.available_resources()
        cpus, gpus = float(free.get("CPU", 0)), float(free.get("GPU", 0))
        conf = self.conf
        added = []
        if wants_gpu and self.gpu_ok and gpus >= conf.gpus_per_worker:
            n = min(int(gpus / conf.gpus_per_worker), wants_gpu)
            gpu_cpus = min(float(conf.gpu_streams), cpus / (2 * n))
            added += [self._create("gpu", gpu_cpus) for _ in range(n)]
            cpus -= gpu_cpus * n
        n = min(int(cpus // conf.threads_per_worker), wants_cpu)
        if conf.num_workers:
            n = min(n, conf.num_workers - sum(1 for w in self.workers if w.pool == "cpu" and w.state != "gone"))
        added += [self._create("cpu") for _ in range(max(0, n))]
        if added:
            kinds = sorted({w.pool for w in added})
            log.info("%d new %s worker(s) on resources that became free", len(added), "/".join(kinds).upper())

    # -- the autoscaler ------------------------------------------------------------------------------------------
    def request(self, cpu_workers: int, gpu_workers: int) -> None:
        """Ask Ray's autoscaler for the workers this run wants (`ray.autoscaler.sdk.request_resources`; a cluster
        without autoscaling ignores it). The run starts on what exists and grows onto nodes as they join."""
        from ray.autoscaler.sdk import request_resources

        conf = self.conf
        bundles = [{"CPU": float(conf.threads_per_worker)}] * cpu_workers
        bundles += [{"GPU": float(conf.gpus_per_worker)}] * gpu_workers
        if not bundles:
            return
        request_resources(bundles=bundles)
        self.requested = (cpu_workers, gpu_workers)
        log.info(
            "asked Ray's autoscaler for %d CPU and %d GPU worker(s); the run uses nodes as they join",
            cpu_workers,
            gpu_workers,
        )

    def release(self, say_unmet: bool = True) -> None:
        """Withdraw the autoscaler request (the cluster may scale down); say so if the GPUs asked for never came."""
        if self.requested is None:
            return
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=[])
        if say_unmet and self.requested[1] and not any(w.pool == "gpu" and w.node for w in self.workers):
            log.info(
                "no GPU node joined during the run (asked Ray's autoscaler for %d): it ran on CPUs "
                "(--request-gpus 0 stops asking)",
                self.requested[1],
            )
        self.requested = None

    # -- losses --------------------------------------------------------------------------------------------------
    def lost(self, worker: Worker, exc: BaseException) -> bool:
        """A call to `worker` failed because its process or node is gone: drop it. Returns whether the batch it
        ran is to blame (the worker died on a node that is still up)."""
        from ray.exceptions import ActorDiedError

        first = worker.state != "gone"
        self._drop(worker)
        if first:
            self._unclassified.append((worker, time.monotonic(), type(exc).__name__))
            self._next_node_check = 0.0
            self._next_grow = 0.0  # replace it as soon as resources are free
        if not first:  # its other batches in flight fail with it: the one that came back first carries the blame
            return False
        if not isinstance(exc, ActorDiedError) or "node" in str(exc).lower():
            return False
        return worker.node not in self._down_nodes({worker.node})

    def _drop(self, worker: Worker) -> None:
        import ray

        worker.state = "gone"
        try:
            ray.kill(worker.actor, no_restart=True)
        except Exception as exc:  # noqa: BLE001 - already dead, or its node gone: nothing more to stop
            log.debug("kill of worker %s: %s", worker.key, exc)

    @staticmethod
    def _down_nodes(nodes: set[str]) -> set[str]:
        """Which of `nodes` are gone: marked dead by Ray, or whose raylet no longer answers (Ray's own verdict
        waits for missed heartbeats, tens of seconds after a machine vanished)."""
        import socket

        import ray

        known = {n["NodeID"]: n for n in ray.nodes()}
        down = set()
        for node in nodes:
            info = known.get(node)
            if info is None or not info.get("Alive"):
                down.add(node)
                continue
            try:
                address = (info["NodeManagerAddress"], int(info["NodeManagerPort"]))
                socket.create_connection(address, timeout=NODE_PROBE_TIMEOUT_S).close()
            except (OSError, KeyError, ValueError):
                down.add(node)
        return down

    def _classify_losses(self, now: float) -> None:
        """One line per lost node (all its workers), or per worker that died on a node that stayed up."""
        down = self._down_nodes({w.node for w, _, _ in self._unclassified if w.node})
        by_node: dict[str, list[Worker]] = {}
        keep = []
        for worker, when, cause in self._unclassified:
            if worker.node in down:
                by_node.setdefault(worker.node, []).append(worker)
            elif now - when > WORKER_DEATH_GRACE_S:
                self.on_event(
                    f"worker {worker.pool}-{worker.wid} on {worker.host} died ({cause}); its work went to the others"
                )
            else:
                keep.append((worker, when, cause))
        self._unclassified = keep
        for node, gone in by_node.items():
            if node in self.lost_nodes:
                continue
            self.lost_nodes.add(node)
            self.on_event(
                f"node {gone[0].host} ({node[:8]}) lost mid-run with {len(gone)} worker(s); "
                "their work went to the workers left"
            )

    def shutdown(self) -> None:
        """Stop every worker (no restarts, so no retry chatter after the run); report losses not reported yet."""
        if self._unclassified:
            self._classify_losses(float("inf"))
        for worker in self.workers:
            if worker.state != "gone":
                self._drop(worker)
        self.probes.clear()
