"""Plan a submit, once, before anything runs: each model's source resolved, its catalog read (headers only), its tasks
made, its embeddings found, what earlier runs stored noted; then the bases of --base and the ΔW tasks of each
(tuned, base) pair. A model that cannot be planned is recorded as failed, never fatal. Nothing here touches tensor
data."""

from __future__ import annotations

import logging
import os
from collections import Counter
from concurrent.futures import Future, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from tpa_dist.checkpoint.catalog import ModelCatalog, TensorInfo, find_embeddings, open_model
from tpa_dist.checkpoint.reader import Region
from tpa_dist.compute.analysis import delta_base_row
from tpa_dist.compute.rows import DeltaRow, ModelRecord
from tpa_dist.compute.tasks import DeltaTask, LoraFactors, MatrixTask, plan_tasks, task_paths
from tpa_dist.db.store import Store, is_interrupt
from tpa_dist.errors import TpaError, describe, failure_reason
from tpa_dist.jobs import Job, parse_model_entry
from tpa_dist.settings import DeltaSettings, RmtSettings
from tpa_dist.sources.adapter import Adapter, is_adapter, open_adapter
from tpa_dist.sources.budget import census_cache
from tpa_dist.sources.resolve import ModelSource, resolve

log = logging.getLogger("tpa_dist")


@dataclass
class PlannedModel:
    """Everything the driver needs about one model, computed once."""

    spec: str
    source: ModelSource
    revision: str
    catalog: ModelCatalog
    tensors: list[TensorInfo]
    tasks: list[MatrixTask]  # every task of the model
    todo: list[MatrixTask]  # those not stored yet for these settings
    embeddings: list[TensorInfo] = field(default_factory=list)  # token embedding (+ untied head)
    embeddings_done: bool = True  # already clustered (and not --force)

    @property
    def model_id(self) -> str:
        return self.source.model_id

    @property
    def key(self) -> tuple[str, str]:
        return (self.source.model_id, self.revision)

    def record(self, run_id: str) -> ModelRecord:
        """The model's row in the `models` table."""
        c = self.catalog
        return ModelRecord(
            model_id=self.model_id,
            revision=self.revision,
            source_path=str(self.source.path),
            architecture=c.architecture,
            config=c.config,
            config_error=c.config_error,
            num_shards=len(c.shards),
            num_tensors=len(self.tensors),
            num_params=sum(t.numel for t in self.tensors if t.is_parameter),
            run_id=run_id,
        )


def file_sizes(task: MatrixTask, announced: dict[str, int]) -> tuple[tuple[str, int], ...]:
    """The sizes of the files a Hub task reads (a node keeping a disk budget reserves them before fetching): as the
    Hub announced them for shards still to come, from the disk for those here."""
    out = []
    for path in sorted(task_paths(task)):
        size = announced.get(path)
        if size is None and os.path.isfile(path):
            size = os.path.getsize(path)
        if size:
            out.append((path, int(size)))
    return tuple(out)


def plan_model(
    spec: str,
    store: Store,
    settings_id: str,
    *,
    seed: int,
    force: bool,
    embedding: bool,
    rmt: RmtSettings | None = None,
    census: Path | None = None,
    resolved: Future[ModelSource] | None = None,
) -> PlannedModel:
    """Resolve, catalog and plan `spec` (``NAME=SPEC`` names the model); raise on any problem (the caller
    records it as this model's failure). With `rmt`, a matrix counts as done only with its rmt_analysis row.
    `resolved`: the spec already being resolved ahead (Resolver), its outcome taken from there."""
    name, target = parse_model_entry(spec)
    source = resolved.result() if resolved is not None else resolve(target, seed=seed, stream=True, name=name,
                                                                     census=census)  # fmt: skip
    catalog = open_model(source.path, remote=source.remote)
    tensors = catalog.tensors()
    revision = source.revision or f"local-{catalog.fingerprint()}"
    tasks = plan_tasks(source.model_id, revision, tensors, catalog.config)
    if source.kind == "hub" and source.revision:  # nodes that cannot see the driver's cache fetch shards
        announced = {s.local_path: s.size for s in source.pending}
        tasks = [replace(t, hub=(source.model_id, source.revision), sizes=file_sizes(t, announced)) for t in tasks]
    elif source.kind == "synth":  # ... and write a synthetic preset themselves (it is deterministic in its seed)
        tasks = [replace(t, synth=(target.split(":", 1)[1], seed)) for t in tasks]
    done = set() if force else store.done_keys(source.model_id, revision, settings_id)
    if rmt is not None:
        tasks = [replace(t, rmt=rmt) if t.kind == "matrix" else t for t in tasks]
        with_rmt = store.done_rmt(source.model_id, revision, settings_id, rmt.rmt_id()) if done else set()
        done = {
            t.matrix_key for t in tasks if t.matrix_key in done and (t.kind != "matrix" or t.matrix_key in with_rmt)
        }
    planned = PlannedModel(
        spec, source, revision, catalog, tensors, tasks, [t for t in tasks if t.matrix_key not in done]
    )
    if embedding:
        planned.embeddings = find_embeddings(catalog)
        wanted = {t.param_name for t in planned.embeddings}
        planned.embeddings_done = not wanted or (
            not force and wanted <= store.done_embeddings(source.model_id, revision)
        )
    return planned


def plan_deltas(
    tuned: PlannedModel,
    base: PlannedModel,
    done: set[str],
    settings: DeltaSettings,
    base_norms: dict[str, tuple[float, float]] | None = None,
) -> tuple[list[DeltaTask], list[DeltaRow]]:
    """ΔW tasks for every matrix (expert slice) present in both models with the same shape and not stored yet,
    and a 'skipped' row, with the reason, for every matrix in one model only or whose shapes differ. `base_norms`:
    the base's stored (‖W‖_F, ‖W‖₂) by matrix key, handed to the tasks (store.matrix_norms)."""
    tuned_by_key = {t.matrix_key: t for t in tuned.tasks if t.kind == "matrix"}
    base_by_key = {t.matrix_key: t for t in base.tasks if t.kind == "matrix"}
    tasks: list[DeltaTask] = []
    skipped: list[DeltaRow] = []

    def skip(t: MatrixTask, b: MatrixTask, reason: str) -> None:
        if t.matrix_key not in done:
            row = delta_base_row(DeltaTask(t, b, settings))
            row.update(status="skipped", error=f"tensor {t.matrix_key}: {reason}")
            skipped.append(row)

    for key, t in tuned_by_key.items():
        b = base_by_key.get(key)
        if b is None:
            skip(t, replace(t, model_id=base.model_id, revision=base.revision, dtype=None), "only in the tuned model")
        elif t.matrix_shape != b.matrix_shape:
            skip(t, b, f"shapes differ: tuned {t.matrix_shape}, base {b.matrix_shape}")
        elif key not in done:
            tasks.append(DeltaTask(t, b, settings, base_norms=(base_norms or {}).get(key)))
    for key, b in base_by_key.items():
        if key not in tuned_by_key:
            own = replace(b, model_id=tuned.model_id, revision=tuned.revision, dtype=None)
            skip(own, b, "only in the base model")
    return tasks, skipped


@dataclass
class Plan:
    """What a submit will do: its models (each once), the ΔW tasks of each (tuned, base) pair, and what planning
    found on the way — counts, warnings, failures — for the run's summary."""

    models: list[PlannedModel] = field(default_factory=list)
    delta_tasks: list[DeltaTask] = field(default_factory=list)
    total: int = 0  # tasks of the run, those stored by earlier runs included
    reused: int = 0  # of those, stored by earlier runs
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    adapters: list[tuple[str, str]] = field(default_factory=list)  # (model_id, revision) of LoRA adapters planned
    reasons: Counter[str] = field(default_factory=Counter)  # models that failed planning, by reason (errors.py)

    @property
    def tasks(self) -> list[MatrixTask | DeltaTask]:
        """What is left to compute: every model's tasks not stored yet, then the ΔW pairs."""
        return [t for m in self.models for t in m.todo] + self.delta_tasks

    def _add(self, planned: PlannedModel) -> None:
        self.models.append(planned)
        self.total += len(planned.tasks)
        self.reused += len(planned.tasks) - len(planned.todo)
        if planned.catalog.config_error:
            log.warning("%s: %s", planned.spec, planned.catalog.config_error)
        self.warnings += [f"{planned.model_id}: {w}" for w in planned.catalog.warnings]

    def _remove(self, planned: PlannedModel) -> None:
        """Take back a model whose row could not be recorded (before any of its tasks was handed out)."""
        del self.models[next(i for i, m in enumerate(self.models) if m is planned)]
        self.total -= len(planned.tasks)
        self.reused -= len(planned.tasks) - len(planned.todo)


RECORD_BATCH = 16  # models planned before their rows are written, in one transaction (each statement costs ~4 ms)
STREAM_AFTER = 16  # a job of more entries than this (a census) is planned while it runs: the first model, then the rest
RESOLVE_AHEAD = 8  # Hub models resolved at once ahead of planning (each is a few requests: listing, headers)


class Resolver:
    """Resolves the Hub entries of a job a few at a time ahead of the one being planned: a census of Hub models
    spends its planning on round trips (the dry run, the small files, each shard's header by Range), which threads
    overlap. Local folders and synth: presets are resolved in order by planning itself."""

    def __init__(self, job: Job, specs: list[str]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.job = job
        self.census = census_cache(job.db) if job.cohort.max_cache_gib is not None else None
        self.hub = [s for s in specs if _hub_entry(s)]
        self._hub = set(self.hub)
        self.futures: dict[str, Future[ModelSource]] = {}
        many = len(self.hub) > 1 and RESOLVE_AHEAD > 1
        self.pool = ThreadPoolExecutor(RESOLVE_AHEAD, thread_name_prefix="resolve") if many else None
        self.next = 0

    def take(self, spec: str) -> Future[ModelSource] | None:
        """The resolution of `spec` under way (None: planning resolves it itself), with the next ones started."""
        if self.pool is None or spec not in self._hub:
            return None
        self._ahead()
        return self.futures.pop(spec, None)

    def ready(self, spec: str, timeout: float) -> bool:
        """Whether planning `spec` now would not wait on the network (its resolution has ended, or planning does
        it itself), waiting at most `timeout` seconds for that."""
        if self.pool is None or spec not in self._hub:
            return True
        self._ahead()
        future = self.futures.get(spec)
        if future is not None:
            wait([future], timeout)
        return future is None or future.done()

    def _ahead(self) -> None:
        while self.next < len(self.hub) and len(self.futures) < 2 * RESOLVE_AHEAD:
            ahead = self.hub[self.next]
            self.next += 1
            name, target = parse_model_entry(ahead)
            self.futures[ahead] = self.pool.submit(
                resolve, target, seed=self.job.analysis.seed, stream=True, name=name, census=self.census
            )

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


def _hub_entry(spec: str) -> bool:
    """Whether a --models entry names a Hub repo (org/name[@rev], not a folder that exists)."""
    from tpa_dist.sources.resolve import split_revision

    _, target = parse_model_entry(spec)
    repo, _ = split_revision(target)
    return not target.startswith(("synth:", "/", ".", "~")) and repo.count("/") == 1 and not Path(target).exists()


def plan_job(job: Job, store: Store, run_id: str) -> Plan:
    """Plan every model of `job` at once (Planner, step by step to the end)."""
    planner = Planner(job, store, run_id)
    try:
        while planner.remaining:
            planner.step()
        planner.finish()
    finally:
        planner.close()
    return planner.plan


class Planner:
    """Plans a job's entries one at a time, in the job's order (an entry listed again is planned once: planning is
    linear in the models), each model's record and tensor inventory written to `store`; then (`finish`) the
    adapters, the bases and the ΔW pairs. The driver plans a census's first model, starts the analysis, and plans
    the rest between the engine's events (streaming planning); a short job is planned whole first."""

    def __init__(self, job: Job, store: Store, run_id: str) -> None:
        self.job, self.store, self.run_id = job, store, run_id
        self.plan = Plan()
        self.settings_id = job.analysis.settings_id()
        self.listed = Counter(job.models)
        self.entries = list(self.listed)
        self.next = 0  # the next entry to plan
        self.finished = False  # adapters and pairs planned too: nothing more will come
        self.by_key: dict[tuple[str, str], PlannedModel] = {}
        self.by_entry: dict[str, PlannedModel] = {}
        self.adapters: dict[str, Adapter | bool] = {}
        self.unrecorded: list[PlannedModel] = []  # planned, their rows not written yet (flush: RECORD_BATCH at once)
        self.resolver = Resolver(job, self.entries)
        self.hub = bool(self.resolver.hub)  # some entry names a Hub repo (its shards may have to be fetched)

    @property
    def remaining(self) -> int:
        """Entries not planned yet (adapters and pairs come after them: finish())."""
        return len(self.entries) - self.next

    @property
    def pending(self) -> int:
        """Tasks planned so far that are left to compute."""
        return self.plan.total - self.plan.reused

    def ready(self, timeout: float) -> bool:
        """Whether the next entry can be planned without waiting on the network (at most `timeout` s for it)."""
        return self.resolver.ready(self.entries[self.next], timeout)

    def step(self) -> None:
        """Plan the next entry (a failure is recorded as that model's, never raised; an interrupt is)."""
        spec = self.entries[self.next]
        self.next += 1
        plan = self.plan
        if self.listed[spec] > 1:
            plan.warnings.append(f"model {spec}: listed {self.listed[spec]} times; analyzed once")
        adapter = _adapter_of(spec, plan)
        if adapter is not None:
            self.adapters[spec] = adapter
            return
        planned = self._one(spec, self.resolver.take(spec))
        if planned is not None:
            self.by_entry[spec] = planned
        if len(self.unrecorded) >= RECORD_BATCH:
            self.flush()
        if not self.remaining:
            self.resolver.close()

    def flush(self) -> None:
        """Record the models planned since the last flush (their rows and tensor inventories) in one transaction —
        before any of their tasks runs. A batch the database refuses is recorded model by model; a model it still
        refuses is that model's failure, taken out of the plan."""
        batch, self.unrecorded = self.unrecorded, []
        if not batch:
            return
        try:
            self.store.record_models([(m.record(self.run_id), m.tensors) for m in batch])
            return
        except Exception as exc:  # noqa: BLE001 - retried one model at a time
            if is_interrupt(exc):
                raise KeyboardInterrupt from None
        for m in batch:
            try:
                self.store.record_model(m.record(self.run_id), m.tensors)
            except Exception as exc:  # noqa: BLE001 - this model's failure
                if is_interrupt(exc):
                    raise KeyboardInterrupt from None
                self.plan._remove(m)
                self.by_key.pop(m.key, None)
                for spec in [spec for spec, p in self.by_entry.items() if p is m]:
                    del self.by_entry[spec]
                _failed(self.store, self.plan, m.spec, exc, self.run_id)

    def finish(self) -> None:
        """After every entry: each LoRA adapter against its base, then the ΔW pairs of --base."""
        if self.finished:
            return
        self.flush()
        self.finished = True
        job, plan = self.job, self.plan
        for spec, adapter in self.adapters.items():
            if adapter is False or adapter is True:
                continue
            base_spec = job.base_of(spec) or adapter.base
            if base_spec is None:
                plan.failures.append(
                    f"model {spec}: a LoRA adapter whose config names no base (base_model_name_or_path): give --base"
                )
                continue
            base = self._base(base_spec)
            if base is None:
                plan.failures.append(f"model {spec}: its base {base_spec} could not be planned; no ΔW analysis")
                continue
            _plan_adapter(job, self.store, spec, adapter, base, plan, self.run_id, self.settings_id)
        for spec in self.listed:
            base_spec = job.base_of(spec)
            if spec in self.adapters or base_spec is None or spec not in self.by_entry:
                continue
            base = self._base(base_spec)
            if base is None:
                plan.failures.append(f"model {spec}: its base {base_spec} could not be planned; no ΔW analysis")
            elif base.key != self.by_entry[spec].key:
                _plan_pair(job, self.store, self.by_entry[spec], base, plan, self.run_id, self.settings_id)

    def close(self) -> None:
        self.resolver.close()

    def _base(self, spec: str) -> PlannedModel | None:
        base = self.by_entry.get(spec) or self._one(spec)
        if base is not None:
            self.by_entry.setdefault(spec, base)
        self.flush()  # the base's row before its pairs are planned
        if base is not None and self.by_key.get(base.key) is not base:
            return None  # the database refused its row
        return base

    def _one(self, spec: str, resolved: Future[ModelSource] | None = None) -> PlannedModel | None:
        return _plan_one(
            self.job, self.store, spec, self.by_key, self.plan, self.run_id, self.settings_id, resolved, self.unrecorded
        )


def _plan_one(
    job: Job,
    store: Store,
    spec: str,
    by_key: dict,
    plan: Plan,
    run_id: str,
    settings_id: str,
    resolved: Future[ModelSource] | None = None,
    unrecorded: list[PlannedModel] | None = None,
) -> PlannedModel | None:
    """Plan one entry into `plan` (a failure is recorded as that model's); its row is written now, or, with
    `unrecorded`, left there for the planner's next flush."""
    try:
        a = job.analysis
        planned = plan_model(
            spec,
            store,
            settings_id,
            seed=a.seed,
            force=a.force,
            embedding=job.embedding.enabled,
            rmt=job.rmt if job.rmt.enabled else None,
            census=census_cache(job.db) if job.cohort.max_cache_gib is not None else None,
            resolved=resolved,
        )
        if planned.key in by_key:
            first = by_key[planned.key]
            plan.warnings.append(f"model {spec}: same model and revision as {first.spec}; analyzed once")
            return first
        if unrecorded is None:
            store.record_model(planned.record(run_id), planned.tensors)
        else:
            unrecorded.append(planned)
    except Exception as exc:  # noqa: BLE001 - any problem of one model is that model's failure
        if is_interrupt(exc):
            raise KeyboardInterrupt from None
        _failed(store, plan, spec, exc, run_id)
        return None
    by_key[planned.key] = planned
    plan._add(planned)
    return planned


def _failed(store: Store, plan: Plan, spec: str, exc: Exception, run_id: str) -> None:
    """`spec` could not be planned (or recorded): its failure in the plan, on the console and in the database."""
    message = describe(exc)
    plan.failures.append(f"model {spec}: {message}")
    plan.reasons[failure_reason(exc)] += 1
    log.error("model %s skipped: %s", spec, message)
    try:
        store.upsert_model(ModelRecord.failed(spec, message, run_id))
    except TpaError as store_exc:  # a database that cannot take even this: said once, the run goes on
        log.error("model %s: could not record the failure: %s", spec, store_exc)


def _plan_pair(
    job: Job, store: Store, tuned: PlannedModel, base: PlannedModel, plan: Plan, run_id: str, settings_id: str
) -> None:
    """ΔW tasks of one (tuned, base) pair; the pairs that cannot be compared are stored now, with the reason."""
    force = job.analysis.force
    try:
        done = (
            set()
            if force
            else store.done_deltas(tuned.model_id, tuned.revision, base.model_id, base.revision, settings_id)
        )
        norms = {} if force else store.matrix_norms(base.model_id, base.revision, settings_id)  # base analyzed before
        tasks, skipped = plan_deltas(tuned, base, done, job.delta, norms)
        store.write_deltas(skipped, [], {"settings_id": settings_id, "run_id": run_id})
    except Exception as exc:  # noqa: BLE001
        plan.failures.append(f"model {tuned.spec}: ΔW against {base.spec} not planned: {describe(exc)}")
        return
    _add_deltas(
        plan,
        tasks,
        done,
        skipped,
        f"{tuned.model_id} vs {base.model_id}: {len(skipped)} matrix(es) not "
        "compared (in one model only or of different shapes",
    )


def _adapter_of(spec: str, plan: Plan) -> Adapter | bool | None:
    """The LoRA adapter a --models entry names (a local folder with adapter_config.json), None for anything else,
    False for an adapter that cannot be read (recorded as that model's failure)."""
    name, target = parse_model_entry(spec)
    path = Path(target).expanduser()
    if not is_adapter(path):
        return None
    try:
        return replace(open_adapter(path), name=name or path.resolve().name)
    except TpaError as exc:
        plan.failures.append(f"model {spec}: {exc}")
        return False


def _plan_adapter(
    job: Job, store: Store, spec: str, adapter: Adapter, base: PlannedModel, plan: Plan, run_id: str, settings_id: str
) -> None:
    """ΔW tasks of a LoRA adapter against its base: one per adapted matrix, from the factors (and the usual pair for
    a weight saved whole beside them); modules the base lacks, or of another shape, are skipped rows."""
    try:
        revision = f"local-{adapter.catalog.fingerprint()}"
        tensors = adapter.catalog.tensors()
        store.record_model(
            ModelRecord(
                model_id=adapter.name,
                revision=revision,
                source_path=str(adapter.path),
                architecture=f"PEFT LoRA adapter (r={adapter.rank}) of {base.model_id}",
                config=adapter.config,
                num_shards=1,
                num_tensors=len(tensors),
                num_params=sum(t.numel for t in tensors if t.is_parameter),
                run_id=run_id,
            ),
            tensors,
        )
        force = job.analysis.force
        done = set() if force else store.done_deltas(adapter.name, revision, base.model_id, base.revision, settings_id)
        norms = {} if force else store.matrix_norms(base.model_id, base.revision, settings_id)
        by_name = {t.matrix_key: t for t in base.tasks if t.kind == "matrix"}
        tasks: list[DeltaTask] = []
        skipped: list[DeltaRow] = []
        for module in adapter.modules:
            b = _base_matrix(module.param_name, by_name)
            f = module.factors
            if b is None:
                skipped.append(_skipped_adapter_row(adapter, revision, module.param_name, base, f, job.delta))
                continue
            tuned = replace(
                b, model_id=adapter.name, revision=revision, dtype=f"lora-r{f.a.rows}", hub=None, synth=None
            )
            shape = (f.a.cols, f.b.rows) if f.transposed else (f.b.rows, f.a.cols)
            if shape != (b.region.rows, b.region.cols):
                row = delta_base_row(DeltaTask(tuned, b, job.delta))
                row.update(
                    status="skipped",
                    error=f"tensor {b.matrix_key}: the adapter's update is {shape}, the "
                    f"base matrix {(b.region.rows, b.region.cols)}",
                )
                skipped.append(row)
            elif b.matrix_key not in done:
                tasks.append(DeltaTask(tuned, b, job.delta, base_norms=norms.get(b.matrix_key), lora=f))
        own = {t.param_name: t for t in adapter.full}
        for task in plan_tasks(adapter.name, revision, list(own.values()), {}):
            b = by_name.get(task.matrix_key)
            if (
                task.kind == "matrix"
                and b is not None
                and task.matrix_shape == b.matrix_shape
                and task.matrix_key not in done
            ):
                tasks.append(DeltaTask(task, b, job.delta, base_norms=norms.get(task.matrix_key)))
        store.write_deltas(skipped, [], {"settings_id": settings_id, "run_id": run_id})
    except Exception as exc:  # noqa: BLE001 - one adapter's problem is that adapter's failure
        if is_interrupt(exc):
            raise KeyboardInterrupt from None
        plan.failures.append(f"model {spec}: the LoRA adapter could not be planned: {describe(exc)}")
        return
    plan.adapters.append((adapter.name, revision))
    _add_deltas(
        plan,
        tasks,
        done,
        skipped,
        f"{adapter.name}: {len(skipped)} adapted module(s) not compared (not in {base.model_id}, or of another shape",
    )


def _base_matrix(name: str, by_name: dict[str, MatrixTask]) -> MatrixTask | None:
    """The base matrix an adapted module changes: by its name, else the one name that differs only by a leading
    wrapper (PEFT names GPT-2's modules `transformer.h.0…` where the checkpoint saved `h.0…`, and the reverse)."""
    if name in by_name:
        return by_name[name]
    near = [t for key, t in by_name.items() if key.endswith("." + name) or name.endswith("." + key)]
    return near[0] if len(near) == 1 else None


def _skipped_adapter_row(
    adapter: Adapter, revision: str, param_name: str, base: PlannedModel, f: LoraFactors, delta: DeltaSettings
) -> DeltaRow:
    """The 'skipped' row of an adapted module the base does not have."""
    region = Region(param_name, f.a.path, 0, f.a.dtype, f.b.rows, f.a.cols)
    tuned = MatrixTask(
        adapter.name,
        revision,
        param_name,
        param_name,
        "matrix",
        region,
        (f.b.rows, f.a.cols),
        "adapter_model.safetensors",
        f"lora-r{f.a.rows}",
        None,
        "other",
        None,
    )
    row = delta_base_row(DeltaTask(tuned, replace(tuned, model_id=base.model_id, revision=base.revision), delta))
    row.update(status="skipped", error=f"tensor {param_name}: adapted by the LoRA adapter but not in {base.model_id}")
    return row


def _add_deltas(plan: Plan, tasks: list, done: set, skipped: list, not_compared: str) -> None:
    """ΔW tasks of one pair into the plan, and a warning (with the query that lists them) when some were skipped."""
    plan.delta_tasks += tasks
    plan.total += len(tasks)
    plan.reused += len(done)
    if skipped:
        plan.warnings.append(f"{not_compared}; SELECT matrix_key, error FROM delta_analysis WHERE status = 'skipped')")
