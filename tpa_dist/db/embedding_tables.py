"""The stored form of an embedding analysis: the Arrow tables Store.write_embedding takes in one transaction."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from tpa_dist.compute.embedding_analysis import EmbeddingResult


def store_tables(model_id: str, revision: str, run_id: str, seed: int, res: EmbeddingResult) -> dict[str, pa.Table]:
    key = {"model_id": model_id, "revision": revision, "param_name": res.param_name}
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
                    "metric": res.metric,
                    "recommended_k": res.recommended_k,
                    "verdict": res.verdict,
                    "verdict_words": res.verdict_words,
                    "gap_subsamples": res.gap_subsamples,
                    "phase_seconds": json.dumps({k: round(v, 4) for k, v in res.phases.items()}),
                }
            ]
        ),
        "emb_geometry": pa.Table.from_pylist([{**key, **res.geometry}]),
        "emb_gap": pa.Table.from_pylist(
            [{**key, **g} for g in res.gaps],
            schema=pa.schema(
                [(c, pa.string()) for c in key]
                + [("k", pa.int32())]
                + [(c, pa.float64()) for c in ("gap", "gap_se", "gap_sd", "log_wk")]
                + [("chosen", pa.int32())]
            ),
        ),
        "emb_projection": pa.table(
            {
                "model_id": [model_id] * len(res.projection),
                "revision": [revision] * len(res.projection),
                "param_name": [res.param_name] * len(res.projection),
                "token_id": pa.array([p[0] for p in res.projection], pa.int32()),
                "pc1": pa.array([p[1] for p in res.projection], pa.float64()),
                "pc2": pa.array([p[2] for p in res.projection], pa.float64()),
            }
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
                "param_name": [res.param_name] * n,
                "token_id": pa.array(np.arange(n, dtype=np.int32)),
                "token": res.tokens,
                "cluster": pa.array(cluster, mask=cluster < 0).cast(pa.int32()),
                "excluded": excluded,
                "token_class": res.classes or [None] * n,
            }
        ),
    }
