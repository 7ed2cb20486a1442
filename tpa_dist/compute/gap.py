"""recommended_k: the number of clusters the data supports, by Tibshirani, Walther & Hastie's gap statistic (2001),
which — unlike argmax F — can answer "one" (no k gives real clusters) and is not drawn to either end of a range.

Gap(k) = E*[log W_k] − log W_k, W_k the pooled within-cluster sum of squares of k-means, E* over B reference sets;
the recommended k is the smallest k with Gap(k) ≥ Gap(k+1) − s_{k+1}, s = sd* · √(1 + 1/B). The reference is a
Gaussian with the sample's own covariance (drawn as G·(X − μ)/√(m − 1), G standard normal), the null of SigClust (Liu
et al. 2008) — "one cloud of this shape" — rather than Tibshirani's uniform box: in hundreds of dimensions a box is
not the shape of one cloud, and on all-MiniLM-L6-v2's embedding (silhouette ≤ 0.03 at every k) the box reference
"found" 4 to 8 clusters where the Gaussian one answers 1 (BENCHMARKS.md). On a row sample (default 2,000 rows) with
tpa-dist's exact k-means (warm-started from k − 1), stopping at the first k accepted: seconds for any vocabulary.
"""

from __future__ import annotations

import numpy as np

from tpa_dist.compute.kmeans import Data, KMeansFit, fit

GAP_SAMPLE = 2000  # rows the statistic is computed on
GAP_REFERENCES = 5  # B
GAP_K_MAX = 16  # k = 1 … this (or fewer rows)


class _Chain:
    """One data set's k-means for k = 1, 2, …: each k warm-started from k − 1 (tpa-dist's exact k-means, kmeans.py),
    so log W_k is non-increasing in k."""

    def __init__(self, x: np.ndarray, seed: int) -> None:
        self.data, self.seed, self.last = Data(x), seed, None

    def log_wk(self, k: int) -> float:
        if k == 1:
            self.last = None
            return float(np.log(max(self.data.total_ss, np.finfo(float).tiny)))
        self.last: KMeansFit | None = fit(self.data, k, self.seed, self.last)
        return float(np.log(max(self.last.inertia, np.finfo(float).tiny)))


def gap_statistic(
    x: np.ndarray,
    seed: int,
    k_max: int = GAP_K_MAX,
    sample: int = GAP_SAMPLE,
    references: int = GAP_REFERENCES,
    unit: bool = False,
) -> list[dict]:
    """[{k, gap, gap_sd, log_wk}] for k = 1, 2, … on a seeded row sample of `x` (float64), up to the first k the
    rule accepts plus one (the rule needs k + 1), or k_max. `unit`: the rows are unit vectors (cosine clustering),
    so the reference draws are put on the sphere too."""
    rng = np.random.default_rng(seed)
    rows = x if len(x) <= sample else x[np.sort(rng.choice(len(x), sample, replace=False))]
    rows = np.asarray(rows, dtype=np.float64)
    k_max = max(1, min(k_max, len(rows) - 1))
    mean = rows.mean(axis=0)
    # rows of G·(X − μ)/√(m−1), G standard normal m × m, are N(μ, the sample covariance): the same draws as
    # along the principal axes (Z·diag(s)·Vᵀ/√(m−1) = (Z·Uᵀ)·(X − μ)/√(m−1), Z·Uᵀ again standard normal), without
    # the SVD (4 s of 7.8 at 2,000 × 2,560); one float32 GEMM per reference set
    centred = ((rows - mean) / np.sqrt(len(rows) - 1)).astype(np.float32)
    refs = []
    for _ in range(references):
        ref = mean + rng.standard_normal((len(rows), len(rows)), dtype=np.float32) @ centred
        refs.append(ref / np.linalg.norm(ref, axis=1, keepdims=True) if unit else ref)
    chains = [_Chain(rows, seed)] + [_Chain(r, seed) for r in refs]
    out = []
    for k in range(1, k_max + 1):
        log_w = chains[0].log_wk(k)
        ref = np.array([c.log_wk(k) for c in chains[1:]])
        spread = float(ref.std() * np.sqrt(1 + 1 / references))
        out.append({"k": k, "gap": float(ref.mean() - log_w), "gap_sd": spread, "log_wk": log_w})
        if len(out) >= 2 and out[-2]["gap"] >= out[-1]["gap"] - out[-1]["gap_sd"]:
            break
    return out


def recommended_k(gaps: list[dict]) -> int:
    """The smallest k with Gap(k) ≥ Gap(k+1) − s_{k+1} (the last k if none)."""
    for here, after in zip(gaps, gaps[1:]):
        if here["gap"] >= after["gap"] - after["gap_sd"]:
            return here["k"]
    return gaps[-1]["k"]
