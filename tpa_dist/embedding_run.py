"""Run the embedding analysis of one model: each embedding matrix is read, filtered and swept in one Ray task
(on the driver's node, which holds the file; a GPU share when the cluster has GPUs), then its rows go to the
store and the seed's files are written (anova_curve.png, with F, silhouette and inertia against k, is drawn with
the report's figures)."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from .catalog import ModelCatalog, TensorInfo
from .drawing import Figure
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


def stored_results(db: str | Path, model_id: str, revision: str) -> list[EmbeddingResult]:
    """The embedding analyses of one (model, revision) as the database holds them: what the per-model files and
    figure are made from, so that they always match the stored rows (and are rewritten from them when missing)."""
    from .sqlfiles import sql_text
    from .store import connect_db

    con = connect_db(db, read_only=True)
    try:
        key = {"model_id": model_id, "revision": revision}
        cur = con.execute(sql_text("outputs/embedding_choice.sql"), key)
        names = [d[0] for d in cur.description]
        out = []
        for choice in [dict(zip(names, r)) for r in cur.fetchall()]:
            one = {**key, "param_name": choice["param_name"]}

            def rows(name: str, params: dict = one) -> list[dict]:
                c = con.execute(sql_text(f"outputs/{name}.sql"), params)
                cols = [d[0] for d in c.description]
                return [dict(zip(cols, r)) for r in c.fetchall()]

            sweep = rows("embedding_sweep")
            clusters = [
                {
                    **c,
                    "ids": list(c.pop("representative_ids") or []),
                    "representatives": list(c["representatives"] or []),
                }
                for c in rows("embedding_clusters")
            ]
            tokens = rows("embedding_assignments")
            labels = [(t["token_id"], t["cluster"]) for t in tokens if t["cluster"] is not None]
            out.append(
                EmbeddingResult(
                    tensor=choice["param_name"],
                    rows=choice["rows"],
                    cols=choice["cols"],
                    sweep=sweep,
                    chosen_k=choice["chosen_k"],
                    rule=choice["rule"],
                    elbow_k=choice["elbow_k"],
                    clusters=clusters,
                    labels=np.array([c for _, c in labels], dtype=np.int64),
                    tokens=[t["token"] for t in tokens],
                    seconds=choice["seconds"],
                    row_ids=np.array([i for i, _ in labels], dtype=np.int64),
                    excluded={t["token_id"]: t["excluded"] for t in tokens if t["excluded"] is not None},
                    silhouette_k=choice["silhouette_k"],
                    degenerate=choice["degenerate"],
                    include_special=bool(choice["include_special"]),
                )
            )
        return out
    finally:
        con.close()


def model_folder(out_dir: Path, model_id: str) -> tuple[Path, str]:
    """The per-model output folder and the name its files carry (never a path: files.name_for_path)."""
    from .files import name_for_path

    name = name_for_path(model_id)
    return out_dir / name, name


def model_files(out_dir: Path, model_id: str) -> list[Path]:
    """The per-model files a run with embeddings leaves (anova_curve.png included)."""
    folder, name = model_folder(out_dir, model_id)
    names = ["clustering_results.json", "cluster_representatives.json", f"{name}_embedding.csv", "anova_curve.png"]
    return [folder / n for n in names]


def anova_figure(out_dir: Path, model_id: str, results: list[EmbeddingResult]) -> Figure:
    """The seed's anova_curve.png (F, silhouette and inertia against k), to be drawn with the report's figures."""
    from .plots import anova_curve

    return Figure(model_folder(out_dir, model_id)[0] / "anova_curve.png", anova_curve, (model_id, results))


def write_files(out_dir: Path, model_id: str, results: list[EmbeddingResult]) -> list[Path]:
    """The seed's data files: clustering_results.json, cluster_representatives.json, <model>_embedding.csv (in a
    folder per model; its anova_curve.png comes from anova_figure), each written whole or not at all."""
    import csv
    import io

    from .files import write_atomic

    folder, name = model_folder(out_dir, model_id)
    folder.mkdir(parents=True, exist_ok=True)
    summary = [
        {
            "tensor": r.tensor,
            "rows": r.rows,
            "vocab_rows": r.vocab_rows,
            "cols": r.cols,
            "excluded": {
                reason: sum(1 for v in r.excluded.values() if v == reason)
                for reason in sorted(set(r.excluded.values()))
            },
            "chosen_k": r.chosen_k,
            "rule": r.rule,
            "silhouette_k": r.silhouette_k,
            "elbow_k": r.elbow_k,
            "degenerate": r.degenerate,
            "sweep": [_public(s) for s in r.sweep],
            "seconds": r.seconds,
        }
        for r in results
    ]
    write_atomic(folder / "clustering_results.json", json.dumps(summary, indent=1))
    reps = {
        r.tensor: [{k: c[k] for k in ("cluster", "size", "centroid_norm", "representatives")} for c in r.clusters]
        for r in results
    }
    write_atomic(folder / "cluster_representatives.json", json.dumps(reps, indent=1, ensure_ascii=False))
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(["tensor", "token_id", "token", "cluster", "excluded"])
    for r in results:
        cluster = dict(zip(r.row_ids.tolist(), r.labels.tolist()))
        writer.writerows(
            (r.tensor, i, r.tokens[i], cluster.get(i, ""), r.excluded.get(i, "")) for i in range(r.vocab_rows)
        )
    csv_path = write_atomic(folder / f"{name}_embedding.csv", buf.getvalue())
    return [folder / "clustering_results.json", folder / "cluster_representatives.json", csv_path]
