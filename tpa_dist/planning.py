"""Plan one model of a submit, once: resolve its source, read its catalog (headers only), make its tasks, find
its embeddings, and note what earlier runs already stored. Nothing here touches tensor data."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .catalog import ModelCatalog, TensorInfo, find_embeddings, open_model
from .jobs import parse_model_entry
from .sources import ModelSource, resolve
from .store import Store
from .tasks import MatrixTask, plan_tasks


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
