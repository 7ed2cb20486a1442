"""The scheduler's choices without Ray: which batch a worker takes, where tasks are planned, and the one retry
policy every executor's work is run by (batches.py) — driven through a fake engine that kills its worker process
whenever it runs one given matrix, holding two batches at a time as a Ray actor does."""

from __future__ import annotations

from dataclasses import dataclass, field

from tpa_dist.checkpoint.reader import Region
from tpa_dist.compute.analysis import base_row
from tpa_dist.compute.tasks import MatrixTask
from tpa_dist.run.batches import MAX_FAILURES, MAX_LOSSES, Batch, after_death, exhausted, failed_rows, split
from tpa_dist.run.executor import Done, Lost, Worker
from tpa_dist.run.scheduler import Scheduler, gpu_bytes_needed
from tpa_dist.settings import WorkerSettings


def _task(key: str, shard: str = "a.safetensors", rows: int = 64, cols: int = 64, kind: str = "matrix") -> MatrixTask:
    region = Region(key, f"/m/{shard}", 0, "F32", rows, cols)
    return MatrixTask("m", "r", key, key, kind, region, (rows, cols), shard, "F32", 0, "q_proj", None)


@dataclass
class FakePool:
    """What the scheduler reads of a WorkerPool."""

    workers: list[Worker] = field(default_factory=list)
    probes: dict = field(default_factory=dict)
    conf: WorkerSettings = field(default_factory=WorkerSettings)

    def ready(self, pool: str | None = None) -> list[Worker]:
        return [w for w in self.workers if w.state == "ready" and (pool is None or w.pool == pool)]

    def alive(self, pool: str | None = None) -> bool:
        return any(w.state != "gone" and (pool is None or w.pool == pool) for w in self.workers)

    @property
    def gpu_free_bytes(self) -> int:
        return min((w.free_bytes for w in self.ready("gpu")), default=0)


def _worker(pool: str, wid: int, node: str, free: int = 0, state: str = "ready") -> Worker:
    return Worker(actor=None, pool=pool, wid=wid, state=state, node=node, free_bytes=free)


def _scheduler(*workers: Worker) -> Scheduler:
    return Scheduler(FakePool(list(workers)), 1 << 20, lambda rows, reason: None, lambda: None)


def test_a_worker_prefers_its_nodes_shards_then_unclaimed_then_any():
    s = _scheduler(cpu := _worker("cpu", 0, "n1"))
    s.queue.extend([Batch([_task("x", "b.safetensors")]), Batch([_task("y", "c.safetensors")])])
    s.queue.append(Batch([_task("z", "a.safetensors")]))
    s.shard_node.update({"/m/b.safetensors": "n2", "/m/a.safetensors": "n1"})
    assert s.pick(cpu) == 2  # its node already reads a.safetensors
    del s.queue[2]
    assert s.pick(cpu) == 1  # c.safetensors is claimed by no node: before stealing b's
    del s.queue[1]
    assert s.pick(cpu) == 0  # only another node's shard is left: steal it


def test_gpu_and_cpu_workers_take_each_others_batches_only_when_right():
    gpu = _worker("gpu", 0, "n1", free=10 << 20)
    cpu = _worker("cpu", 1, "n1")
    s = _scheduler(gpu, cpu)
    fits = Batch([_task("fits")], "cpu")
    too_big = Batch([_task("big", rows=4096, cols=4096)], "cpu")
    fallback = Batch([_task("fell")], "cpu", "gpu_memory")
    for_gpu = Batch([_task("g")], "gpu")
    assert gpu_bytes_needed(too_big.tasks[0], 1 << 20) > 0.9 * gpu.free_bytes
    assert s.takes(gpu, fits) and not s.takes(gpu, too_big) and not s.takes(gpu, fallback)
    assert not s.takes(cpu, for_gpu)  # a GPU worker is alive: GPU batches wait for it
    s.queue.extend([fits, for_gpu])
    assert s.pick(gpu) == 1  # its own pool's batch first
    gpu.state = "gone"  # no GPU worker left: CPU workers take GPU batches
    assert s.takes(cpu, for_gpu)


def test_plan_routes_by_gpu_memory_and_batches_the_rest_for_cpus():
    s = _scheduler(_worker("gpu", 0, "n1", free=1 << 20), _worker("cpu", 1, "n1"))
    small, big = _task("small", rows=32, cols=32), _task("big", rows=2048, cols=2048)
    vector = _task("norm", rows=64, cols=1, kind="vector")
    s.plan([small, big, vector])
    placed = {t.matrix_key: (b.pool, b.fallback_reason) for b in s.queue for t in b.tasks}
    assert placed == {"small": ("gpu", None), "big": ("cpu", "gpu_memory"), "norm": ("cpu", None)}
    assert all(b.paths == frozenset({"/m/a.safetensors"}) for b in s.queue)


def test_the_retry_policy_blames_only_what_ran_alone():
    batch = Batch([_task("a"), _task("b")])
    lost = batch
    for _ in range(MAX_LOSSES - 1):  # node losses are not the batch's fault ...
        (lost,) = after_death(lost, node_lost=True)
        assert exhausted(lost) is None and len(lost.tasks) == 2
    (lost,) = after_death(lost, node_lost=True)
    assert exhausted(lost) == f"its worker's node was lost {MAX_LOSSES} times"  # ... up to a point
    suspects = after_death(batch, node_lost=False)  # a process died holding it: nobody is blamed yet
    assert [(s.tasks, s.suspect, s.failures) for s in suspects] == [([t], True, 0) for t in batch.tasks]
    killer = suspects[0]
    for _ in range(MAX_FAILURES - 1):  # a suspect that dies running alone is struck
        (killer,) = after_death(killer, node_lost=False)
        assert exhausted(killer) is None
    (killer,) = after_death(killer, node_lost=False)
    assert exhausted(killer) == f"the worker process died while analyzing it, {MAX_FAILURES} times"
    parts = split(batch)
    assert [p.tasks for p in parts] == [[batch.tasks[0]], [batch.tasks[1]]]
    rows = failed_rows(batch, "why")
    assert [(r.matrix_key, r.status, r.error) for r, sv in rows] == [
        ("a", "error", "tensor a: why"),
        ("b", "error", "tensor b: why"),
    ]


@dataclass
class KillingEngine(FakePool):
    """Runs what it is sent; a worker process that runs `killer` dies, and every batch it held dies with it
    (the engine cannot say which batch killed it). `node_lost` makes every death a node's."""

    killer: str = ""
    node_lost: bool = False
    sent: dict = field(default_factory=dict)
    kills: int = 0

    def send(self, worker: Worker, tasks: list) -> object:
        handle = object()
        self.sent[handle] = (worker, tasks)
        return handle

    def poll(self, timeout: float) -> list:
        events = []
        for worker, tasks in list(self.sent.values()):
            if any(t.matrix_key == self.killer for t in tasks):
                self.kills += 1
                for other, (w, _) in list(self.sent.items()):
                    if w is worker:
                        del self.sent[other]
                        events.append(Lost(other, self.node_lost, "killed"))
                return events
        for handle, (_worker, tasks) in list(self.sent.items()):
            del self.sent[handle]
            events.append(Done(handle, [(base_row(t), None) for t in tasks]))
        return events

    def maintain(self, wants_cpu: int, wants_gpu: int) -> None:
        return None

    def cancel(self) -> None:
        return None


def _run_with_killer(node_lost: bool = False) -> tuple[dict, KillingEngine]:
    engine = KillingEngine([_worker("cpu", 0, "n1"), _worker("cpu", 1, "n1")], killer="k7", node_lost=node_lost)
    rows: dict = {}
    scheduler = Scheduler(engine, 1 << 20, lambda results, _r: rows.update({r.matrix_key: r for r, _ in results}), dict)
    scheduler.run([_task(f"k{i}") for i in range(24)])
    return rows, engine


def test_only_the_matrix_that_kills_its_worker_fails():
    rows, engine = _run_with_killer()
    assert len(rows) == 24
    failed = {k: r.error for k, r in rows.items() if r.status == "error"}
    assert failed == {"k7": f"tensor k7: the worker process died while analyzing it, {MAX_FAILURES} times (killed)"}
    assert engine.kills == MAX_FAILURES + 1  # the first death blames nobody; then three deaths running alone


def test_a_node_lost_every_time_fails_its_batch_as_a_node_loss_not_a_crash():
    rows, _ = _run_with_killer(node_lost=True)
    failed = {k: r.error for k, r in rows.items() if r.status == "error"}
    assert set(failed) >= {"k7"} and all("node was lost" in e for e in failed.values()), failed


def test_work_is_cut_for_the_workers_asked_of_the_autoscaler_not_only_those_ready():
    """A run that asked the autoscaler for 11 CPU workers while 1 is ready cuts its 45 matrices into batches for
    11 (before: for the 1 ready, 4 batches, all taken before the new nodes joined)."""
    pool = FakePool([_worker("cpu", 0, "n1")])
    pool.requested = (11, 1)
    s = Scheduler(pool, 1 << 20, lambda rows, reason: None, lambda: None)
    s.plan([_task(f"m{i}") for i in range(45)])
    assert len(s.queue) >= 2 * 11  # every worker asked for gets batches (45 tasks: 2 a batch)


def test_the_gpu_message_says_what_happened(caplog):
    """A GPU node that joined but showed no usable CUDA device is not "no GPU node joined"."""
    import logging

    from tpa_dist.run import workerpool
    from tpa_dist.settings import AnalysisSettings

    pool = workerpool.WorkerPool(AnalysisSettings(), WorkerSettings())
    pool.requested = (2, 1)
    pool.no_cuda_hosts = ["gpu-node-7"]
    import ray.autoscaler.sdk as sdk

    calls = []
    original = sdk.request_resources
    sdk.request_resources = lambda **kw: calls.append(kw)
    try:
        with caplog.at_level(logging.INFO, logger="tpa_dist"):
            pool.release()
    finally:
        sdk.request_resources = original
    assert calls == [{"bundles": []}]
    assert "a GPU node joined (gpu-node-7) but showed no usable CUDA device: its work ran on CPUs" in caplog.text
    assert "no GPU node joined" not in caplog.text
