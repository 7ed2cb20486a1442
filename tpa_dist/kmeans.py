"""Exact Lloyd k-means written as BLAS, with greedy k-means++ seeding and warm starts along a sweep of k.

Distances are ‖x‖² − 2·X·Cᵀ + ‖c‖² with one float32 GEMM per chunk of rows; the data are centred first (in
float64), so the large shared mean offset of trained embeddings costs no float32 digits. Centroid sums are a
float32 GEMM per chunk (one-hot · rows) accumulated in float64 across chunks, and the stored inertia is computed
exactly in float64 from the rows. Lloyd runs to convergence — labels unchanged, or scikit-learn's criterion
(centre shift ≤ 1e-4 × mean feature variance) — never a mini-batch estimate.

A sweep visits k in ascending order and starts each k from the solution of the largest k below it plus new
centres chosen by greedy k-means++ (D² sampling, best of 2 + ln k candidates, as scikit-learn): adding a centre
never raises the inertia and Lloyd never raises it either, so the inertia is non-increasing in k by construction.
With ``device`` "cuda" (or "torch-cpu" in tests) the same iterations run in torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CHUNK_ROWS = 4096
SAMPLE_ROWS = 16_384  # fresh starts of large data are seeded and iterated on this many rows
TOL = 1e-4  # scikit-learn's KMeans default (centre shift)
RTOL = 1e-4  # an iteration that gains less than this share of the inertia ends Lloyd


@dataclass
class KMeansFit:
    k: int
    centers: np.ndarray  # float64, in the centred coordinates
    labels: np.ndarray  # int32
    inertia: float  # float64 Σ‖x − c_label‖²
    iterations: int


class Data:
    """The rows to cluster: centred (float64 mean removed), stored as float32, with float64 squared norms."""

    def __init__(self, x: np.ndarray) -> None:
        self.n, self.d = x.shape
        self.mean = x.mean(axis=0, dtype=np.float64)
        centred = np.empty(x.shape, dtype=np.float32)
        for r0 in range(0, self.n, CHUNK_ROWS):
            centred[r0 : r0 + CHUNK_ROWS] = x[r0 : r0 + CHUNK_ROWS].astype(np.float64) - self.mean
        self.x = centred
        self.orig = x
        self.sq = np.einsum("ij,ij->i", centred, centred, dtype=np.float64)
        self.total_ss = self.inertia(np.zeros((1, self.d)), np.zeros(self.n, dtype=np.int64))  # Σ‖x − μ‖²
        self.variance = float(self.sq.sum()) / (self.n * self.d)
        self.device = "cpu"
        self.tx = self.tsq = None

    def use_torch(self, device: str) -> None:
        """Run the distance and sum passes in torch on `device` (a GPU worker's "cuda", or "cpu" in tests)."""
        import torch

        self.device = device
        self.tx = torch.from_numpy(self.x).to(device)
        self.tsq = torch.from_numpy(self.sq).to(device)

    def assign(self, centers: np.ndarray, sums: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One pass over the rows: (labels, squared distance to the nearest centre, per-label sums, sizes).

        The nearest centre minimises ‖c‖² − 2·x·c (float32 GEMM; ‖x‖² is common to all centres); the distance
        adds the row's float64 ‖x‖² back. Sums are a one-hot float32 GEMM per chunk, accumulated in float64."""
        if self.tx is not None:
            return self._assign_torch(centers, sums)
        k = len(centers)
        c32 = centers.astype(np.float32)
        csq = np.einsum("ij,ij->i", c32, c32)
        labels = np.empty(self.n, dtype=np.int32)
        dist = np.empty(self.n, dtype=np.float64)
        total = np.zeros((k, self.d), dtype=np.float64)
        for r0 in range(0, self.n, CHUNK_ROWS):
            xb = self.x[r0 : r0 + CHUNK_ROWS]
            d = xb @ c32.T
            d *= -2.0
            d += csq
            lab = np.argmin(d, axis=1)
            rows = np.arange(len(lab))
            labels[r0 : r0 + len(lab)] = lab
            dist[r0 : r0 + len(lab)] = np.maximum(self.sq[r0 : r0 + len(lab)] + d[rows, lab], 0.0)
            if sums:
                onehot = np.zeros((len(lab), k), dtype=np.float32)
                onehot[rows, lab] = 1.0
                total += onehot.T @ xb  # float32 GEMM per chunk, float64 across chunks
        return labels, dist, total, np.bincount(labels, minlength=k).astype(np.float64)

    def _assign_torch(self, centers: np.ndarray, sums: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        import torch

        k = len(centers)
        c = torch.from_numpy(centers).to(self.device)
        c32 = c.to(torch.float32)
        csq = (c * c).sum(1)
        labels, dist = [], []
        total = torch.zeros((k, self.d), dtype=torch.float64, device=self.device)
        step = 8 * CHUNK_ROWS
        for r0 in range(0, self.n, step):
            xb = self.tx[r0 : r0 + step]
            d = self.tsq[r0 : r0 + step, None] - 2.0 * (xb @ c32.T).to(torch.float64) + csq[None, :]
            m, lab = d.min(1)
            labels.append(lab)
            dist.append(m.clamp_min(0))
            if sums:
                part = torch.zeros((k, self.d), dtype=torch.float32, device=self.device).index_add_(0, lab, xb)
                total += part.to(torch.float64)
        lab = torch.cat(labels)
        counts = torch.bincount(lab, minlength=k).to(torch.float64)
        return (
            lab.to(torch.int32).cpu().numpy(),
            torch.cat(dist).cpu().numpy(),
            total.cpu().numpy(),
            counts.cpu().numpy(),
        )

    def dist_to(self, points: np.ndarray) -> np.ndarray:
        """Squared distances (float64) of every row to each of a few points: shape (n, len(points))."""
        p32 = points.astype(np.float32)
        if self.tx is not None:
            import torch

            dot = (self.tx @ torch.from_numpy(p32).to(self.device).T).cpu().numpy()
        else:
            dot = np.empty((self.n, len(points)), dtype=np.float32)
            for r0 in range(0, self.n, 4 * CHUNK_ROWS):
                dot[r0 : r0 + 4 * CHUNK_ROWS] = self.x[r0 : r0 + 4 * CHUNK_ROWS] @ p32.T
        psq = np.einsum("ij,ij->i", points, points)
        return np.maximum(self.sq[:, None] - 2.0 * dot.astype(np.float64) + psq[None, :], 0.0)

    def inertia(self, centers: np.ndarray, labels: np.ndarray) -> float:
        """Σ‖x − c_label‖² in float64 from the original rows (not from the GEMM distances)."""
        total = 0.0
        shifted = centers + self.mean
        for r0 in range(0, self.n, CHUNK_ROWS):
            diff = self.orig[r0 : r0 + CHUNK_ROWS].astype(np.float64) - shifted[labels[r0 : r0 + CHUNK_ROWS]]
            total += float(np.einsum("ij,ij->", diff, diff))
        return total


def add_centers(data: Data, centers: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Extend `centers` to k rows by greedy k-means++: each new centre is the candidate (of 2 + ln k rows drawn
    with probability ∝ D², the squared distance to the nearest centre so far) that lowers the potential most."""
    if len(centers) == 0:
        first = int(rng.integers(data.n))
        centers = data.x[first : first + 1].astype(np.float64)
    closest = data.assign(centers, sums=False)[1]
    out = list(centers)
    trials = 2 + int(math.log(k))
    while len(out) < k:
        cum = np.cumsum(closest)
        if cum[-1] <= 0:  # every row sits on a centre (duplicate rows): any row will do
            pick = rng.integers(data.n, size=1)
        else:
            pick = np.minimum(np.searchsorted(cum, rng.random(trials) * cum[-1], side="right"), data.n - 1)
        cands = data.x[pick].astype(np.float64)
        pots = np.minimum(closest[:, None], data.dist_to(cands))
        best = int(np.argmin(pots.sum(axis=0)))
        closest = pots[:, best].copy()
        out.append(cands[best])
    return np.asarray(out)


def lloyd(data: Data, centers: np.ndarray, max_iter: int = 300, rtol: float = RTOL) -> KMeansFit:
    """Lloyd iterations from `centers` until converged: labels unchanged, scikit-learn's centre-shift criterion,
    or an iteration that lowers the inertia by less than `rtol` of it. An emptied cluster takes the row farthest
    from its centre (as scikit-learn does)."""
    k = len(centers)
    labels, dist, sums, counts = data.assign(centers)
    tol = TOL * data.variance  # on Σ over centres of ‖shift‖², as scikit-learn: tol · mean feature variance
    iterations = 0
    previous = float(dist.sum())
    while iterations < max_iter:
        iterations += 1
        new_centers = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            new_centers[empty] = data.x[np.argpartition(dist, -empty.size)[-empty.size :]].astype(np.float64)
        shift = float(np.sum((new_centers - centers) ** 2))
        centers = new_centers
        new_labels, dist, sums, counts = data.assign(centers)
        current = float(dist.sum())
        done = np.array_equal(new_labels, labels) or shift <= tol or previous - current <= rtol * current
        labels, previous = new_labels, current
        if done and not empty.size:
            break
    centers = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
    return KMeansFit(k, centers, labels, data.inertia(centers, labels), iterations)


def n_init(k: int) -> int:
    """Fresh k-means++ starts for k: many for small k, where one start lands in a poor local minimum (two true
    clusters merged, a lone far row as a cluster) often enough to matter and starts are cheap; one for large k."""
    return max(1, min(10, round(30 / k)))


def _subsample(data: Data, rows: int, seed: int) -> Data:
    idx = np.sort(np.random.default_rng([seed, rows]).choice(data.n, rows, replace=False))
    return Data(data.orig[idx])


def _fresh_starts(data: Data, k: int, seed: int, count: int, max_iter: int) -> list[np.ndarray]:
    """Centres (in `data`'s coordinates) of `count` fresh greedy k-means++ starts. On large data the starts are
    seeded and iterated on a subsample, and only the one that is best on the full data is kept: seeding quality
    for a fraction of the cost; the full Lloyd then runs once."""
    if count == 1 or data.n <= 2 * SAMPLE_ROWS:
        return [add_centers(data, np.zeros((0, data.d)), k, np.random.default_rng([seed, k, i])) for i in range(count)]
    sample = _subsample(data, SAMPLE_ROWS, seed)
    shift = sample.mean - data.mean
    best = None
    for i in range(count):
        rng = np.random.default_rng([seed, k, i])
        centers = lloyd(sample, add_centers(sample, np.zeros((0, data.d)), k, rng), max_iter).centers + shift
        potential = float(data.assign(centers, sums=False)[1].sum())
        if best is None or potential < best[0]:
            best = (potential, centers)
    return [best[1]]


def fit(data: Data, k: int, seed: int, start: KMeansFit | None = None, max_iter: int = 300) -> KMeansFit:
    """k-means for one k: the best of a warm start (`start`, a solution with fewer centres, plus greedy
    k-means++ centres) and `n_init(k)` fresh greedy k-means++ starts, each run to convergence. Deterministic
    for a seed; with `start`, never worse than it (the sweep's inertia is non-increasing in k)."""
    inits = _fresh_starts(data, k, seed, n_init(k), max_iter)
    if start is not None:
        inits.insert(0, add_centers(data, start.centers, k, np.random.default_rng([seed, k, 1_000])))
    best: KMeansFit | None = None
    for centers in inits:
        result = lloyd(data, centers, max_iter)
        if best is None or result.inertia < best.inertia:
            best = result
    if start is not None and best.inertia > start.inertia:  # only by float rounding: keep the monotone answer
        return KMeansFit(k, best.centers, start.labels.copy(), start.inertia, best.iterations)
    return best
