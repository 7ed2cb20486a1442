"""The embedding analysis of one matrix, in one process: read it, leave out the rows that are not words, measure its
geometry (embedding_geometry.py), sweep k (embedding.py) on unit rows (cosine) or raw rows, choose k by the seed's
max F and recommend one by the gap statistic (gap.py), note the silhouette-best k, the elbow and any degeneracy,
pick representatives, class every token (token_classes.py) and project the rows on their top two principal axes.
What a Ray task or the local run calls (run/embedding)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from tpa_dist.checkpoint.catalog import TensorInfo
from tpa_dist.checkpoint.token_classes import token_class
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
from tpa_dist.compute.embedding_geometry import geometry
from tpa_dist.compute.gap import gap_verdict
from tpa_dist.settings import EmbeddingSettings

PROJECTION_POINTS = 5000  # rows drawn in the 2-D projection (a seeded sample; every row for smaller vocabularies)


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
    metric: str = "euclidean"  # the rows clustered: cosine (unit rows) or euclidean (raw)
    recommended_k: int | None = None  # by the gap statistic (gap.py); 1: one cloud; None: no preferred number
    gaps: list[dict] = field(default_factory=list)  # k, gap, gap_se, gap_sd, log_wk, chosen (of the subsamples)
    verdict: str | None = None  # 'clusters' | 'one cloud' | 'no preferred number'
    verdict_words: str | None = None  # the verdict in a sentence, with its evidence
    gap_subsamples: int = 0  # the row subsamples the gap statistic averaged
    geometry: dict = field(default_factory=dict)  # embedding_geometry's columns
    classes: list[str | None] = field(default_factory=list)  # token class of every row of the matrix
    projection: list[tuple[int, float, float]] = field(default_factory=list)  # (token id, pc1, pc2) of a sample
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step

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
    phases: dict[str, float] = {}
    clock = [t0]

    def lap(name: str) -> None:
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - clock[0]
        clock[0] = now

    x = load_embedding(info)
    excluded = {} if settings.include_special else excluded_rows(x, vocab)
    keep = np.array([i for i in range(x.shape[0]) if i not in excluded], dtype=np.int64)
    if len(keep) < 3:
        raise ValueError(
            f"{info.param_name}: only {len(keep)} rows left to cluster after leaving out "
            f"{len(excluded)} special/unused/padding/zero rows"
        )
    rows = _compact(x, keep) if excluded else x
    lap("read")
    shape = geometry(rows, keep, settings.seed)
    projection = _projection(rows, keep, shape.mean, shape.axes, settings.seed)
    lap("geometry")
    if settings.metric == "cosine":  # zero rows are excluded above (or, with include_special, left as they are)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        rows /= np.where(norms > 0, norms, 1.0).astype(rows.dtype)  # in place: x is this function's own copy
    results = sweep_ks(rows, settings, device)
    best = max(results, key=f_key)
    lap("sweep")
    verdict = gap_verdict(rows, settings.seed, k_max=min(settings.k_max, 16), unit=settings.metric == "cosine")
    lap("gap")
    clusters = representatives(rows, best["labels"], best["k"], settings.representatives)
    tokens = [vocab.get(i) if vocab is not None else None for i in range(x.shape[0])]
    for c in clusters:
        c["ids"] = [int(keep[i]) for i in c["ids"]]
        c["representatives"] = [tokens[i] if tokens[i] is not None else str(i) for i in c["ids"]]
    scheme = vocab.scheme if vocab is not None else None
    classes = [token_class(t, scheme) for t in tokens]
    lap("representatives")
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
        metric=settings.metric,
        recommended_k=verdict.recommended_k,
        gaps=verdict.table,
        verdict=verdict.verdict,
        verdict_words=verdict.words(),
        gap_subsamples=verdict.subsamples,
        geometry=shape.columns,
        classes=classes,
        projection=projection,
        phases=phases,
    )


def _compact(x: np.ndarray, keep: np.ndarray, block: int = 8192) -> np.ndarray:
    """x's rows `keep` (ascending) moved to its front in place, as a view: no second copy of a large embedding
    (first-touching 1.5 GB of new memory took seconds). Safe in ascending blocks: a block's rows come from at or
    after where they go, and later blocks' from beyond everything written so far."""
    for r0 in range(0, len(keep), block):
        part = keep[r0 : r0 + block]
        x[r0 : r0 + len(part)] = x[part]
    return x[: len(keep)]


def _projection(
    rows: np.ndarray, keep: np.ndarray, mean: np.ndarray, axes: np.ndarray, seed: int
) -> list[tuple[int, float, float]]:
    """(token id, pc1, pc2): a seeded sample of the rows on the top two principal axes of all of them."""
    idx = np.arange(len(rows))
    if len(rows) > PROJECTION_POINTS:
        idx = np.sort(np.random.default_rng(seed).choice(len(rows), PROJECTION_POINTS, replace=False))
    xy = (np.asarray(rows[idx], dtype=np.float64) - mean) @ axes
    return [(int(keep[i]), float(a), float(b)) for i, (a, b) in zip(idx, xy)]


def _public(r: dict) -> dict:
    return {
        key: (None if isinstance(v, float) and not math.isfinite(v) else v) for key, v in r.items() if key != "labels"
    }
