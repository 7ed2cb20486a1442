"""The Ray engine (executor.py's contract): the actors a run analyzes on, as an elastic pool — started on the
resources free at the start, grown into resources that become free while it runs (nodes that join, an
autoscaler's new nodes, a lost worker's CPUs), and shrunk by every worker that is lost.

Work starts on the first worker that is ready: a worker Ray cannot place yet (another job holds the CPUs) stays
asked for and is used when it comes, never waited for before starting. Ray never restarts a lost worker
(``max_restarts=0``): a restart waits for resources that a lost node's share may never get back, and calls sent to
it meanwhile wait with it. Instead its batches go back to the scheduler, which decides by batches.py's policy; this
module only says whether the worker's node is gone — by Ray's word or a raylet that no longer answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from tpa_dist.constants import first_worker_wait_s, worker_env
from tpa_dist.faults import NO_FAULTS, Faults
from tpa_dist.run.executor import Done, Event, Lost, Raised, Worker
from tpa_dist.settings import AnalysisSettings, WorkerSettings
from tpa_dist.sources.node_budget import NodeBudget

log = logging.getLogger("tpa_dist")

STARTING_GRACE_S = 3.0  # ... and gives the workers still starting this long after the first is ready
GROW_EVERY_S = 2.0  # how often free resources are looked for while batches wait
NODE_CHECK_EVERY_S = 1.0  # how often lost workers are matched with dead nodes (one console line per node)
WORKER_DEATH_GRACE_S = 10.0  # a lost worker whose node is still up after this was its own death, not its node's
NODE_PROBE_TIMEOUT_S = 2.0  # a node whose raylet does not accept a connection within this is gone


class WorkerPool:
    """GPU workers (one per `gpus_per_worker` GPUs, each running `gpu_streams` batches at once) unless cpu_only,
    and CPU workers (`threads_per_worker` CPUs each) on the CPUs left; see the module docstring."""

    def __init__(
        self,
        settings: AnalysisSettings,
        workers: WorkerSettings,
        on_event: Callable[[str], None] = lambda _message: None,
        faults: Faults = NO_FAULTS,
        budget: NodeBudget | None = None,
    ) -> None:
        self.settings = settings
        self.faults = faults
        self.budget = budget  # a census's disk budget on every node (sources/node_budget.py)
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
        self.calls: dict[Any, Worker] = {}  # batches in flight -> their worker
        self.no_cuda_hosts: list[str] = []  # GPU nodes that joined but showed no usable CUDA device
        self.raylets: dict[str, tuple[str, int]] = {}  # node id -> its raylet's address (probed on a loss)
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
        """Create the first workers on the resources free now; return once one is ready and every GPU worker has
        answered (the planner routes by GPU memory), or after TPA_DIST_FIRST_WORKER_WAIT_S — never waiting for workers
        Ray cannot place yet. GPU and CPU workers start together (a GPU worker's CUDA context takes seconds)."""
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
        deadline = time.monotonic() + first_worker_wait_s()
        first_ready: float | None = None
        while self.probes and time.monotonic() < deadline:
            if self.ready() and not any(w.pool == "gpu" for w in self.probes.values()):
                # workers created together start together: a short grace lets them share the first batches
                deadline = min(deadline, first_ready + STARTING_GRACE_S)
            done, _ = ray.wait(
                list(self.probes), num_returns=1, timeout=max(0.0, min(1.0, deadline - time.monotonic()))
            )
            for ref in done:
                self.started(ref)
            if self.ready() and first_ready is None:
                first_ready = time.monotonic()
        if self.probes:
            log.info(
                "%d worker(s) ready, %d not placed yet (the cluster's resources are taken): the run starts on those "
                "ready and uses the others when Ray places them",
                len(self.ready()),
                len(self.probes),
            )
        self._initial_done = True

    def _create(self, pool: str, gpu_cpus: float = 0.0) -> Worker:
        import ray

        from tpa_dist.run.actors import AnalysisWorker

        remote = ray.remote(AnalysisWorker)
        conf = self.conf
        if pool == "gpu":
            actor = remote.options(
                num_cpus=gpu_cpus, num_gpus=conf.gpus_per_worker, max_concurrency=conf.gpu_streams, **self._opts
            ).remote(self.settings, True, self.faults, self.budget)
        else:
            actor = remote.options(num_cpus=conf.threads_per_worker, **self._opts).remote(
                self.settings, False, self.faults, self.budget
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
        self._learn_raylet(worker.node)
        if worker.pool == "gpu" and info["device"] in ("unavailable", "unknown"):
            log.warning("GPU worker on %s has no usable CUDA device; its work goes to the CPU workers", worker.host)
            self.no_cuda_hosts.append(worker.host)
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
        if self._unclassified and now >= self._next_node_check:
            self._next_node_check = now + NODE_CHECK_EVERY_S
            self._classify_losses(now)
        if (wants_cpu or wants_gpu) and now >= self._next_grow and not self.probes:
            self._next_grow = now + GROW_EVERY_S
            from tpa_dist.run.headwatch import gcs_answers

            if gcs_answers():  # resources are the head's to say
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
        if say_unmet and self.requested[1] and not any(w.pool == "gpu" and w.state == "ready" for w in self.workers):
            if self.no_cuda_hosts:
                log.info(
                    "a GPU node joined (%s) but showed no usable CUDA device: its work ran on CPUs",
                    ", ".join(sorted(set(self.no_cuda_hosts))),
                )
            else:
                log.info(
                    "no GPU node joined during the run (asked Ray's autoscaler for %d): it ran on CPUs "
                    "(--request-gpus 0 stops asking)",
                    self.requested[1],
                )
        self.requested = None

    # -- losses --------------------------------------------------------------------------------------------------
    def lost(self, worker: Worker, exc: BaseException) -> bool:
        """A call to `worker` failed because its process or node is gone: drop it. Returns whether its node is
        gone (Ray says so, or its raylet no longer answers) — never guessed from the error's wording."""
        first = worker.state != "gone"
        self._drop(worker)
        if first:
            self._unclassified.append((worker, time.monotonic(), type(exc).__name__))
            self._next_node_check = 0.0
            self._next_grow = 0.0  # replace it as soon as resources are free
        return bool(worker.node) and worker.node in self._down_nodes({worker.node})

    # -- the executor contract -----------------------------------------------------------------------------------
    def send(self, worker: Worker, tasks: list) -> Any:
        ref = worker.actor.analyze.remote(tasks)
        self.calls[ref] = worker
        return ref

    def poll(self, timeout: float) -> list[Event]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        refs = list(self.calls) + list(self.probes)
        if not refs:
            time.sleep(min(timeout, 0.1))
            return []
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        events: list[Event] = []
        for ref in ready:
            if ref in self.probes:
                self.started(ref)
                continue
            worker = self.calls.pop(ref)
            try:
                events.append(Done(ref, ray.get(ref)))
            except (RayActorError, WorkerCrashedError) as exc:
                events.append(Lost(ref, self.lost(worker, exc), type(exc).__name__))
            except RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                first = str(cause).splitlines()[0] if str(cause) else ""
                events.append(Raised(ref, f"{type(cause).__name__}: {first}"))
        return events

    def cancel(self) -> None:
        import ray

        from tpa_dist.run.headwatch import lost

        if lost():  # the head is gone: a cancel would wait on it
            return
        for ref in self.calls:
            ray.cancel(ref)

    def _drop(self, worker: Worker) -> None:
        import ray

        from tpa_dist.run.headwatch import lost

        worker.state = "gone"
        if lost():
            return
        try:
            ray.kill(worker.actor, no_restart=True)
        except Exception as exc:  # noqa: BLE001 - already dead, or its node gone: nothing more to stop
            log.debug("kill of worker %s: %s", worker.key, exc)

    def _down_nodes(self, nodes: set[str]) -> set[str]:
        """Which of `nodes` are gone: whose raylet no longer accepts a connection (Ray's own verdict waits for
        missed heartbeats, tens of seconds after a machine vanished), or that Ray marks dead — asked only while
        the head answers (a lost head would keep the question waiting for a minute)."""
        import socket

        import ray

        from tpa_dist.run.headwatch import gcs_answers

        down = set()
        for node in nodes:
            address = self.raylets.get(node)
            if address is None:
                continue
            try:
                socket.create_connection(address, timeout=NODE_PROBE_TIMEOUT_S).close()
            except OSError:
                down.add(node)
        rest = nodes - down
        if rest and gcs_answers():
            known = {n["NodeID"]: n for n in ray.nodes()}
            down |= {node for node in rest if not (known.get(node) or {}).get("Alive")}
        return down

    def _learn_raylet(self, node: str) -> None:
        """Remember a node's raylet address (asked of Ray once, while the head answers)."""
        import ray

        if node in self.raylets:
            return
        for info in ray.nodes():
            try:
                self.raylets[info["NodeID"]] = (info["NodeManagerAddress"], int(info["NodeManagerPort"]))
            except (KeyError, ValueError, TypeError):
                continue

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
                    f"worker {worker.pool}-{worker.wid} on {worker.host} died ({cause}); its batches run again, "
                    "each task alone, to find the one that kills its worker"
                )
            else:
                keep.append((worker, when, cause))
        self._unclassified = keep
        for node, gone in by_node.items():
            if node in self.lost_nodes:
                continue
            self.lost_nodes.add(node)
            left = len(self.ready())
            where = (
                f"their work went to the {left} worker(s) left"
                if left
                else f"no worker is left: their work waits up to {self.conf.wait_for_workers_s:.0f} s for a node "
                "to join (--wait-for-workers), then fails"
            )
            self.on_event(f"node {gone[0].host} ({node[:8]}) lost mid-run with {len(gone)} worker(s); {where}")

    def finish_node_caches(self, timeout: float = 60.0) -> list[dict]:
        """A census on a disk budget: each node's cache emptied by one of its live workers; what each node reports
        (its peaks and the bytes it fetched). A node without a live worker keeps its files until the next run."""
        import ray

        if self.budget is None:
            return []
        one = {w.node: w for w in self.ready()}
        calls = [w.actor.finish_node_cache.remote() for w in one.values()]
        done, _ = ray.wait(calls, num_returns=len(calls), timeout=timeout)
        reports = []
        for ref in done:
            try:
                reports.append(ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - a node lost at the end: its files go with it or next run
                log.warning("a node's census cache could not be emptied: %s", exc)
        return [r for r in reports if r]

    def shutdown(self) -> None:
        """Stop every worker (no restarts, so no retry chatter after the run); report losses not reported yet."""
        if self._unclassified:
            self._classify_losses(float("inf"))
        for worker in self.workers:
            if worker.state != "gone":
                self._drop(worker)
        self.probes.clear()
        self.calls.clear()
