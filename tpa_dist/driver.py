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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from . import __version__
from .catalog import open_model
from .errors import TpaError
from .jobs import Job
from .progress import Progress, write_live_progress
from .remote import Downloads, ShardFetcher
from .scheduler import Scheduler, make_pools
from .sources import ModelSource, resolve
from .store import Store
from .tasks import AnalysisSettings, MatrixTask, plan_tasks, task_paths

log = logging.getLogger("tpa_dist")

FLUSH_ROWS = 256
FLUSH_SECONDS = 2.0


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
        lines = [
            f"run {self.run_id}: {self.done}/{self.total} analyzed ({self.reused} reused from earlier runs), "
            f"{self.failed} failed, {self.bytes / 2**20:.1f} MiB in {self.seconds:.1f}s ({rate:.1f} mat/s; "
            f"Ray start-up {self.ray_startup_s:.1f}s)"
        ]
        if self.failures:
            lines.append(f"{len(self.failures)} failure(s):")
            lines += [f"  - {msg}" for msg in self.failures[:20]]
            if len(self.failures) > 20:
                lines.append(
                    f"  ... and {len(self.failures) - 20} more (SELECT * FROM matrix_analysis WHERE status = 'error')"
                )
        return "\n".join(lines)


def versions() -> dict[str, str]:
    import duckdb
    import numpy
    import ray

    out = {
        "tpa_dist": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "duckdb": duckdb.__version__,
        "ray": ray.__version__,
    }
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        out["torch"] = "absent"
    return out


def _multi_node() -> bool:
    """Whether the work spreads over several nodes (Ray running, more than one live node with CPUs)."""
    import ray

    if not ray.is_initialized():
        return False
    return sum(1 for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0) > 1


def _start_ray(job: Job) -> float:
    import ray

    if ray.is_initialized():
        return 0.0
    t0 = time.perf_counter()
    if job.address:
        ray.init(address=job.address, logging_level=logging.WARNING, log_to_driver=False)
    else:
        ray.init(
            num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False
        )
    return time.perf_counter() - t0


class Driver:
    """One submit: plans every model, dispatches batches, writes results, returns a RunSummary."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.settings = AnalysisSettings(sparsity_threshold=job.sparsity_threshold)
        self.settings_id = self.settings.settings_id()
        self.summary = RunSummary(run_id=time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6])
        self.catalogs: list[tuple[str, str, object]] = []
        self.streams: list[tuple[ModelSource, list[MatrixTask]]] = []  # Hub models with shards not downloaded
        self.downloads = Downloads()  # those shards, arriving while the analysis runs

    def _plan_model(self, store: Store, source: ModelSource) -> list[MatrixTask]:
        catalog = open_model(source.path, remote=source.remote)
        tensors = catalog.tensors()
        revision = source.revision or f"local-{catalog.fingerprint()}"
        store.upsert_model(
            model_id=source.model_id,
            revision=revision,
            source_path=str(source.path),
            architecture=catalog.architecture,
            config=catalog.config,
            config_error=catalog.config_error,
            num_shards=len(catalog.shards),
            num_tensors=len(tensors),
            num_params=sum(t.numel for t in tensors),
            status="ok",
            error=None,
            run_id=self.summary.run_id,
        )
        store.insert_tensors(source.model_id, revision, tensors)
        tasks = plan_tasks(source.model_id, revision, tensors, catalog.config)
        if source.kind == "hub" and source.revision:  # nodes that cannot see the driver's cache fetch shards
            tasks = [replace(t, hub=(source.model_id, source.revision)) for t in tasks]
        done = set() if self.job.force else store.done_keys(source.model_id, revision, self.settings_id)
        self.summary.models.append((source.model_id, revision))
        self.catalogs.append((source.model_id, revision, catalog))
        self.summary.total += len(tasks)
        self.summary.reused += sum(1 for t in tasks if t.matrix_key in done)
        if catalog.config_error:
            log.warning("%s: %s", source.spec, catalog.config_error)
        todo = [t for t in tasks if t.matrix_key not in done]
        if source.pending:
            self.streams.append((source, todo))
        return todo

    def _start_downloads(self, embeddings: list[tuple[str, str, object]], spread: bool) -> None:
        """Fetch in the background the Hub shards this run reads: on one node, every pending task's (each is
        analyzed as it lands); on a cluster only the embeddings' (the driver reads those itself), since workers
        fetch their own shards on their nodes."""
        from .embedding import find_embeddings

        needed = {t.path for _, _, catalog in embeddings for t in find_embeddings(catalog)}
        for source, todo in self.streams:
            paths = needed if spread else needed | {p for t in todo for p in task_paths(t)}
            shards = [s for s in source.pending if s.local_path in paths]
            if shards:
                self.downloads.add(ShardFetcher(source.model_id, source.revision, shards, source.fetch))
        self.downloads.start()

    def plan(self, store: Store) -> list[MatrixTask]:
        """Catalog every model (headers only); a bad model is recorded and skipped, never fatal."""
        tasks: list[MatrixTask] = []
        for spec in self.job.models:
            try:
                source = resolve(spec, seed=self.job.seed, stream=True)
                tasks += self._plan_model(store, source)
            except TpaError as exc:
                self.summary.failures.append(f"model {spec}: {exc}")
                store.upsert_model(
                    model_id=spec,
                    revision="unresolved",
                    source_path=None,
                    architecture=None,
                    config=None,
                    config_error=None,
                    num_shards=None,
                    num_tensors=None,
                    num_params=None,
                    status="error",
                    error=str(exc),
                    run_id=self.summary.run_id,
                )
                log.error("model %s skipped: %s", spec, exc)
        return tasks

    def run(self) -> RunSummary:
        store = Store(self.job.db)
        try:
            store.start_run(
                self.summary.run_id,
                " ".join(self.job.argv or sys.argv),
                {k: v for k, v in asdict(self.job).items() if k != "argv"},
                versions(),
                socket.gethostname(),
            )
            store.upsert_settings(self.settings_id, self.settings.as_dict())
            tasks = self.plan(store)
            status = "ok"
            t0 = time.perf_counter()
            try:
                embeddings = self._pending_embeddings(store) if self.job.embedding else []
                # a cluster (an --address, or a multi-node Ray already running) fetches shards on its nodes
                self._start_downloads(embeddings, spread=bool(self.job.address) or _multi_node())
                if tasks or embeddings:  # a fully resumed run needs no Ray at all
                    self.summary.ray_startup_s = _start_ray(self.job)
                    t0 = time.perf_counter()
                if tasks:
                    self._execute(store, tasks)
                self.summary.failures += self.downloads.join()
                if embeddings:
                    self._embeddings(store, embeddings)
            except KeyboardInterrupt:
                self.downloads.stop()
                status = "interrupted"
                self.summary.failures.append(
                    "interrupted (Ctrl-C): stored batches are kept; run the same submit again to resume"
                )
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
        store.finish_run(
            s.run_id,
            status=status,
            total=s.total,
            done=s.done,
            failed=s.failed,
            reused=s.reused,
            bytes=s.bytes,
            seconds=s.seconds,
            ray_startup_s=s.ray_startup_s,
            mps=s.done / s.seconds if s.seconds else None,
            bps=s.bytes / s.seconds if s.seconds else None,
            throughput=getattr(self, "_by_device", {}),
            summary=s.describe(),
        )

    def _pending_embeddings(self, store: Store) -> list[tuple[str, str, object]]:
        """Models whose token embedding is not clustered yet (all of them with --force)."""
        from .embedding import find_embeddings

        pending = []
        for model_id, revision, catalog in self.catalogs:
            wanted = {t.name for t in find_embeddings(catalog)}
            if wanted and (self.job.force or not wanted <= store.done_embeddings(model_id, revision)):
                pending.append((model_id, revision, catalog))
        return pending

    def _embeddings(self, store: Store, pending: list[tuple[str, str, object]]) -> None:
        """Cluster each pending model's token embedding; a failure is recorded, the others go on."""
        from .embedding import EmbeddingSettings, find_embeddings
        from .embedding_run import analyze_model_embeddings, store_tables, write_files

        settings = EmbeddingSettings(
            k_min=self.job.k_min, k_max=self.job.k_max, k_step=self.job.k_step, seed=self.job.seed
        )
        for model_id, revision, catalog in pending:
            missing = [m for t in find_embeddings(catalog) if (m := self.downloads.state(t.path)) != "ready"]
            if missing:
                self.summary.failures.append(f"{model_id}: embedding analysis skipped: {missing[0]}")
                continue
            try:
                results = analyze_model_embeddings(catalog, settings, self.job.cpu_only)
                for res in results:
                    store.write_embedding(store_tables(model_id, revision, self.summary.run_id, settings.seed, res))
                write_files(Path(self.job.output_dir), model_id, results)
            except (TpaError, ValueError, MemoryError) as exc:
                self.summary.failures.append(f"{model_id}: embedding analysis failed: {exc}")
                log.error("%s: embedding analysis failed: %s", model_id, exc)

    def _execute(self, store: Store, tasks: list[MatrixTask]) -> None:
        import ray

        block_bytes = self.job.block_mib << 20
        pools = make_pools(
            settings_id=self.settings_id,
            sparsity_threshold=self.settings.sparsity_threshold,
            block_bytes=block_bytes,
            threads=max(1, self.job.threads_per_worker),
            num_workers=self.job.num_workers,
            cpu_only=self.job.cpu_only,
            gpus_per_worker=self.job.gpus_per_worker,
        )
        log.info(
            "workers: %d GPU, %d CPU (%d BLAS thread(s) each)",
            len(pools.gpu),
            len(pools.cpu),
            max(1, self.job.threads_per_worker),
        )
        progress = Progress(len(tasks), sum(t.nbytes for t in tasks), enabled=self.job.progress)
        self._by_device: dict[str, dict[str, float]] = {}
        buffer: dict[str, list] = {"rows": [], "spectra": []}
        last_flush = [time.monotonic()]

        def flush() -> None:
            store.write_batch(buffer["rows"], buffer["spectra"])
            store.progress(
                self.summary.run_id,
                self.summary.total,
                self.summary.done + self.summary.reused,
                self.summary.failed,
                self.summary.bytes,
            )
            write_live_progress(self.job.db, self.summary, progress)
            buffer["rows"], buffer["spectra"] = [], []
            last_flush[0] = time.monotonic()

        def on_results(results: list, reason: str | None) -> None:
            self._collect(results, buffer["rows"], buffer["spectra"], progress, reason)

        def on_idle() -> None:
            rows = buffer["rows"]
            if len(rows) >= FLUSH_ROWS or (rows and time.monotonic() - last_flush[0] >= FLUSH_SECONDS):
                flush()

        gate = self.downloads.state if self.downloads else None
        scheduler = Scheduler(pools, block_bytes, on_results, on_idle, gate)
        scheduler.plan(tasks)
        try:
            scheduler.run(lambda t, message: error_row(t, self.settings_id, message))
            flush()
        except KeyboardInterrupt:
            flush()  # finished results are whole rows: keep them, then stop
            raise
        finally:
            progress.close()
            for actor in pools.all():
                ray.kill(actor)

    def _collect(self, results: list, rows: list, spectra: list, progress: Progress, reason: str | None) -> None:
        failed = nbytes = 0
        device = "cpu"
        for row, sv in results:
            row["run_id"] = self.summary.run_id
            row["fallback_reason"] = reason
            rows.append(row)
            device = row.get("device") or device
            stats = self._by_device.setdefault(device, {"matrices": 0, "bytes": 0, "seconds": 0.0})
            stats["matrices"] += 1
            stats["bytes"] += row["nbytes"]
            stats["seconds"] += row.get("seconds") or 0.0
            nbytes += row["nbytes"]
            if row["status"] == "error":
                failed += 1
                if not self.downloads.explains(row["error"]):
                    self.summary.failures.append(f"{row['model_id']}: {row['error']}")  # shards: once, at the end
            if sv is not None:
                spectra.append((row, sv))
        self.summary.done += len(results) - failed
        self.summary.failed += failed
        self.summary.bytes += nbytes
        progress.update(len(results), nbytes, failed, device)


def error_row(task: MatrixTask, settings_id: str, message: str) -> dict:
    """The stored row of a task that could not run (worker lost, shard not downloadable)."""
    from .analysis import base_row

    row = base_row(task, settings_id)
    row.update(status="error", error=f"tensor {task.matrix_key}: {message}", device="cpu", seconds=None)
    return row


def submit(job: Job) -> RunSummary:
    """Analyze every model of `job` into its database; see RunSummary.ok for the outcome."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()  # huggingface_hub's per-file bars would fight ours; shards are logged instead
    try:
        summary = Driver(job).run()
    finally:
        if not was_disabled:
            enable_progress_bars()
    if summary.models:
        from .export import write_seed_csv
        from .report import write_report

        write_seed_csv(job.db, summary.models, job.output_dir)
        write_report(job.db, job.output_dir, sorted({m for m, _ in summary.models}))
    return summary
