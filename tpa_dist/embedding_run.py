"""Run the embedding analysis of one model: the k sweep as Ray tasks, the choice of k, representatives
decoded to strings, rows for the store and the seed's output files."""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from .catalog import ModelCatalog
from .embedding import (
    EmbeddingSettings,
    coarse_grid,
    elbow,
    find_embeddings,
    fine_grid,
    fit_k,
    load_embedding,
    representatives,
)
from .tokenizers import load_vocab

log = logging.getLogger("tpa_dist")
_SPECIAL = re.compile(r"^(\[unused\d+\]|\[PAD\]|<pad>|<\|.*\|>|<0x[0-9A-F]{2}>)$")


@dataclass
class EmbeddingResult:
    tensor: str
    rows: int
    cols: int
    sweep: list[dict]  # k, f_stat, p_value, inertia, silhouette, method, seconds
    chosen_k: int
    rule: str
    elbow_k: int
    clusters: list[dict]  # cluster, size, centroid_norm, representative_ids, representatives
    labels: np.ndarray
    tokens: list[str | None]
    seconds: float


def _fit_remote(x: np.ndarray, k: int, seed: int, sample: int, gpu: bool) -> dict:
    from threadpoolctl import threadpool_limits

    device = "cpu"
    if gpu:
        from .actors import gpu_compute_device

        device = gpu_compute_device()[0] or "cpu"
    with threadpool_limits(1):
        return fit_k(x, k, seed, sample, device)


def sweep(x: np.ndarray, settings: EmbeddingSettings, cpu_only: bool = False) -> list[dict]:
    """F, p, inertia, silhouette (and labels) per k: one Ray task per k, coarse-to-fine unless k_step.
    With GPUs in the cluster (and not cpu_only) each k runs on a quarter of a GPU, exact k-means in torch."""
    import ray

    from .scheduler import worker_env

    k_max = min(settings.k_max, x.shape[0] - 1)
    gpu = not cpu_only and ray.cluster_resources().get("GPU", 0) > 0
    opts: dict = {"num_cpus": 1, "num_gpus": 0.25 if gpu else 0}
    if worker_env():
        opts["runtime_env"] = {"env_vars": worker_env()}
    remote = ray.remote(_fit_remote).options(**opts)
    x_ref = ray.put(x)

    def run(ks: list[int]) -> list[dict]:
        return ray.get([remote.remote(x_ref, k, settings.seed, settings.silhouette_sample, gpu) for k in ks])

    if settings.k_step:
        return run(list(range(settings.k_min, k_max + 1, settings.k_step)))
    coarse = coarse_grid(settings.k_min, k_max)
    results = run(coarse)
    best = max(results, key=_f_key)["k"]
    results += run(fine_grid(coarse, best))
    return sorted(results, key=lambda r: r["k"])


def _f_key(r: dict) -> tuple[float, int]:
    f = r["f_stat"]
    return (-1.0 if f is None or math.isnan(f) else f, -r["k"])


def analyze_model_embeddings(
    catalog: ModelCatalog, settings: EmbeddingSettings, cpu_only: bool = False
) -> list[EmbeddingResult]:
    """Cluster the token embedding (and an untied output head) of one model."""
    vocab = load_vocab(catalog.root) or {}
    out = []
    for info in find_embeddings(catalog):
        t0 = time.perf_counter()
        x = load_embedding(info)
        results = sweep(x, settings, cpu_only)
        best = max(results, key=_f_key)
        k = best["k"]
        tokens = [vocab.get(i) for i in range(x.shape[0])]
        eligible = np.array([t is not None and not _SPECIAL.match(t) for t in tokens])
        clusters = _representatives(x, best["labels"], k, settings.representatives, eligible)
        for c in clusters:
            c["representatives"] = [tokens[i] if tokens[i] is not None else str(i) for i in c["ids"]]
        out.append(
            EmbeddingResult(
                info.name,
                x.shape[0],
                x.shape[1],
                [_public(r) for r in results],
                k,
                "max_f",
                elbow([r["k"] for r in results], [r["inertia"] for r in results]),
                clusters,
                best["labels"],
                tokens,
                time.perf_counter() - t0,
            )
        )
        log.info(
            "embedding %s %s: k=%d by max F (elbow %d) in %.1fs",
            catalog.root.name,
            info.name,
            k,
            out[-1].elbow_k,
            out[-1].seconds,
        )
    return out


def _representatives(x: np.ndarray, labels: np.ndarray, k: int, n: int, eligible: np.ndarray) -> list[dict]:
    """Representatives among real tokens only ([unusedNN], padding rows and specials never represent)."""
    if eligible.any() and not eligible.all():
        masked = labels.copy()
        masked[~eligible] = -1
        clusters = representatives(x, masked, k, n)
        sizes = np.bincount(labels, minlength=k)
        for c in clusters:
            c["size"] = int(sizes[c["cluster"]])
        return clusters
    return representatives(x, labels, k, n)


def _public(r: dict) -> dict:
    return {
        key: (None if isinstance(v, float) and not math.isfinite(v) else v) for key, v in r.items() if key != "labels"
    }


def store_tables(model_id: str, revision: str, run_id: str, seed: int, res: EmbeddingResult) -> dict[str, pa.Table]:
    key = {"model_id": model_id, "revision": revision, "tensor": res.tensor}
    return {
        "emb_sweep": pa.Table.from_pylist([{**key, **r} for r in res.sweep]),
        "emb_choice": pa.Table.from_pylist(
            [
                {
                    **key,
                    "rows": res.rows,
                    "cols": res.cols,
                    "chosen_k": res.chosen_k,
                    "rule": res.rule,
                    "elbow_k": res.elbow_k,
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
                "model_id": [model_id] * res.rows,
                "revision": [revision] * res.rows,
                "tensor": [res.tensor] * res.rows,
                "token_id": pa.array(np.arange(res.rows, dtype=np.int32)),
                "token": res.tokens,
                "cluster": pa.array(res.labels),
            }
        ),
    }


def write_files(out_dir: Path, model_id: str, results: list[EmbeddingResult]) -> list[Path]:
    """The seed's files: anova_curve.png, clustering_results.json, cluster_representatives.json,
    <model>_embedding.csv (in a folder per model)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_id).strip("-")
    folder = out_dir / slug
    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for res in results:
        ks = [r["k"] for r in res.sweep]
        ax.plot(ks, [r["f_stat"] for r in res.sweep], marker="o", label=f"{res.tensor} ({res.rows}×{res.cols})")
        ax.axvline(res.chosen_k, linestyle="--", color="gray")
        ax.annotate(f"chosen k = {res.chosen_k}", (res.chosen_k, ax.get_ylim()[1]), ha="left", va="top")
    ax.set(
        title=f"{model_id}: one-way ANOVA F of k-means clusters of the token embeddings",
        xlabel="number of clusters k",
        ylabel="F = (SSB/(k−1)) / (SSW/(n−k))",
    )
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "anova_curve.png")
    plt.close(fig)
    summary = [
        {
            "tensor": r.tensor,
            "rows": r.rows,
            "cols": r.cols,
            "chosen_k": r.chosen_k,
            "rule": r.rule,
            "elbow_k": r.elbow_k,
            "sweep": r.sweep,
            "seconds": r.seconds,
        }
        for r in results
    ]
    (folder / "clustering_results.json").write_text(json.dumps(summary, indent=1))
    reps = {
        r.tensor: [{k: c[k] for k in ("cluster", "size", "centroid_norm", "representatives")} for c in r.clusters]
        for r in results
    }
    (folder / "cluster_representatives.json").write_text(json.dumps(reps, indent=1, ensure_ascii=False))
    csv_path = folder / f"{slug}_embedding.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["tensor", "token_id", "token", "cluster"])
        for r in results:
            writer.writerows((r.tensor, i, r.tokens[i], int(r.labels[i])) for i in range(r.rows))
    return [
        folder / "anova_curve.png",
        folder / "clustering_results.json",
        folder / "cluster_representatives.json",
        csv_path,
    ]
