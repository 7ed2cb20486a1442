"""The Ray driver: catalog every model, plan tasks, run them on worker actors, stream results to DuckDB.

The driver is the database's only writer; workers read tensors themselves from byte ranges, so weights
never travel through the driver.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field

from . import __version__
from .catalog import open_model
from .errors import TpaError
from .jobs import Job
from .progress import Progress
from .sources import ModelSource, resolve
from .store import Store
from .tasks import AnalysisSettings, MatrixTask, batch_tasks, tasks_for_tensor

log = logging.getLogger("tpa_dist")

FLUSH_ROWS = 256
FLUSH_SECONDS = 2.0
INFLIGHT_PER_WORKER = 2
MAX_BATCH_ATTEMPTS = 3


@dataclass
class RunSummary:
    run_id: str
    models: list[tuple[str, str]] = field(default_factory=list)  # (model_id, revision) analyzed
    total: int = 0
    done: int = 0
    failed: int = 0
    reused: int = 0
    bytes: int = 0
    seconds: float = 0.0
    ray_startup_s: float = 0.0
    failures: list[str] = field(default_factory=list)  # model-level and matrix-level messages

    @property
    def ok(self) -> bool:
        return not self.failures

    def describe(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        lines = [f"run {self.run_id}: {self.done}/{self.total} analyzed ({self.reused} reused from earlier runs), "
                 f"{self.failed} failed, {self.bytes / 2**20:.1f} MiB in {self.seconds:.1f}s ({rate:.1f} mat/s; "
                 f"Ray start-up {self.ray_startup_s:.1f}s)"]
        if self.failures:
            lines.append(f"{len(self.failures)} failure(s):")
            lines += [f"  - {msg}" for msg in self.failures[:20]]
            if len(self.failures) > 20:
                lines.append(f"  ... and {len(self.failures) - 20} more (SELECT * FROM matrix_analysis "
                             f"WHERE status = 'error')")
        return "\n".join(lines)


def versions() -> dict[str, str]:
    import duckdb
    import numpy
    import ray

    out = {"tpa_dist": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
           "duckdb": duckdb.__version__, "ray": ray.__version__}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        out["torch"] = "absent"
    return out


def _start_ray(job: Job) -> float:
    import ray

    if ray.is_initialized():
        return 0.0
    t0 = time.perf_counter()
    if job.address:
        ray.init(address=job.address, logging_level=logging.WARNING, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
    return time.perf_counter() - t0


def _make_workers(job: Job, settings: AnalysisSettings) -> list:
    import ray

    from .actors import AnalysisWorker

    threads = max(1, job.threads_per_worker)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    count = job.num_workers or max(1, cpus // threads)
    cls = ray.remote(AnalysisWorker).options(num_cpus=threads, max_restarts=4, max_task_retries=2)
    return [cls.remote(settings.settings_id(), settings.sparsity_threshold, job.block_mib << 20, threads, "cpu")
            for _ in range(count)]


class Driver:
    """One submit: plans every model, dispatches batches, writes results, returns a RunSummary."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.settings = AnalysisSettings(sparsity_threshold=job.sparsity_threshold)
        self.settings_id = self.settings.settings_id()
        self.summary = RunSummary(run_id=time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6])

    def _plan_model(self, store: Store, source: ModelSource) -> list[MatrixTask]:
        catalog = open_model(source.path)
        tensors = catalog.tensors()
        revision = source.revision or f"local-{catalog.fingerprint()}"
        store.upsert_model(model_id=source.model_id, revision=revision, source_path=str(source.path),
                           architecture=catalog.architecture, config=catalog.config,
                           config_error=catalog.config_error, num_shards=len(catalog.shards),
                           num_tensors=len(tensors), num_params=sum(t.numel for t in tensors), status="ok",
                           error=None, run_id=self.summary.run_id)
        store.insert_tensors(source.model_id, revision, tensors)
        tasks = [task for t in tensors for task in tasks_for_tensor(source.model_id, revision, t)]
        done = set() if self.job.force else store.done_keys(source.model_id, revision, self.settings_id)
        self.summary.models.append((source.model_id, revision))
        self.summary.total += len(tasks)
        self.summary.reused += sum(1 for t in tasks if t.matrix_key in done)
        if catalog.config_error:
            log.warning("%s: %s", source.spec, catalog.config_error)
        return [t for t in tasks if t.matrix_key not in done]

    def plan(self, store: Store) -> list[MatrixTask]:
        """Catalog every model (headers only); a bad model is recorded and skipped, never fatal."""
        tasks: list[MatrixTask] = []
        for spec in self.job.models:
            try:
                source = resolve(spec, seed=self.job.seed)
                tasks += self._plan_model(store, source)
            except TpaError as exc:
                self.summary.failures.append(f"model {spec}: {exc}")
                store.upsert_model(model_id=spec, revision="unresolved", source_path=None, architecture=None,
                                   config=None, config_error=None, num_shards=None, num_tensors=None,
                                   num_params=None, status="error", error=str(exc), run_id=self.summary.run_id)
                log.error("model %s skipped: %s", spec, exc)
        return tasks

    def run(self) -> RunSummary:
        store = Store(self.job.db)
        try:
            store.start_run(self.summary.run_id, " ".join(self.job.argv or sys.argv),
                            {k: v for k, v in asdict(self.job).items() if k != "argv"}, versions(),
                            socket.gethostname())
            store.upsert_settings(self.settings_id, self.settings.as_dict())
            tasks = self.plan(store)
            status = "ok"
            t0 = time.perf_counter()
            try:
                if tasks:
                    self.summary.ray_startup_s = _start_ray(self.job)
                    t0 = time.perf_counter()
                    self._execute(store, tasks)
            except KeyboardInterrupt:
                status = "interrupted"
                self.summary.failures.append("interrupted (Ctrl-C): stored batches are kept; "
                                             "run the same submit again to resume")
                raise
            finally:
                self.summary.seconds = time.perf_counter() - t0
                if status == "ok" and not self.summary.ok:
                    status = "failed"
                self._finish(store, status)
            return self.summary
        finally:
            store.close()

    def _finish(self, store: Store, status: str) -> None:
        s = self.summary
        store.finish_run(s.run_id, status=status, total=s.total, done=s.done, failed=s.failed, reused=s.reused,
                         bytes=s.bytes, seconds=s.seconds, ray_startup_s=s.ray_startup_s,
                         mps=s.done / s.seconds if s.seconds else None,
                         bps=s.bytes / s.seconds if s.seconds else None,
                         throughput=getattr(self, "_by_device", {}), summary=s.describe())

    def _execute(self, store: Store, tasks: list[MatrixTask]) -> None:
        import ray
        from ray.exceptions import RayActorError, WorkerCrashedError

        workers = _make_workers(self.job, self.settings)
        batches = deque((b, 1) for b in batch_tasks(tasks))
        progress = Progress(len(tasks), sum(t.nbytes for t in tasks), enabled=self.job.progress)
        load = {i: 0 for i in range(len(workers))}
        inflight: dict = {}
        rows: list[dict] = []
        spectra: list = []
        last_flush = time.monotonic()
        self._by_device: dict[str, dict[str, float]] = {}

        def flush() -> None:
            nonlocal rows, spectra, last_flush
            store.write_batch(rows, spectra)
            store.progress(self.summary.run_id, self.summary.total, self.summary.done + self.summary.reused,
                           self.summary.failed, self.summary.bytes)
            rows, spectra, last_flush = [], [], time.monotonic()

        try:
            while batches or inflight:
                for i in sorted(load, key=load.get):
                    if not batches or load[i] >= INFLIGHT_PER_WORKER:
                        continue
                    batch, attempt = batches.popleft()
                    inflight[workers[i].analyze.remote(batch)] = (i, batch, attempt)
                    load[i] += 1
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
                for ref in ready:
                    i, batch, attempt = inflight.pop(ref)
                    load[i] -= 1
                    try:
                        results = ray.get(ref)
                    except (RayActorError, WorkerCrashedError) as exc:
                        if attempt < MAX_BATCH_ATTEMPTS:
                            log.warning("worker lost (%s); re-running %d task(s)", type(exc).__name__, len(batch))
                            batches.append((batch, attempt + 1))
                            continue
                        results = [(_lost_row(t, self.settings_id, exc), None) for t in batch]
                    self._collect(results, rows, spectra, progress)
                if len(rows) >= FLUSH_ROWS or (rows and time.monotonic() - last_flush >= FLUSH_SECONDS):
                    flush()
            flush()
        finally:
            progress.close()
            for w in workers:
                ray.kill(w)

    def _collect(self, results: list, rows: list, spectra: list, progress: Progress) -> None:
        failed = nbytes = 0
        device = "cpu"
        for row, sv in results:
            row["run_id"] = self.summary.run_id
            rows.append(row)
            device = row.get("device") or device
            stats = self._by_device.setdefault(device, {"matrices": 0, "bytes": 0, "seconds": 0.0})
            stats["matrices"] += 1
            stats["bytes"] += row["nbytes"]
            stats["seconds"] += row.get("seconds") or 0.0
            nbytes += row["nbytes"]
            if row["status"] != "ok":
                failed += 1
                self.summary.failures.append(f"{row['model_id']}: {row['error']}")
            if sv is not None:
                spectra.append((row, sv))
        self.summary.done += len(results) - failed
        self.summary.failed += failed
        self.summary.bytes += nbytes
        progress.update(len(results), nbytes, failed, device)


def _lost_row(task: MatrixTask, settings_id: str, exc: BaseException) -> dict:
    from .analysis import _base_row

    row = _base_row(task, settings_id)
    row.update(status="error", error=f"tensor {task.matrix_key}: worker lost {MAX_BATCH_ATTEMPTS} times "
                                     f"({type(exc).__name__})", device="cpu", seconds=None)
    return row


def submit(job: Job) -> RunSummary:
    """Analyze every model of `job` into its database; see RunSummary.ok for the outcome."""
    summary = Driver(job).run()
    if summary.models:
        from .export import write_seed_csv

        write_seed_csv(job.db, summary.models, job.output_dir)
    return summary
