"""The embedding analysis of one matrix, in one process: read it, leave out the rows that are not words, sweep k,
choose k, note the silhouette-best k, the elbow and any degeneracy, pick representatives (embedding.py has the
sweep itself). What a Ray task or the local run calls (run/embedding)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from tpa_dist.checkpoint.catalog import TensorInfo
from tpa_dist.checkpoint.vocab import Vocab
from tpa_dist.compute.embedding import (
    degeneracy,
    elbow,
    excluded_rows,
    f_key,
    load_embedding,
    representatives,
    silhouette_best,
    sweep_ks,
)
from tpa_dist.settings import EmbeddingSettings


@dataclass
class EmbeddingResult:
    param_name: str  # the embedding (or untied output head) analyzed
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
            f"{info.param_name}: only {len(keep)} rows left to cluster after leaving out "
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
        param_name=info.param_name,
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
