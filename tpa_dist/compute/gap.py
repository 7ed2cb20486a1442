"""recommended_k: the number of clusters the data supports, by Tibshirani, Walther & Hastie's gap statistic (2001),
made stable: averaged over subsamples, with a verdict that says when there is no preferred number.

Gap(k) = E*[log W_k] − log W_k, W_k the pooled within-cluster sum of squares of k-means, E* over B reference sets.
The reference is a Gaussian with the sample's own covariance (drawn as z·Lᵀ with L the covariance's Cholesky factor
for narrow rows, else as G·(X − μ)/√(m − 1), z and G standard normal; put on the sphere for cosine clustering), the null of SigClust (Liu et al. 2008) — "one cloud of this shape" — rather than
Tibshirani's uniform box, which in hundreds of dimensions is not the shape of one cloud (BENCHMARKS.md).

One sample and one k-means run per set made the answer move with the seed (all-MiniLM-L6-v2: 3, 6, 1 for seeds 0–2):
log W₂ alone moved by as much as Gap(2) between k-means optima and between 2,000-row samples. Here:
- R subsamples of m rows, each with B reference sets; every set's k-means is a warm chain k = 1 … K (each k starts
  from k − 1's centres plus the greedy k-means++ choice among several candidates, so log W_k is non-increasing),
  all R·(B + 1) sets run side by side as one batched Lloyd iteration, on the top principal axes of the subsamples
  together (the same axes for every set): the whole curve of 40 sets costs about 1 s on MiniLM (2 cores), a little
  more than one sample's early-stopped curve did (BENCHMARKS.md);
- the curve is the mean over subsamples, with its standard error from their spread (paired: differences between
  k are taken within a subsample);
- the verdict: **one cloud** (k = 1) when no k's gap exceeds Gap(1) by 2 standard errors; else **k clusters**, the
  smallest k within one standard error of the curve's maximum (Dudoit & Fridlyand's / cluster::clusGap's
  "firstSEmax") when that k lies in the first three quarters of the range; else **no preferred number**
  (recommended_k None): the curve peaks at the range's end — it is still rising, structure at every scale, not a
  number of clusters (so counts above 3/4 of k_max are read as "no preferred number": 12 of the default 16);
- the evidence per k: the mean gap, its standard error, the reference spread, and how many subsamples' own
  Tibshirani rule (Gap(k) ≥ Gap(k + 1) − s_{k+1}) chose it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

GAP_SAMPLE = 1000  # rows per subsample
GAP_SUBSAMPLES = 10  # R
GAP_REFERENCES = 3  # B per subsample (R · B = 30 reference sets in all)
GAP_K_MAX = 16  # k = 1 … this (or fewer rows)
GAP_AXES = 16  # principal axes the k-means runs on (all of them for narrower data)
CANDIDATES = 4  # k-means++ candidates per new centre (greedy: the one that lowers the potential most)
MAX_ITER = 50  # Lloyd iterations per k at most (warm starts converge in under 30 on every data set measured)
EIGH_MAX_D = 1024  # up to this width the axes come from an eigendecomposition of the d × d covariance
EDGE = 0.75  # a peak past this share of the k range is the range's end, not a number of clusters
PARTS = 4  # slices of the sets run side by side (fixed, so that the answer does not depend on the core count)
TOL = 1e-4  # relative inertia change that ends a set's Lloyd iterations (gaps compared are ≥ 1e-3 in log W)


@dataclass
class GapVerdict:
    recommended_k: int | None  # None: no preferred number (the gap still rises at the end of the range)
    verdict: str  # 'clusters' | 'one cloud' | 'no preferred number'
    table: list[dict] = field(default_factory=list)  # k, gap, gap_se, gap_sd, log_wk, chosen
    subsamples: int = 0
    rows: int = 0  # per subsample

    def words(self) -> str:
        """The verdict in one sentence, with its evidence."""
        n = self.subsamples
        if self.verdict == "one cloud":
            return (
                f"one cloud: no k up to {len(self.table)} clusters the rows better than one Gaussian cloud of their "
                f"own shape (gap statistic over {n} subsamples of {self.rows} rows)"
            )
        if self.verdict == "clusters":
            chosen = next(r["chosen"] for r in self.table if r["k"] == self.recommended_k)
            return (
                f"{self.recommended_k} clusters: the gap statistic's curve, averaged over {n} subsamples of "
                f"{self.rows} rows, peaks there (within one standard error); each subsample's own rule chose it "
                f"{chosen} of {n} times"
            )
        return (
            f"no preferred number of clusters: the gap keeps rising to k = {len(self.table)} (more structure at "
            f"every scale than one Gaussian cloud of this shape, but no k stands out; {n} subsamples of {self.rows} "
            "rows)"
        )


def gap_verdict(
    x: np.ndarray,
    seed: int,
    k_max: int = GAP_K_MAX,
    sample: int = GAP_SAMPLE,
    subsamples: int = GAP_SUBSAMPLES,
    references: int = GAP_REFERENCES,
    unit: bool = False,
) -> GapVerdict:
    """The gap statistic of `x`'s rows (float32 or float64) over `subsamples` seeded row samples of `sample` rows
    with `references` Gaussian reference sets each, k = 1 … k_max; `unit`: the rows are unit vectors (cosine
    clustering), so the reference draws are put on the sphere too."""
    rng = np.random.default_rng([seed, 0x6A9])
    m = sample if len(x) > sample else max(2, int(0.8 * len(x)))  # small data: subsamples of 80 % of the rows
    k_max = max(1, min(k_max, m - 1))
    # the rows as stored (float32 for embeddings): each subsample is made float64 only while its references are
    # drawn (10 float64 copies at 1,000 × 2,560 would hold 200 MB, their concatenation as much again)
    samples = [np.asarray(x[np.sort(rng.choice(len(x), m, replace=False))]) for _ in range(subsamples)]
    axes = _top_axes(np.concatenate(samples), GAP_AXES, rng)  # one set of axes for every subsample
    sets = [s for rows in samples for s in _reference_sets(rows, axes, references, unit, rng)]
    r = len(sets) // (references + 1)
    log_w = _chains_side_by_side(np.stack(sets), k_max, seed).reshape(r, references + 1, k_max)
    per = log_w[:, 1:].mean(axis=1) - log_w[:, 0]  # (R, K): each subsample's gap curve
    sd = log_w[:, 1:].std(axis=1) * np.sqrt(1 + 1 / references)  # its references' spread, as Tibshirani's s_k
    mean = per.mean(axis=0)
    se = per.std(axis=0, ddof=1) / np.sqrt(r) if r > 1 else sd[0]
    chosen = np.zeros(k_max, np.int64)
    for g, s in zip(per, sd):
        chosen[_tibshirani(g, s) - 1] += 1
    table = [
        {
            "k": k + 1,
            "gap": float(mean[k]),
            "gap_se": float(se[k]),
            "gap_sd": float(sd[:, k].mean()),
            "log_wk": float(log_w[:, 0, k].mean()),
            "chosen": int(chosen[k]),
        }
        for k in range(k_max)
    ]
    k, verdict = _decide(per)
    return GapVerdict(k, verdict, table, r, m)


def _decide(per: np.ndarray) -> tuple[int | None, str]:
    """The verdict from the subsamples' curves (R × K): paired standard errors of differences between k."""
    r, k_max = per.shape

    def se(diff: np.ndarray) -> float:
        return float(diff.std(ddof=1) / np.sqrt(r)) if r > 1 else 0.0

    above_one = [per[:, k].mean() - per[:, 0].mean() > 2 * se(per[:, k] - per[:, 0]) for k in range(1, k_max)]
    if k_max == 1 or not any(above_one):
        return 1, "one cloud"
    mean = per.mean(axis=0)
    top = int(np.argmax(mean))
    # firstSEmax: the smallest k within one standard error of the maximum (k = top always qualifies)
    first = next(k for k in range(k_max) if mean[k] >= mean[top] - se(per[:, top] - per[:, k]))
    if first + 1 > EDGE * k_max:  # the curve peaks in the last quarter of the range: still rising, no peak
        return None, "no preferred number"
    return first + 1, "clusters"


def _tibshirani(gap: np.ndarray, s: np.ndarray) -> int:
    """One subsample's choice by the 2001 rule: the smallest k with Gap(k) ≥ Gap(k+1) − s_{k+1} (the last if none)."""
    for k in range(len(gap) - 1):
        if gap[k] >= gap[k + 1] - s[k + 1]:
            return k + 1
    return len(gap)


def _reference_sets(
    rows: np.ndarray, axes: np.ndarray, references: int, unit: bool, rng: np.random.Generator
) -> list[np.ndarray]:
    """The sample and its reference sets, all on the principal axes `axes` (float32, each set centred)."""
    rows = np.asarray(rows, np.float64)
    m, d = rows.shape
    mean = rows.mean(axis=0)
    centred = rows - mean
    axes = axes.astype(np.float32)
    out = [(centred @ axes).astype(np.float32)]
    factor = _covariance_factor(centred) if d < m else None
    scaled = None if factor is not None else (centred / np.sqrt(m - 1)).astype(np.float32)
    for _ in range(references):
        if factor is not None:  # z·Lᵀ, z standard normal m × d, L Lᵀ the sample covariance: N(μ, S)
            ref = rng.standard_normal((m, d), dtype=np.float32) @ factor.T
        else:  # rows of G·(X − μ)/√(m−1), G standard normal m × m, are N(μ, S) too: no factorization of d × d
            ref = rng.standard_normal((m, m), dtype=np.float32) @ scaled
        ref += mean.astype(np.float32)
        if unit:
            ref /= np.linalg.norm(ref, axis=1, keepdims=True)
        out.append(((ref - ref.mean(axis=0)) @ axes).astype(np.float32))
    return out


def _covariance_factor(centred: np.ndarray) -> np.ndarray | None:
    """The Cholesky factor L (float32) of the sample covariance S = XᵀX/(m − 1) of narrow rows (d < m): a reference
    draw is then m × d normals and one m × d × d product instead of m × m normals and m × m × d (2.6× fewer at
    1,000 × 384, and the normals were half of the cost). None when S is singular (a constant or repeated column):
    the m × m draw needs no factor."""
    cov = centred.T @ centred / (len(centred) - 1)
    try:
        return np.linalg.cholesky(cov).astype(np.float32)
    except np.linalg.LinAlgError:
        return None


def _top_axes(rows: np.ndarray, p: int, rng: np.random.Generator) -> np.ndarray:
    """The top p principal axes (d × p) of rows: the covariance's eigenvectors for narrow rows, else by randomized
    subspace iteration (Halko, Martinsson & Tropp 2011: p + 10 directions, 4 power steps) — a few GEMMs where an
    eigendecomposition of d × d would take seconds at d = 2,560. Any orthonormal basis close to the top axes serves:
    data and references are projected alike."""
    d = rows.shape[1]
    if d <= p:
        return np.eye(d)
    if d <= EIGH_MAX_D:  # narrow: the covariance's eigenvectors directly (d × d, accumulated in float64)
        centred = rows - rows.mean(axis=0, dtype=np.float64)
        return np.linalg.eigh(centred.T @ centred)[1][:, ::-1][:, :p]
    centred = (rows - rows.mean(axis=0)).astype(np.float32)
    q = np.linalg.qr(centred @ rng.standard_normal((d, min(d, p + 10)), dtype=np.float32))[0]
    for _ in range(4):
        q = np.linalg.qr(centred @ np.linalg.qr(centred.T @ q)[0])[0]
    _, _, vt = np.linalg.svd(q.T @ centred, full_matrices=False)
    return vt[:p].T.astype(np.float64)


def _chains_side_by_side(x: np.ndarray, k_max: int, seed: int) -> np.ndarray:
    """_batched_chains of PARTS fixed slices of the sets on up to PARTS threads (numpy's kernels release the GIL),
    each slice with its own seeded generator: the same answer on any number of cores; BLAS single-threaded inside."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import ThreadpoolController

    slices = [part for part in np.array_split(np.arange(len(x)), PARTS) if len(part)]
    work = [(x[part], k_max, np.random.default_rng([seed, 0x6A9, i])) for i, part in enumerate(slices)]
    # the threads are the parallelism: each one's small GEMMs single-threaded (no PARTS × cores BLAS threads)
    with ThreadPoolExecutor(min(len(work), os.cpu_count() or 1)) as pool, ThreadpoolController().limit(limits=1):
        return np.concatenate(list(pool.map(lambda w: _batched_chains(*w), work)))


def _batched_chains(x: np.ndarray, k_max: int, rng: np.random.Generator) -> np.ndarray:
    """log W_k, k = 1 … k_max, of every set of `x` (S × m × p): warm chains of Lloyd's k-means run side by side."""
    s, m, _ = x.shape
    norms = np.einsum("smp,smp->sm", x, x)  # the sets are centred: W_1 is the total sum of squares
    out = np.empty((s, k_max))
    out[:, 0] = np.log(np.maximum(norms.sum(axis=1), np.finfo(float).tiny))
    centers = np.zeros((s, 1, x.shape[2]), np.float32)
    dist = norms.copy()  # each row's squared distance to its nearest centre
    for k in range(2, k_max + 1):
        centers = np.concatenate([centers, _new_centre(x, norms, centers, dist, rng)], axis=1)
        centers, dist = _lloyd(x, norms, centers)
        out[:, k - 1] = np.log(np.maximum(dist.sum(axis=1, dtype=np.float64), np.finfo(float).tiny))
    return out


def _new_centre(
    x: np.ndarray, norms: np.ndarray, centers: np.ndarray, dist: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Greedy k-means++: per set, CANDIDATES rows drawn with probability ∝ squared distance to the nearest centre;
    the one that lowers the potential most (S × 1 × p)."""
    s, m, _ = x.shape
    p = np.maximum(dist, 0).astype(np.float64)
    total = p.sum(axis=1, keepdims=True)
    p = np.where(total > 0, p / np.where(total > 0, total, 1), 1.0 / m)
    cum = np.cumsum(p, axis=1)
    picks = np.minimum((cum[:, None, :] < rng.random((s, CANDIDATES, 1))).sum(axis=2), m - 1)  # S × C row indices
    cand = np.take_along_axis(x, picks[:, :, None], axis=1)  # S × C × p
    to_cand = norms[:, None, :] - 2 * cand @ x.transpose(0, 2, 1) + np.einsum("scp,scp->sc", cand, cand)[:, :, None]
    potential = np.minimum(dist[:, None, :], np.maximum(to_cand, 0)).sum(axis=2)  # S × C
    best = np.argmin(potential, axis=1)
    return cand[np.arange(s), best][:, None, :]


def _lloyd(x: np.ndarray, norms: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd iterations of every set at once, each set until its inertia changes by under TOL (converged sets
    leave the batch); an emptied centre keeps its place. Returns the centres and each row's squared distance to
    its nearest one."""
    s, m, p = x.shape
    k = centers.shape[1]
    centers = centers.copy()
    dist = np.empty((s, m), np.float32)
    last = np.full(s, np.inf)
    active = np.arange(s)
    for _ in range(MAX_ITER):
        xa, c = x[active], centers[active]
        d2 = xa @ c.transpose(0, 2, 1)  # ‖x‖² − 2x·c + ‖c‖², built in place; ‖x‖² added after the argmin
        d2 *= -2
        d2 += np.einsum("skp,skp->sk", c, c)[:, None]
        labels = np.argmin(d2, axis=2)
        dist[active] = np.maximum(np.take_along_axis(d2, labels[:, :, None], axis=2)[:, :, 0] + norms[active], 0)
        inertia = dist[active].sum(axis=1, dtype=np.float64)
        moving = np.abs(last[active] - inertia) > TOL * inertia
        last[active] = inertia
        if not moving.any():
            break
        active, labels, xa, c = active[moving], labels[moving], xa[moving], c[moving]
        onehot = np.zeros((len(active), m, k), np.float32)
        np.put_along_axis(onehot, labels[:, :, None], 1.0, axis=2)
        counts = onehot.sum(axis=1)  # S × k
        sums = onehot.transpose(0, 2, 1) @ xa  # S × k × p
        centers[active] = np.where(counts[:, :, None] > 0, sums / np.maximum(counts, 1)[:, :, None], c)
    return centers, dist
