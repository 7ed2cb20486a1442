"""Run the embedding analysis of one model: each embedding matrix is read, filtered and swept in one Ray task
(on the driver's node, which holds the file; a GPU share when the cluster has GPUs), then its rows go to the
store (the per-model files are made from those: embedding_files.py)."""

from __future__ import annotations

import logging
import os

import numpy as np

from tpa_dist.checkpoint.catalog import ModelCatalog, TensorInfo
from tpa_dist.checkpoint.vocab import Vocab, load_vocab
from tpa_dist.compute.embedding import find_embeddings, sweep_ks
from tpa_dist.compute.embedding_analysis import EmbeddingResult, analyze_embedding
from tpa_dist.faults import NO_FAULTS, Faults
from tpa_dist.settings import EmbeddingSettings, WorkerSettings

log = logging.getLogger("tpa_dist")


def _device(gpu: bool, faults: Faults = NO_FAULTS) -> str:
    if not gpu:
        return "cpu"
    from tpa_dist.run.actors import gpu_compute_device

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

    from tpa_dist.run.workerpool import worker_env

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
            res.param_name,
            res.chosen_k,
            res.silhouette_k,
            res.elbow_k,
            f" — degenerate: {res.degenerate}" if res.degenerate else "",
            res.seconds,
        )
    return out
