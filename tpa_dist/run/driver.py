"""The driver: wires one submit together — plan each model (planning.py), start downloads and the run's one
engine (the local pool or the Ray pool, executor.py, driven by scheduler.py), run the matrix tasks into the result
sink (results.py), then the embedding tasks on the same engine, write the outputs.

The driver is the database's only writer; workers read tensors themselves from byte ranges, so weights never
travel through the driver. Every step that concerns one model (planning, its tensors, its embeddings, its files)
is isolated: whatever it raises becomes that model's recorded failure, and the other models finish.
"""

from __future__ import annotations

import logging
import platform
import shutil
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path

from tpa_dist import __version__
from tpa_dist.compute.tasks import MatrixTask, Task, task_paths
from tpa_dist.db.live import write_live_phase
from tpa_dist.db.store import Store, is_interrupt
from tpa_dist.errors import ClusterLostError, JobError, TpaError
from tpa_dist.errors import describe as describe_failure
from tpa_dist.faults import Faults
from tpa_dist.interrupts import describe, recorded
from tpa_dist.interrupts import reclaim as reclaim_signals
from tpa_dist.jobs import Job
from tpa_dist.report.drawing import Figure
from tpa_dist.run.batches import EmbeddingFailure
from tpa_dist.run.cohorts import check_budget, with_cohort
from tpa_dist.run.executor import Executor
from tpa_dist.run.headwatch import HeadWatch
from tpa_dist.run.headwatch import lost as head_lost
from tpa_dist.run.local import LocalPool, choose_local
from tpa_dist.run.planning import STREAM_AFTER, Plan, PlannedModel, Planner
from tpa_dist.run.progress import Progress
from tpa_dist.run.raystart import ray_target, start_ray
from tpa_dist.run.results import ResultSink, RunSummary
from tpa_dist.run.scheduler import Scheduler
from tpa_dist.settings import WorkerSettings
from tpa_dist.sources.budget import BudgetedDownloads, BudgetedShard, census_cache
from tpa_dist.sources.cohort import Cohort
from tpa_dist.sources.hub import Downloads, ShardFetcher
from tpa_dist.sources.node_budget import NodeBudget, census_name

log = logging.getLogger("tpa_dist")

__all__ = ["Driver", "RunSummary", "submit", "wanted_workers"]


def versions() -> dict[str, str]:
    """Versions of the software a run used, read from the installed distributions (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"tpa_dist": __version__, "python": platform.python_version()}
    for name in ("numpy", "duckdb", "ray", "torch", "scipy", "scikit-learn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover
            out[name] = "absent"
    return out


def _multi_node() -> bool:
    """Whether the work spreads over several nodes (Ray running, more than one live node with CPUs)."""
    ray = sys.modules.get("ray")  # not imported: not running here (importing it to ask costs 0.35 s)
    if ray is None or not ray.is_initialized():
        return False
    return sum(1 for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0) > 1


def check_output_dir(path: str | Path) -> None:
    """Refuse an output directory that cannot be one before any work starts."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise JobError(f"--output-dir {out} exists and is not a folder; choose another")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobError(f"--output-dir {out}: cannot create it ({exc.strerror or exc})") from None


FEED_SLICE_S = 0.05  # a census's planning between two looks at the engine's events (_feed)


class Driver:
    """One submit: plans every model, dispatches batches, writes results, returns a RunSummary."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.settings = job.analysis
        self.settings_id = self.settings.settings_id()
        self.summary = RunSummary(run_id=time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6])
        self.planned = Plan()  # what planning found (plan())
        self.sink: ResultSink | None = None  # the analysis phase's result sink (its write time is a phase)
        self.downloads = Downloads()  # Hub shards arriving while the analysis runs
        self.by_device: dict[str, dict[str, float]] = {}
        self.local = False  # the single-machine pool instead of Ray (local.py), decided after planning
        self.joined = False  # runs on a Ray cluster given by an address (not a local Ray of its own)
        self.figures: list[Figure] = []  # the seed's PNGs (anova_curve.png), drawn with the report's figures
        self.embedded: set[tuple[str, str]] = set()  # (model, revision) whose embeddings this run stored
        self.faults = Faults.from_env()  # injected faults (tests): read once, passed to whoever acts on them
        self.pool: Executor | None = None  # the run's one engine, started at its first work (_engine())
        self.watch: HeadWatch | None = None  # a joined cluster's head, watched
        self.scheduler: Scheduler | None = None
        self.cohort: Cohort | None = None  # the census's members (--models-from, --hub-query, --cohort)
        self.planner: Planner | None = None  # a census's planning, going on while its analysis runs (_feed)
        self.budgeted: BudgetedDownloads | None = None  # --max-cache-gib: the one downloader of every shard
        self.progress: Progress | None = None
        self._taken = [0, 0, 0, 0, 0]  # of the plan's models, adapters, ΔW tasks, warnings, failures: those taken
        self._reasons_taken: Counter[str] = Counter()
        self.spread = False  # the work spreads over a cluster's nodes (they fetch their own shards)

    # -- planning ------------------------------------------------------------------------------------------------
    def plan(self, store: Store) -> None:
        """Plan the models (run/planning.py): all of them, or for a census (more than STREAM_AFTER entries) up to
        the first one with work, the rest planned while the analysis runs (_feed)."""
        check_budget(self.job)
        self.job, self.cohort = with_cohort(self.job, store, self.summary.run_id)  # a census's members, listed
        if self.cohort is not None:
            self.summary.cohort = self.cohort.describe()
        planner = self.planner = Planner(self.job, store, self.summary.run_id)
        self.planned = planner.plan
        stream = len(planner.entries) > STREAM_AFTER
        self._plan_while(lambda: not (stream and planner.pending))
        self._take_planned()

    def _plan_while(self, more: Callable[[], bool]) -> None:
        """Plan the next entries while `more()` says so; once every entry is, the adapters and pairs too. (run()'s
        `finally` closes the planner, however the run ends.)"""
        planner = self.planner
        while planner.remaining and more():
            planner.step()
        planner.flush()  # the planned models' rows, before their tasks are handed out
        if not planner.remaining:
            planner.finish()

    def _take_planned(self) -> tuple[list[PlannedModel], list[Task]]:
        """What planning found since the last call, into the run's summary: the new models and tasks to compute."""
        p, s, taken = self.planned, self.summary, self._taken
        models, adapters = p.models[taken[0] :], p.adapters[taken[1] :]
        deltas, warnings, failures = p.delta_tasks[taken[2] :], p.warnings[taken[3] :], p.failures[taken[4] :]
        self._taken = [len(p.models), len(p.adapters), len(p.delta_tasks), len(p.warnings), len(p.failures)]
        s.models += [m.key for m in models] + adapters
        s.total, s.reused = p.total, p.reused
        s.warnings += warnings
        s.reasons.update(p.reasons - self._reasons_taken)  # planning's counts only grow
        self._reasons_taken = Counter(p.reasons)
        for message in failures:  # each was named on the console as planning met it
            s.fail(message, said=True)
        return models, [t for m in models for t in m.todo] + deltas

    @property
    def streaming(self) -> bool:
        """A census whose planning goes on (entries, adapters or pairs not planned yet)."""
        return self.planner is not None and not self.planner.finished

    def _feed(self) -> list[Task] | None:
        """Between the engine's events: plan more of a census for about FEED_SLICE_S (never waiting longer on a Hub
        model's resolution: results keep being stored), its shards' downloads started and its tasks counted; the new
        tasks, or None once planning has ended."""
        planner = self.planner
        if planner is None or planner.finished:
            return None
        t0, first = time.perf_counter(), planner.next

        def more() -> bool:  # time left, and the next entry's Hub resolution ended (else: the engine first)
            left = FEED_SLICE_S - (time.perf_counter() - t0)
            return left > 0 and planner.ready(left)

        self._plan_while(more)
        models, new = self._take_planned()
        self._add_downloads(models, new)
        if self.progress is not None:
            self.progress.grow(len(new), sum(t.nbytes for t in new), self._planning_words())
        self.summary.streamed += planner.next - first
        self.summary.streamed_s += time.perf_counter() - t0
        return new

    def _planning_words(self) -> str | None:
        """The progress line's note while a census is still being planned."""
        p = self.planner
        if p is None or p.finished:
            return None
        return f"{p.next} of {len(p.entries)} models planned"

    @property
    def models(self) -> list[PlannedModel]:
        return self.planned.models

    def _add_downloads(self, models: list[PlannedModel], tasks: list[Task]) -> None:
        """Fetch in the background the Hub shards these models' tasks read: on one node, every pending task's (each
        is analyzed as it lands); on a cluster only the embeddings' (the driver reads those itself), since workers
        fetch their own shards on their nodes. A census on a disk budget fetches them in order, within it."""
        budget = self.job.cohort.max_cache_gib
        if budget is not None and self.spread:  # each node fetches its own within the budget (node_budget.py)
            return
        if budget is not None:
            return self._add_budgeted(models, tasks, int(budget * 2**30))
        read: set[str] = set()
        if not self.spread and any(m.source.pending for m in models):
            read = {p for t in tasks for p in task_paths(t)}
        for m in models:
            if not m.source.pending:
                continue
            needed = {t.path for t in m.embeddings} if not m.embeddings_done else set()
            paths = needed | read
            shards = [s for s in m.source.pending if s.local_path in paths]
            if shards:
                self.downloads.add(ShardFetcher(m.model_id, m.source.revision, shards, m.source.fetch))

    def _say_cache(self) -> None:
        """A census on a budget: the most its cache ever held (on each node of a cluster), in the summary; a cluster's
        node caches emptied."""
        said = None
        if self.budgeted is not None:
            fetcher = self.budgeted
            said = (
                f"census cache: peak {fetcher.peak / 2**20:.1f} MiB of the {fetcher.limit / 2**20:.1f} MiB "
                "budget (each shard deleted once its matrices were stored)"
            )
        elif self.node_budget is not None and hasattr(self.pool, "finish_node_caches"):
            reports = self.pool.finish_node_caches()
            self.summary.node_caches = reports
            if reports:
                peak = max(r["peak"] for r in reports)
                measured = max(r["measured_peak"] for r in reports)
                said = (
                    f"census cache on {len(reports)} node(s): peak {peak / 2**20:.1f} MiB reserved, "
                    f"{measured / 2**20:.1f} MiB found on disk, of the {self.node_budget.limit / 2**20:.1f} MiB "
                    f"budget per node; {sum(r['fetched'] for r in reports) / 2**20:.1f} MiB fetched in all"
                )
        if said:
            self.summary.cohort = (self.summary.cohort + "; " if self.summary.cohort else "") + said

    @property
    def node_budget(self) -> NodeBudget | None:
        """A census's disk budget kept on every node: on a cluster, whose nodes fetch their own shards."""
        budget = self.job.cohort.max_cache_gib
        if budget is None or not self.spread:
            return None
        return NodeBudget(int(budget * 2**30), census_name(socket.gethostname(), str(self.job.db)), self.summary.run_id)

    def _add_budgeted(self, models: list[PlannedModel], tasks: list[Task], limit: int) -> None:
        """--max-cache-gib: one downloader for every model's pending shards, deleting each once stored; a census
        still being planned adds its next models' shards as they are planned (the downloader waits for them)."""
        shards = [BudgetedShard(m.model_id, m.source.revision, s, m.source.fetch) for m in models
                  for s in m.source.pending]  # fmt: skip
        tracked = [((t.model_id, t.revision, t.matrix_key), task_paths(t)) for t in tasks]
        if self.budgeted is None:
            if not shards and not self.streaming:
                return
            self.budgeted = BudgetedDownloads([], limit, census_cache(self.job.db))
        self.budgeted.extend(shards, tracked)
        self.downloads.add(self.budgeted)
        if not self.streaming:
            self.budgeted.close()

    # -- running -------------------------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Analyze, cluster, write outputs; the `runs` row ends 'ok' only when nothing failed."""
        job = self.job
        check_output_dir(job.output_dir)
        store = Store(job.db, self.faults)
        status = "failed"
        t0 = time.perf_counter()
        try:
            config = {k: v for k, v in asdict(job).items() if k not in ("argv", "started")}
            store.start_run(
                self.summary.run_id, " ".join(job.argv or sys.argv), config, versions(), socket.gethostname()
            )
            write_live_phase(job.db, self.summary, "planning")  # `status` and a second writer see this run at once
            store.upsert_settings(self.settings_id, self.settings.as_dict())
            if job.rmt.enabled:
                store.upsert_settings(job.rmt.rmt_id(), {"rmt": job.rmt.as_dict()})
            if job.started is not None:  # the command line's start-up (an API caller's earlier work is not this run's)
                self.summary.phases["startup"] = max(0.0, time.monotonic() - job.started)
            with self._phase("plan"):
                self.plan(store)
            tasks = self.planned.tasks  # a census still being planned: its first model's (the rest come in _feed)
            # a cluster (an address, or a multi-node Ray already running) fetches shards on its nodes
            self.joined = ray_target(job.workers.address)[0] is not None
            self.spread = self.joined or _multi_node()
            if self.node_budget is not None:  # nodes fetch into caches of their own: none here may be read uncounted
                shutil.rmtree(census_cache(job.db), ignore_errors=True)
            self._add_downloads(self.models, tasks)
            self.downloads.start()
            self.local = choose_local(
                job.workers.address,
                job.workers.cpu_only,
                self._expected(sum(t.nbytes for t in tasks)),
                bool(self.downloads) or (self.streaming and self.planner.hub),
            )
            if (tasks or any(not m.embeddings_done for m in self.models)) and not self.local:  # resumed: no Ray
                self.summary.ray_startup_s = start_ray(job.workers.address)
                reclaim_signals()  # Ray's driver takes SIGTERM for a stack trace; a stop must end the run cleanly
                if self.joined:
                    self._watch_head()
                self.summary.phases["ray_startup"] = self.summary.ray_startup_s
                t0 = time.perf_counter()
            if tasks or self.streaming:
                with self._phase("analysis"):
                    self._execute(store, tasks)
            for message in self.downloads.join():
                self.summary.fail(message)
            self._say_cache()
            embed = [m for m in self.models if not m.embeddings_done]
            for i, m in enumerate(embed, 1):  # `status` says which model's embeddings, not "104/104 ETA 0s"
                write_live_phase(job.db, self.summary, f"embeddings {i}/{len(embed)}: {m.model_id}")
                with self._phase("embedding"):
                    self._embedding(store, m)
            self._stop_engine(completed=True)
            status = "ok"
        except KeyboardInterrupt:
            self.downloads.stop()
            if head_lost() and self.watch is not None:
                status = "failed"
                message = self.watch.message(self.summary.done)
                self.summary.fail(message)
                raise ClusterLostError(message) from None
            status = "interrupted"
            self.summary.fail(f"{describe()}: stored batches are kept; run the same submit again to resume")
            raise
        except Exception as exc:
            self.summary.fail(f"run stopped: {describe_failure(exc)}")
            raise
        finally:
            if self.planner is not None:  # an interrupted census: its Hub resolutions ahead are dropped, not awaited
                self.planner.close()
            self._stop_engine(completed=False)
            self.summary.seconds = time.perf_counter() - t0
            try:
                self._close(store, status)
            finally:
                if self.watch is not None:
                    self.watch.handled()
                    self.watch.stop()
        return self.summary

    def _expected(self, planned: int) -> int:
        """What the run will have of something it has `planned` of so far (tasks, bytes): for a census still being
        planned, as much per entry to come as per entry planned."""
        p = self.planner
        return planned * len(p.entries) // max(1, p.next) if p is not None and p.remaining else planned

    def _watch_head(self) -> None:
        """On a joined cluster: notice within seconds that its head is gone (headwatch.py)."""
        import ray

        self.watch = HeadWatch(ray.get_runtime_context().gcs_address, ray_target(self.job.workers.address)[0] or "")
        self.watch.stored = lambda: self.summary.done

    # -- the engine ----------------------------------------------------------------------------------------------
    def _engine(self) -> Scheduler:
        """The run's one engine, started at its first use: every phase's work runs on it under the same rules."""
        if self.scheduler is not None:
            return self.scheduler
        workers = self.job.workers
        if self.local:
            pool: Executor = LocalPool(self.settings, workers, self.faults)
        else:
            from tpa_dist.run.workerpool import WorkerPool

            pool = WorkerPool(self.settings, workers, on_event=self._event, faults=self.faults, budget=self.node_budget)
            if self.joined:
                tasks = self.planned.tasks
                pool.request(*wanted_workers(workers, tasks, self._expected(len(tasks))))
        self.pool = pool
        write_live_phase(self.job.db, self.summary, "starting workers")
        pool.start()
        if not self.local:
            log.info(
                "workers: %d GPU, %d CPU (%d BLAS thread(s) each)",
                len(pool.ready("gpu")),
                len(pool.ready("cpu")),
                workers.threads_per_worker,
            )
        fetching = self.downloads or (self.streaming and self.planner is not None and self.planner.hub)
        gate = self.downloads.state if fetching else None
        self.scheduler = Scheduler(
            pool, self.settings.block_bytes, lambda _r, _f: None, lambda: None, gate, workers.wait_for_workers_s
        )
        return self.scheduler

    def _stop_engine(self, completed: bool) -> None:
        pool, self.pool, self.scheduler = self.pool, None, None
        if pool is None or head_lost():  # a lost head: every Ray call would wait on it; the process exits
            return
        pool.shutdown()
        release = getattr(pool, "release", None)
        if release is not None:
            release(say_unmet=completed)

    def _close(self, store: Store, status: str) -> None:
        """Record the run's end, then (after a whole run) write the outputs — the report shows the final status —
        and mark the run failed if an output could not be written. Never masks the exception under way."""
        completed = status == "ok"
        if completed and not self.summary.ok:
            status = "failed"
        try:
            self._finish(store, status)
        finally:
            store.close()  # the outputs read the database through read-only connections
        if not completed:
            return
        before = len(self.summary.failures)
        try:
            with self._phase("outputs"):
                self._outputs()
        except KeyboardInterrupt:  # the analysis is stored; the outputs stop here, and the run says so
            self.summary.fail(f"{describe()} while writing the outputs: run the same submit again to write them")
            self._record("interrupted")
            raise
        # the record again: its summary's whole-run time now counts the outputs, as the console's line does
        self._record("failed" if len(self.summary.failures) > before else status)

    def _record(self, status: str) -> None:
        """Record the run's end again, after the outputs changed it."""
        try:
            store = Store(self.job.db, self.faults, checked=True)  # this run made and checked its schema
            try:
                self._finish(store, status)
            finally:
                store.close()
        except TpaError as exc:
            log.error("could not record the end of run %s: %s", self.summary.run_id, exc)

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """Time one phase of the run (summary.phases, stored with the run): where each second goes."""
        self.faults.pause(name, self.job.db)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.summary.phases[name] = self.summary.phases.get(name, 0.0) + time.perf_counter() - t0

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
            mps=s.done / s.analysis_s if s.analysis_s else None,
            bps=s.bytes / s.analysis_s if s.analysis_s else None,
            throughput=self.by_device,
            phases={**s.phases, "writing": self.sink.write_s if self.sink else 0.0},
            summary=s.describe(),
        )

    def _embedding(self, store: Store, m: PlannedModel) -> None:
        """Cluster one model's token embedding(s) on the engine, one at a time (each uses its worker's node);
        any failure is that model's, the others go on."""
        from tpa_dist.db.embedding_tables import store_tables
        from tpa_dist.run.embedding import embedding_tasks, log_result

        missing = [
            state.error or "still downloading"
            for t in m.embeddings
            if not (state := self.downloads.state(t.path)).ready
        ]
        if missing:
            self.summary.fail(f"{m.model_id}: embedding analysis skipped: {missing[0]}")
            return
        settings = self.job.embedding
        try:
            tasks = embedding_tasks(m, settings)
        except Exception as exc:  # noqa: BLE001 - one model's embedding never costs the others
            self.summary.fail(f"{m.model_id}: embedding analysis failed: {describe_failure(exc)}")
            log.error("%s: embedding analysis failed: %s", m.model_id, describe_failure(exc))
            return
        results: list = []
        engine = self._engine()
        engine.on_results, engine.on_idle = (lambda r, _reason: results.extend(r)), (lambda: None)
        for task in tasks:
            engine.run([task])
        for res in results:
            if isinstance(res, EmbeddingFailure):
                self.summary.fail(f"{m.model_id}: embedding analysis failed: {res.error}")
                log.error("%s: embedding analysis failed: %s", m.model_id, res.error)
                continue
            log_result(m.model_id, res)
            try:
                store.write_embedding(store_tables(m.model_id, m.revision, self.summary.run_id, settings.seed, res))
            except Exception as exc:  # noqa: BLE001
                if is_interrupt(exc):
                    raise KeyboardInterrupt from None
                self.summary.fail(f"{m.model_id}: embedding analysis not stored: {describe_failure(exc)}")
                continue
            self.embedded.add(m.key)

    def _outputs(self) -> None:
        """The seed CSV and each model's embedding files for this run's models, the report of the database; a
        failure is recorded, never fatal."""
        from tpa_dist.db.export import write_seed_csv
        from tpa_dist.report.drawing import write_figures

        s, out = self.summary, self.job.output_dir
        if not s.models:
            return
        written: list[str] = []
        csv_done = []

        def seed_csv() -> None:  # once: while the report's figures are drawn, or here without a report
            if csv_done:
                return
            csv_done.append(True)
            try:
                written.insert(0, str(write_seed_csv(self.job.db, s.models, out)))
            except Exception as exc:  # noqa: BLE001
                s.fail(f"CSV not written: {describe_failure(exc)}")

        self._model_files()
        if not self.job.report:  # --no-report: the seed's per-model figures all the same
            seed_csv()
            for message in write_figures(self.figures):
                if message:
                    s.fail(message)
            s.outputs = "outputs: " + ", ".join(written) if written else None
            return
        from tpa_dist.report.render import write_report  # matplotlib with it (0.6 s): only when there is a report

        try:
            # the report describes the database: every model stored (latest revision), this run's new ones last in
            # the job's order, so that a second submit adds to the report instead of replacing it
            run = (s.run_id, [m for m, _ in s.models])
            stage = partial(self.faults.pause, db=self.job.db)
            rendered = write_report(
                self.job.db, out, None, figures=self.figures, on_stage=stage, run=run, meanwhile=seed_csv
            )
            seed_csv()
            written += [f"{out}/report.html", f"{out}/report.md"]
            for r in rendered:
                if r.error:
                    s.fail(f"report section {r.error}")
        except Exception as exc:  # noqa: BLE001
            seed_csv()
            s.fail(f"report not written: {describe_failure(exc)}")
            for message in write_figures(self.figures):  # the seed's figures all the same
                if message:
                    s.fail(message)
        if written:
            s.outputs = "outputs: " + ", ".join(written)

    def _model_files(self) -> None:
        """Each model's embedding files, from the stored rows: for the embeddings clustered now, and for those
        clustered before whose files are missing (a full disk, a new --output-dir)."""
        from tpa_dist.report.embedding_files import (
            anova_figure,
            model_files,
            projection_figure,
            stored_results,
            write_files,
        )

        out = Path(self.job.output_dir)
        for m in self.models:
            if not m.embeddings or not (
                m.key in self.embedded or not all(p.exists() for p in model_files(out, m.model_id))
            ):
                continue
            try:
                results = stored_results(self.job.db, m.model_id, m.revision)
                if results:
                    write_files(out, m.model_id, results)
                    self.figures.append(anova_figure(out, m.model_id, results))
                    self.figures.append(projection_figure(out, m.model_id, results))
            except Exception as exc:  # noqa: BLE001 - one model's files never cost the others
                self.summary.fail(f"{m.model_id}: embedding files not written: {describe_failure(exc)}")

    def _execute(self, store: Store, tasks: list[MatrixTask]) -> None:
        progress = Progress(len(tasks), sum(t.nbytes for t in tasks), enabled=self.job.progress)
        progress.note = self._planning_words()
        self.progress = progress
        sink = ResultSink(
            store,
            self.job.db,
            self.summary,
            self.settings_id,
            progress,
            self.downloads.explains,
            self.downloads.stored,
            self.downloads.waiting,
        )
        self.by_device = sink.by_device
        self.sink = sink
        ahead = [self.local]  # the local pool's driver idles while its workers run: import what comes next

        def idle() -> None:
            sink.maybe_flush()
            if ahead[0]:
                ahead[0] = False
                self._import_ahead()

        try:
            engine = self._engine()
            engine.on_results, engine.on_idle = sink.add, idle
            engine.run(tasks, self._feed if self.streaming else None)
            sink.flush()
        except KeyboardInterrupt:
            sink.flush()  # finished results are whole rows: keep them, then stop
            raise
        finally:
            progress.close()

    def _import_ahead(self) -> None:
        """While the local workers analyze, import what the first write and the outputs will need (matplotlib too,
        unless a drawing server has it): the driver idles then, and a small model's run is a few seconds. (The
        embedding step's modules are its worker's to import.)"""
        import numpy.ma  # noqa: F401 - pyarrow's first conversion of a numpy array looks it up: 0.03 s of the flush

        if not self.job.report:
            return
        from tpa_dist.report import drawserver

        if drawserver.running() is None:  # (with a drawing server, matplotlib is imported there, not here)
            from tpa_dist.report import plots  # noqa: F401
        from tpa_dist.report import render  # noqa: F401

    def _event(self, message: str) -> None:
        """Something the run worked around (a node lost): one console line, kept in the run's summary."""
        log.warning("%s", message)
        self.summary.warnings.append(message)


def wanted_workers(workers: WorkerSettings, tasks: list[MatrixTask], expected: int | None = None) -> tuple[int, int]:
    """(CPU, GPU) workers a run on a cluster asks Ray's autoscaler for: the settings', else one CPU worker per four
    tasks (`expected` of them: a census still being planned has more to come; at most 256) and one GPU worker when
    there are matrices and GPUs are not excluded."""
    n = len(tasks) if expected is None else expected
    cpus = workers.request_cpus if workers.request_cpus is not None else min(256, max(1, -(-n // 4)))
    if workers.request_gpus is not None:
        return cpus, workers.request_gpus
    matrices = any(t.kind in ("matrix", "delta") for t in tasks)
    return cpus, int(matrices and not workers.cpu_only)


def submit(job: Job) -> RunSummary:
    """Analyze every model of `job` into its database; see RunSummary.ok for the outcome."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()  # huggingface_hub's per-file bars would fight ours; shards are logged instead
    try:
        with recorded():  # Ctrl-C/SIGTERM stop the run even where a library swallows the KeyboardInterrupt
            return Driver(job).run()
    finally:
        if not was_disabled:
            enable_progress_bars()
