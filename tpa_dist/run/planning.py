"""Plan one model of a submit, once: resolve its source, read its catalog (headers only), make its tasks, find
its embeddings, and note what earlier runs already stored. Nothing here touches tensor data."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tpa_dist.checkpoint.catalog import ModelCatalog, TensorInfo, find_embeddings, open_model
from tpa_dist.compute.rows import DeltaRow
from tpa_dist.compute.tasks import DeltaTask, MatrixTask, plan_tasks
from tpa_dist.db.store import Store
from tpa_dist.jobs import parse_model_entry
from tpa_dist.settings import DeltaSettings
from tpa_dist.sources.resolve import ModelSource, resolve


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

    def record(self, run_id: str) -> dict[str, object]:
        """The model's row in the `models` table."""
        c = self.catalog
        return dict(
            model_id=self.model_id,
            revision=self.revision,
            source_path=str(self.source.path),
            architecture=c.architecture,
            config=c.config,
            config_error=c.config_error,
            num_shards=len(c.shards),
            num_tensors=len(self.tensors),
            num_params=sum(t.numel for t in self.tensors),
            status="ok",
            error=None,
            run_id=run_id,
        )


def plan_model(spec: str, store: Store, settings_id: str, *, seed: int, force: bool, embedding: bool) -> PlannedModel:
    """Resolve, catalog and plan `spec` (``NAME=SPEC`` names the model); raise on any problem (the caller
    records it as this model's failure)."""
    name, target = parse_model_entry(spec)
    source = resolve(target, seed=seed, stream=True, name=name)
    catalog = open_model(source.path, remote=source.remote)
    tensors = catalog.tensors()
    revision = source.revision or f"local-{catalog.fingerprint()}"
    tasks = plan_tasks(source.model_id, revision, tensors, catalog.config)
    if source.kind == "hub" and source.revision:  # nodes that cannot see the driver's cache fetch shards
        tasks = [replace(t, hub=(source.model_id, source.revision)) for t in tasks]
    elif source.kind == "synth":  # ... and write a synthetic preset themselves (it is deterministic in its seed)
        tasks = [replace(t, synth=(target.split(":", 1)[1], seed)) for t in tasks]
    done = set() if force else store.done_keys(source.model_id, revision, settings_id)
    planned = PlannedModel(
        spec, source, revision, catalog, tensors, tasks, [t for t in tasks if t.matrix_key not in done]
    )
    if embedding:
        planned.embeddings = find_embeddings(catalog)
        wanted = {t.name for t in planned.embeddings}
        planned.embeddings_done = not wanted or (
            not force and wanted <= store.done_embeddings(source.model_id, revision)
        )
    return planned


def failed_model_record(spec: str, error: str, run_id: str) -> dict[str, object]:
    """The `models` row of a model that could not be planned."""
    return dict(
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
        error=error,
        run_id=run_id,
    )


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
    from tpa_dist.compute.analysis import delta_base_row

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
