"""The stored form of an embedding analysis: the Arrow tables Store.write_embedding takes in one transaction."""

from __future__ import annotations

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
                "param_name": [res.param_name] * n,
                "token_id": pa.array(np.arange(n, dtype=np.int32)),
                "token": res.tokens,
                "cluster": pa.array(cluster, mask=cluster < 0).cast(pa.int32()),
                "excluded": excluded,
            }
        ),
    }
