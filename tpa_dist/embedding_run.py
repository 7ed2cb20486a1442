"""Run the embedding analysis of one model: each embedding matrix is read, filtered and swept in one Ray task
(on the driver's node, which holds the file; a GPU share when the cluster has GPUs), then its rows go to the
store (the per-model files are made from those: embedding_files.py)."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from .catalog import ModelCatalog, TensorInfo
from .embedding import (
    degeneracy,
    elbow,
    excluded_rows,
    f_key,
    find_embeddings,
    load_embedding,
    representatives,
    silhouette_best,
    sweep_ks,
)
from .faults import NO_FAULTS, Faults
from .settings import EmbeddingSettings, WorkerSettings
from .vocab import Vocab, load_vocab

log = logging.getLogger("tpa_dist")


@dataclass
class EmbeddingResult:
    tensor: str
    rows: int  # rows clustered
    cols: int
    sweep: list[dict]  # k, f_stat, p_value, inertia, silhouette, iterations, method, seconds
    chosen_k: int
    rule: str
    elbow_k: int
    clusters: list[dict]  # cluster, size, centroid_norm, ids (token ids), representatives
    labels: np.ndarray  # cluster of each clustered row
    tokens: list[str | None]  # decoded token of every row of the matrix
    seconds: float
    row_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # token id of each clustered row
    excluded: dict[int, str] = field(default_factory=dict)  # token id -> why it is not clustered
    silhouette_k: int | None = None
    degenerate: str | None = None
    include_special: bool = False

    @property
    def vocab_rows(self) -> int:
        return len(self.tokens)

    @property
    def chosen(self) -> dict:
        return next(r for r in self.sweep if r["k"] == self.chosen_k)


def _device(gpu: bool, faults: Faults = NO_FAULTS) -> str:
    if not gpu:
        return "cpu"
    from .actors import gpu_compute_device

    return gpu_compute_device(faults)[0] or "cpu"


def _sweep_task(x: np.ndarray, settings: EmbeddingSettings, gpu: bool, threads: int, faults: Faults) -> list[dict]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        return sweep_ks(x, settings, _device(gpu, faults))


def _analyze_task(
    info: TensorInfo, vocab: Vocab | None, settings: EmbeddingSettings, gpu: bool, threads: int, faults: Faults
) -> EmbeddingResult:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        return analyze_embedding(info, vocab, settings, _device(gpu, faults))


def _remote_options(workers: WorkerSettings) -> tuple[dict, bool, int]:
    """Ray options of one sweep task: the driver's node (it holds the file), all its CPUs, a GPU share."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .workerpool import worker_env

    node = ray.get_runtime_context().get_node_id()
    cpus = next((int(n["Resources"].get("CPU", 1)) for n in ray.nodes() if n["NodeID"] == node and n["Alive"]), 1)
    gpu = not workers.cpu_only and ray.cluster_resources().get("GPU", 0) > 0
    opts: dict = {
        "num_cpus": max(1, cpus),
        "num_gpus": min(1.0, workers.gpus_per_worker) if gpu else 0,
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=True),
    }
    if worker_env():
        opts["runtime_env"] = {"env_vars": worker_env()}
    return opts, gpu, max(1, cpus)


def sweep(x: np.ndarray, settings: EmbeddingSettings, cpu_only: bool = False, faults: Faults = NO_FAULTS) -> list[dict]:
    """The k sweep of one matrix as a Ray task (see embedding.sweep_ks)."""
    import ray

    opts, gpu, threads = _remote_options(WorkerSettings(cpu_only=cpu_only))
    return ray.get(ray.remote(_sweep_task).options(**opts).remote(x, settings, gpu, threads, faults))


def analyze_model_embeddings(
    catalog: ModelCatalog,
    settings: EmbeddingSettings,
    cpu_only: bool = False,
    embeddings: list[TensorInfo] | None = None,
    workers: WorkerSettings | None = None,
    local: bool = False,
    faults: Faults = NO_FAULTS,
) -> list[EmbeddingResult]:
    """Cluster the token embedding (and an untied output head) of one model, each in its own Ray task (in this
    process, on all cores, with `local`)."""
    vocab = load_vocab(catalog.root)
    infos = find_embeddings(catalog) if embeddings is None else embeddings
    if local:
        out = [_analyze_task(info, vocab, settings, False, os.cpu_count() or 1, faults) for info in infos]
    else:
        import ray

        opts, gpu, threads = _remote_options(workers or WorkerSettings(cpu_only=cpu_only))
        task = ray.remote(_analyze_task).options(**opts)
        out = ray.get([task.remote(info, vocab, settings, gpu, threads, faults) for info in infos])
    for res in out:
        log.info(
            "embedding %s %s: k=%d by max F (silhouette best %s, elbow %d)%s in %.1fs",
            catalog.root.name,
            res.tensor,
            res.chosen_k,
            res.silhouette_k,
            res.elbow_k,
            f" — degenerate: {res.degenerate}" if res.degenerate else "",
            res.seconds,
        )
    return out


def analyze_embedding(
    info: TensorInfo, vocab: Vocab | None, settings: EmbeddingSettings, device: str = "cpu"
) -> EmbeddingResult:
    """Read one embedding matrix, leave out the rows that are not words (unless include_special), sweep k,
    choose k by max F, note the silhouette-best k, the elbow and any degeneracy, pick representatives."""
    t0 = time.perf_counter()
    x = load_embedding(info)
    excluded = {} if settings.include_special else excluded_rows(x, vocab)
    keep = np.array([i for i in range(x.shape[0]) if i not in excluded], dtype=np.int64)
    if len(keep) < 3:
        raise ValueError(
            f"{info.name}: only {len(keep)} rows left to cluster after leaving out "
            f"{len(excluded)} special/unused/padding/zero rows"
        )
    rows = x[keep] if excluded else x
    results = sweep_ks(rows, settings, device)
    best = max(results, key=f_key)
    clusters = representatives(rows, best["labels"], best["k"], settings.representatives)
    tokens = [vocab.get(i) if vocab is not None else None for i in range(x.shape[0])]
    for c in clusters:
        c["ids"] = [int(keep[i]) for i in c["ids"]]
        c["representatives"] = [tokens[i] if tokens[i] is not None else str(i) for i in c["ids"]]
    return EmbeddingResult(
        tensor=info.name,
        rows=len(keep),
        cols=x.shape[1],
        sweep=[_public(r) for r in results],
        chosen_k=best["k"],
        rule="max_f",
        elbow_k=elbow([r["k"] for r in results], [r["inertia"] for r in results]),
        clusters=clusters,
        labels=best["labels"],
        tokens=tokens,
        seconds=time.perf_counter() - t0,
        row_ids=keep,
        excluded=excluded,
        silhouette_k=silhouette_best(results),
        degenerate=degeneracy(best, results, len(keep)),
        include_special=settings.include_special,
    )


def _public(r: dict) -> dict:
    return {
        key: (None if isinstance(v, float) and not math.isfinite(v) else v) for key, v in r.items() if key != "labels"
    }


def store_tables(model_id: str, revision: str, run_id: str, seed: int, res: EmbeddingResult) -> dict[str, pa.Table]:
    key = {"model_id": model_id, "revision": revision, "param_name": res.tensor}
    n = res.vocab_rows
    cluster = np.full(n, -1, dtype=np.int64)
    cluster[res.row_ids] = res.labels
    excluded = [res.excluded.get(i) for i in range(n)]
    chosen = res.chosen
    return {
        "emb_sweep": pa.Table.from_pylist([{**key, **r} for r in res.sweep]),
        "emb_choice": pa.Table.from_pylist(
            [
                {
                    **key,
                    "rows": res.rows,
                    "cols": res.cols,
                    "vocab_rows": n,
                    "excluded_rows": len(res.excluded),
                    "include_special": res.include_special,
                    "chosen_k": res.chosen_k,
                    "rule": res.rule,
                    "elbow_k": res.elbow_k,
                    "silhouette": chosen["silhouette"],
                    "silhouette_k": res.silhouette_k,
                    "smallest_cluster": min(c["size"] for c in res.clusters),
                    "degenerate": res.degenerate,
                    "seed": seed,
                    "seconds": res.seconds,
                    "run_id": run_id,
                }
            ]
        ),
        "emb_clusters": pa.Table.from_pylist(
            [
                {
                    **key,
                    "cluster": c["cluster"],
                    "size": c["size"],
                    "centroid_norm": c["centroid_norm"],
                    "representative_ids": c["ids"],
                    "representatives": c["representatives"],
                }
                for c in res.clusters
            ]
        ),
        "emb_assignments": pa.table(
            {
                "model_id": [model_id] * n,
                "revision": [revision] * n,
                "param_name": [res.tensor] * n,
                "token_id": pa.array(np.arange(n, dtype=np.int32)),
                "token": res.tokens,
                "cluster": pa.array(cluster, mask=cluster < 0).cast(pa.int32()),
                "excluded": excluded,
            }
        ),
    }
