"""Embedding-space clustering, the mathematics: which rows are words, the k-means sweep (exact Lloyd, warm
starts, kmeans.py), the one-way ANOVA F (Calinski–Harabasz) with its p-value, silhouette, elbow, the choice of
k and whether the chosen partition is degenerate, and each cluster's representative rows.

Everything here runs inside a worker (embedding_run.py schedules it); no database, no Ray.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import ThreadpoolController

from tpa_dist.checkpoint.catalog import TensorInfo, find_embeddings  # noqa: F401 - find_embeddings re-exported
from tpa_dist.checkpoint.reader import Region, iter_blocks
from tpa_dist.checkpoint.vocab import Vocab
from tpa_dist.compute.kmeans import Data, FreshSeeds, KMeansFit, RowThreads, each_span, fit, sampler
from tpa_dist.settings import DEFAULT_BLOCK_MIB, EmbeddingSettings  # noqa: F401 - EmbeddingSettings re-exported

SMALL_CLUSTER = 0.001  # a cluster under 0.1 % of the rows makes a partition degenerate
NEAR_ZERO = 1e-3  # a row whose norm is under this share of the median row norm was never trained


def load_embedding(info: TensorInfo) -> np.ndarray:
    """The matrix as float32 rows (exact for the ≤ 32-bit dtypes embeddings are stored in)."""
    region = Region(info.param_name, info.path, info.start, info.dtype, info.shape[0], info.shape[1])
    out = np.empty(info.shape, dtype=np.float32)
    r0 = 0
    for block in iter_blocks(region, DEFAULT_BLOCK_MIB << 20):
        out[r0 : r0 + len(block)] = block
        r0 += len(block)
    return out


def excluded_rows(x: np.ndarray, vocab: Vocab | None) -> dict[int, str]:
    """Rows that are not words, by reason: 'special' (the tokenizer marks it), 'unused' ([unusedNN] …),
    'padding' (past the tokenizer's vocabulary), 'zero' (all-zero) and 'untrained' (norm under 1e-3 × the median
    row norm: never updated from a near-zero start)."""
    out: dict[int, str] = {}
    if vocab is not None:
        for i in range(x.shape[0]):
            reason = vocab.reason(i)
            if reason:
                out[i] = reason
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    median = float(np.median(norms)) if len(norms) else 0.0
    for i in np.flatnonzero(norms == 0):
        out.setdefault(int(i), "zero")
    if median > 0:
        for i in np.flatnonzero((norms > 0) & (norms < NEAR_ZERO * median)):
            out.setdefault(int(i), "untrained")
    return out


def anova_f(x: np.ndarray, labels: np.ndarray, k: int, chunk: int = 16384) -> tuple[float, float, float, float]:
    """(F, p-value, SSB, SSW) of a one-way ANOVA of the rows of x grouped by labels (= Calinski–Harabasz).

    Sums are accumulated in float64 over row chunks, so a 152k × 2560 float32 matrix is never copied whole.
    """
    from scipy import sparse

    n, d = x.shape
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros((k, d))
    total_sq = 0.0
    for r0 in range(0, n, chunk):
        block = x[r0 : r0 + chunk].astype(np.float64)
        lab = labels[r0 : r0 + chunk]
        onehot = sparse.csr_matrix((np.ones(len(lab)), (np.arange(len(lab)), lab)), shape=(len(lab), k))
        sums += onehot.T @ block
        total_sq += float(np.einsum("ij,ij->", block, block))
    nonempty = counts > 0
    means = sums[nonempty] / counts[nonempty, None]
    mu = sums.sum(axis=0) / n
    total_ss = total_sq - n * float(mu @ mu)
    ssb = float(np.sum(counts[nonempty] * np.sum((means - mu) ** 2, axis=1)))
    ssw = max(total_ss - ssb, 0.0)
    return f_test(ssb, ssw, n, int(nonempty.sum()))


def f_test(ssb: float, ssw: float, n: int, groups: int) -> tuple[float, float, float, float]:
    """(F, p-value, SSB, SSW) from the between and within sums of squares."""
    from scipy.special import fdtrc  # F's survival function, what scipy.stats.f.sf calls (a 1.3 s lighter import)

    if groups < 2 or n <= groups or ssw == 0:
        return math.inf if ssw == 0 and groups > 1 else math.nan, 0.0, ssb, ssw
    f_stat = (ssb / (groups - 1)) / (ssw / (n - groups))
    return f_stat, float(fdtrc(groups - 1, n - groups, f_stat)), ssb, ssw


def distances(x: np.ndarray, threads: RowThreads | None = None) -> np.ndarray:
    """The Euclidean distances between all rows of x, float64 (the diagonal exactly 0); spans of rows in parallel
    with `threads`."""
    n = len(x)
    xf = x.astype(np.float64)
    sq = np.einsum("ij,ij->i", xf, xf)
    dist = np.empty((n, n))

    def span(r0: int, r1: int) -> None:
        d = np.sqrt(np.maximum(sq[r0:r1, None] + sq[None, :] - 2.0 * (xf[r0:r1] @ xf.T), 0.0))
        d[np.arange(r1 - r0), np.arange(r0, r1)] = 0.0
        dist[r0:r1] = d

    each_span(threads, n, span)
    return dist


def silhouette(x: np.ndarray, labels: np.ndarray, threads: RowThreads | None = None) -> float | None:
    """The mean silhouette (Rousseeuw 1987) of rows x grouped by labels, Euclidean, float64 — the definition of
    scikit-learn's silhouette_score (a point alone in its cluster scores 0); None unless 2..n-1 clusters. With
    `threads`, spans of rows run in parallel."""
    return silhouette_of(distances(x, threads), labels)


def silhouette_of(dist: np.ndarray, labels: np.ndarray) -> float | None:
    """The mean silhouette from the rows' pairwise distances (`distances`): a sweep computes them once for its
    fixed sample of rows and groups them by each k's labels."""
    n = len(labels)
    groups, inverse = np.unique(labels, return_inverse=True)
    if not 2 <= len(groups) < n:
        return None
    onehot = np.zeros((n, len(groups)))
    onehot[np.arange(n), inverse] = 1.0
    sums = dist @ onehot  # summed distance of each point to each cluster
    sizes = onehot.sum(axis=0)
    own = sizes[inverse]
    a = np.where(own > 1, sums[np.arange(n), inverse] / np.maximum(own - 1, 1), 0.0)
    mean_to = sums / sizes[None, :]
    mean_to[np.arange(n), inverse] = np.inf
    b = mean_to.min(axis=1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    return float(s.mean())


def _silhouette(data: Data, labels: np.ndarray, seed: int, sample: int) -> float | None:
    """The silhouette on a fixed sample of rows (the full one is quadratic in the rows); the sample's distances are
    computed once per sweep and kept on `data` (the same rows for every k)."""
    cached = data.sample_distances
    if cached is None or cached[0] != (seed, sample):
        pick = np.random.default_rng(seed).permutation(data.n)[: min(sample, data.n)]
        cached = data.sample_distances = ((seed, sample), pick, distances(data.x[pick], data.threads))
    _, pick, dist = cached
    return silhouette_of(dist, labels[pick])


def _row(data: Data, res: KMeansFit, seed: int, sample: int, method: str, seconds: float) -> dict:
    total = data.total_ss
    ssw = res.inertia
    groups = int(np.count_nonzero(np.bincount(res.labels, minlength=res.k)))
    f_stat, p_value, _, _ = f_test(max(total - ssw, 0.0), ssw, data.n, groups)
    return {
        "k": res.k,
        "f_stat": f_stat,
        "p_value": p_value,
        "inertia": ssw,
        "silhouette": _silhouette(data, res.labels, seed, sample),
        "iterations": res.iterations,
        "labels": res.labels,
        "method": method,
        "seconds": seconds,
    }


def fit_k(x: np.ndarray, k: int, seed: int, silhouette_sample: int, device: str = "cpu") -> dict:
    """Exact k-means for one k (best of the fresh greedy k-means++ starts) and its statistics; device "cuda", or
    "torch-cpu" in tests, runs the iterations in torch."""
    t0 = time.perf_counter()
    data = Data(x)
    if device != "cpu":
        data.use_torch("cpu" if device == "torch-cpu" else device)
    res = fit(data, k, seed)
    return _row(data, res, seed, silhouette_sample, _method(device), time.perf_counter() - t0)


def _method(device: str) -> str:
    if device == "cpu":
        return "kmeans"
    return "kmeans_torch_" + ("gpu" if device.startswith("cuda") else "cpu")


def coarse_grid(k_min: int, k_max: int, points: int = 8) -> list[int]:
    return sorted({int(round(v)) for v in np.geomspace(k_min, k_max, points)})


def fine_grid(coarse: list[int], best: int, points: int = 8) -> list[int]:
    """k values between the coarse neighbours of the best coarse k, not already tried."""
    i = coarse.index(best)
    lo, hi = coarse[max(0, i - 1)], coarse[min(len(coarse) - 1, i + 1)]
    step = max(1, (hi - lo) // points)
    return [k for k in range(lo, hi + 1, step) if k not in coarse]


def f_key(r: dict) -> tuple[float, int]:
    f = r["f_stat"]
    return (-1.0 if f is None or math.isnan(f) else f, -r["k"])


def sweep_ks(x: np.ndarray, settings: EmbeddingSettings, device: str = "cpu") -> list[dict]:
    """F, p, inertia, silhouette (and labels) per k, k ascending, each k warm-started from the largest k below
    it (so the inertia is non-increasing in k). Coarse geometric grid, then the k between the best coarse
    point's neighbours — or a plain range with `k_step`."""
    blas = ThreadpoolController()
    # as many row spans as the BLAS threads this process may use now (the worker's limit), each single-threaded
    count = max((int(i["num_threads"]) for i in blas.info() if i["user_api"] == "blas"), default=1)
    if device != "cpu" or count < 2:
        return _sweep(Data(x), settings, device)
    with ThreadPoolExecutor(count) as pool, blas.limit(limits=1, user_api="blas"):
        return _sweep(Data(x, RowThreads(pool, count)), settings, device)


def _sweep(data: Data, settings: EmbeddingSettings, device: str) -> list[dict]:
    if device != "cpu":
        data.use_torch("cpu" if device == "torch-cpu" else device)
    k_max = min(settings.k_max, data.n - 1)
    k_min = min(settings.k_min, k_max)
    fits: dict[int, KMeansFit] = {}
    rows: dict[int, dict] = {}
    sample = sampler(data, settings.seed)
    # the fresh starts of every k, seeded once: one seeding pass per centre of the largest k
    seeds = FreshSeeds(sample if sample is not None else data, k_min, k_max, settings.seed)

    def run(ks: list[int]) -> None:
        for k in sorted(set(ks) - set(fits)):
            below = [j for j in fits if j < k]
            t0 = time.perf_counter()
            fits[k] = fit(data, k, settings.seed, fits[max(below)] if below else None, sample=sample, seeds=seeds)
            rows[k] = _row(
                data, fits[k], settings.seed, settings.silhouette_sample, _method(device), time.perf_counter() - t0
            )
            above = sorted(j for j in fits if j > k)
            if above and fits[above[0]].inertia > fits[k].inertia:  # a later fine k beat its upper neighbour:
                run_up(k, above)  # re-run the upper ones from it, keeping the sweep monotone

    def run_up(k: int, above: list[int]) -> None:
        prev = k
        for j in above:
            if fits[j].inertia <= fits[prev].inertia:
                break
            t0 = time.perf_counter()
            fits[j] = fit(data, j, settings.seed, fits[prev], sample=sample, seeds=seeds)
            rows[j] = _row(
                data, fits[j], settings.seed, settings.silhouette_sample, _method(device), time.perf_counter() - t0
            )
            prev = j

    if settings.k_step:
        run(list(range(k_min, k_max + 1, settings.k_step)))
    else:
        coarse = coarse_grid(k_min, k_max)
        run(coarse)
        best = max((rows[k] for k in coarse), key=f_key)["k"]
        run(fine_grid(coarse, best))
    return [rows[k] for k in sorted(rows)]


def elbow(ks: list[int], inertias: list[float]) -> int:
    """The kneedle elbow: the k farthest below the chord from the first to the last inertia."""
    if len(ks) < 3:
        return ks[0]
    k = np.asarray(ks, dtype=float)
    y = np.asarray(inertias, dtype=float)
    kn = (k - k[0]) / (k[-1] - k[0])
    yn = (y - y.min()) / (np.ptp(y) or 1.0)
    chord = yn[0] + (yn[-1] - yn[0]) * kn
    return int(k[int(np.argmax(chord - yn))])


def silhouette_best(results: list[dict]) -> int | None:
    scored = [r for r in results if r["silhouette"] is not None]
    return max(scored, key=lambda r: (r["silhouette"], -r["k"]))["k"] if scored else None


def degeneracy(chosen: dict, results: list[dict], n: int) -> str | None:
    """Why the chosen partition should not be read as structure (None when it can be): a cluster under 0.1 % of
    the rows, a negative silhouette, or F's maximum at the edge of the swept range."""
    reasons = []
    sizes = np.bincount(chosen["labels"], minlength=chosen["k"])
    smallest = int(sizes.min())
    if smallest < SMALL_CLUSTER * n:
        reasons.append(f"its smallest cluster holds {smallest} of {n:,} rows ({100 * smallest / n:.3f} %)")
    if chosen["silhouette"] is not None and chosen["silhouette"] < 0:
        reasons.append(f"its silhouette is {chosen['silhouette']:.3f} (< 0: points sit closer to other clusters)")
    ks = [r["k"] for r in results]
    if len(ks) > 1 and chosen["k"] in (min(ks), max(ks)):
        reasons.append(f"F is largest at the edge of the swept range (k = {chosen['k']} of {min(ks)}–{max(ks)})")
    return "; ".join(reasons) if reasons else None


REP_BLOCK_ROWS = 1024


def representatives(x: np.ndarray, labels: np.ndarray, k: int, n: int) -> list[dict]:
    """Per cluster: size, centroid norm, and the ids (row indices of x) of the n members nearest the centroid.
    Two passes over the rows in float64 blocks (the centroids' sums as a sparse one-hot product, then each row's
    ‖x‖² − 2 x·c + ‖c‖² to its own centroid): no copy of a cluster's rows (8 s at 152k × 2560 copied, 1 s so)."""
    import scipy.sparse

    def blocks():  # noqa: ANN202 - (start, float64 rows, their labels, their positions in the block)
        for i in range(0, len(x), REP_BLOCK_ROWS):
            block = np.asarray(x[i : i + REP_BLOCK_ROWS], dtype=np.float64)
            yield i, block, labels[i : i + REP_BLOCK_ROWS], np.arange(len(block))

    sums, sizes = np.zeros((k, x.shape[1])), np.bincount(labels, minlength=k)[:k]
    for _, block, lab, rows in blocks():
        sums += scipy.sparse.csr_array((np.ones(len(block)), (lab, rows)), shape=(k, len(block))) @ block
    centroids = sums / np.maximum(sizes, 1)[:, None]
    squares = np.einsum("ij,ij->i", centroids, centroids)
    dist = np.empty(len(x))
    for i, block, lab, rows in blocks():
        near = (block @ centroids.T)[rows, lab]
        dist[i : i + len(block)] = np.einsum("ij,ij->i", block, block) - 2 * near + squares[lab]
    out = []
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            out.append({"cluster": c, "size": 0, "centroid_norm": None, "ids": []})
            continue
        nearest = idx[np.argsort(dist[idx], kind="stable")[:n]]
        out.append(
            {
                "cluster": c,
                "size": int(idx.size),
                "centroid_norm": float(np.linalg.norm(centroids[c])),
                "ids": [int(i) for i in nearest],
            }
        )
    return out
