"""Exact Lloyd k-means written as BLAS, with greedy k-means++ seeding, several starts run side by side, and warm
starts along a sweep of k.

Distances are ‖x‖² − 2·X·Cᵀ + ‖c‖² with one float32 GEMM per chunk of rows; the data are centred first (in
float64), so the large shared mean offset of trained embeddings costs no float32 digits. Centroid sums start from a
float32 GEMM per chunk (one-hot · rows) accumulated in float64 across chunks; after that each pass moves only the
rows that changed cluster from one float64 sum to another (late passes move a few hundred rows of 30,000, and the
sums GEMM was half of a pass at k = 100). The stored inertia is computed exactly in float64 from the original rows.
Lloyd runs to convergence — labels unchanged, scikit-learn's criterion (centre shift ≤ 1e-4 × mean feature
variance), or an iteration that gains under 2e-4 of the inertia — never a mini-batch estimate.

Starts for one k (fresh greedy k-means++ seedings and a warm start from the previous k's solution) run as one
batch: every pass over the rows serves all of them with one GEMM against all their centres, so extra starts
cost little where a pass is bound by reading the rows (small k). A sweep visits k in ascending order, and the
warm start — the previous solution plus new k-means++ centres — can only lower the inertia, so the kept
inertia is non-increasing in k by construction. A sweep's fresh starts are prefixes of a few greedy k-means++
chains seeded once (FreshSeeds): a seeding pass per centre of the largest k, not per centre of every k. With
``use_torch`` the passes run in torch (GPU workers).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")

CHUNK_ROWS = 8192
CENTRE_ROWS = 1024  # rows per block of the centring pass (its float64 temporaries stay in cache)
SAMPLE_ROWS = 16_384  # fresh starts of large data are seeded and screened on this many rows
TOL = 1e-4  # scikit-learn's KMeans default (centre shift)
WARM_ONLY_K = 1_000_000  # (every k keeps its fresh starts: warm starts alone left MiniLM 2 % above exact at k ≥ 35)
RTOL = 2e-4  # an iteration that gains less than this share of the inertia ends Lloyd (bench_kmeans: 1e-4 → 2e-4
#              took MiniLM's sweep from 5.6 s to 5.0 s, its worst inertia / exact from 1.0057 to 1.0064; 1e-3 passed 1.01)


@dataclass
class KMeansFit:
    k: int
    centers: np.ndarray  # float64 (k, d), in the centred coordinates
    labels: np.ndarray  # int32 (n,)
    inertia: float  # float64 Σ‖x − c_label‖², from the original rows
    iterations: int


@dataclass(frozen=True)
class RowThreads:
    """Threads that split each pass over the rows into contiguous spans, one per thread, each with single-threaded
    BLAS (the caller limits it): a pass's GEMMs, argmin and gathers all release the GIL, so the whole pass runs in
    parallel, where one multi-threaded GEMM per chunk leaves the rest of it serial."""

    pool: Executor
    count: int


def each_span(threads: RowThreads | None, n: int, work: Callable[[int, int], T]) -> list[T]:
    """work(r0, r1) over contiguous spans of range(n), one per row thread, or once over all of it without them."""
    if threads is None or n < 2 * threads.count:
        return [work(0, n)]
    step = -(-n // threads.count)
    return list(threads.pool.map(lambda r0: work(r0, min(n, r0 + step)), range(0, n, step)))


class Data:
    """The rows to cluster: centred (float64 mean removed), stored as float32, with float64 squared norms."""

    def __init__(self, x: np.ndarray, threads: RowThreads | None = None) -> None:
        self.threads = threads if threads is not None and threads.count > 1 else None
        self.n, self.d = x.shape
        self.mean = x.mean(axis=0, dtype=np.float64)
        centred = np.empty(x.shape, dtype=np.float32)
        self.sq = np.empty(self.n)  # ‖x − μ‖² of the float32 rows the passes use
        self.total_ss = 0.0  # Σ‖x − μ‖², exactly from the original rows (float64), in the same pass
        for r0 in range(0, self.n, CENTRE_ROWS):
            exact = x[r0 : r0 + CENTRE_ROWS].astype(np.float64) - self.mean
            self.total_ss += float(np.einsum("ij,ij->", exact, exact))
            stored = centred[r0 : r0 + CENTRE_ROWS]
            stored[:] = exact
            self.sq[r0 : r0 + len(stored)] = np.einsum("ij,ij->i", stored, stored, dtype=np.float64)
        self.x = centred
        self.orig = x
        self.variance = float(self.sq.sum()) / (self.n * self.d)
        self.device = "cpu"
        self.tx = self.tsq = None
        self.sample_distances: tuple | None = None  # the silhouette's fixed sample and its distances (embedding.py)

    def each_span(self, work: Callable[[int, int], T]) -> list[T]:
        """work(r0, r1) over contiguous row spans, one per row thread (RowThreads), or over all rows without them."""
        return each_span(self.threads, self.n, work)

    def use_torch(self, device: str) -> None:
        """Run the passes over the rows in torch on `device` (a GPU worker's "cuda", or "cpu" in tests)."""
        import torch

        self.device = device
        self.tx = torch.from_numpy(self.x).to(device)
        self.tsq = torch.from_numpy(self.sq).to(device)

    def assign(self, centers: np.ndarray, sums: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One pass over the rows for L sets of k centres (shape (L, k, d)): labels (L, n), squared distance to the
        nearest centre (L, n), per-label sums (L, k, d) and sizes (L, k).

        The nearest centre minimises ‖c‖² − 2·x·c (one float32 GEMM against all L·k centres; ‖x‖² is common to
        all); the distance adds the row's float64 ‖x‖² back. Sums: a one-hot float32 GEMM, float64 across chunks."""
        if self.tx is not None:
            return self._assign_torch(centers, sums)
        nsets, k, _ = centers.shape
        flat = centers.reshape(nsets * k, self.d).astype(np.float32)
        csq = np.einsum("ij,ij->i", flat, flat)
        labels = np.empty((nsets, self.n), dtype=np.int32)
        dist = np.empty((nsets, self.n), dtype=np.float64)
        offsets = (np.arange(nsets) * k)[None, :]

        def span(s0: int, s1: int) -> tuple[np.ndarray, np.ndarray | None]:
            counts = np.zeros(nsets * k, dtype=np.int64)
            total = np.zeros((nsets * k, self.d), dtype=np.float64) if sums else None
            for r0 in range(s0, s1, CHUNK_ROWS):
                r1 = min(s1, r0 + CHUNK_ROWS)
                xb = self.x[r0:r1]
                m = len(xb)
                g = xb @ flat.T
                g *= -2.0
                g += csq
                g = g.reshape(m, nsets, k)
                lab = np.argmin(g, axis=2)  # (m, L)
                best = np.take_along_axis(g, lab[:, :, None], axis=2)[:, :, 0]
                labels[:, r0:r1] = lab.T
                dist[:, r0:r1] = np.maximum(self.sq[r0:r1, None] + best, 0.0).T
                counts += np.bincount((lab + offsets).ravel(), minlength=nsets * k)
                if sums:
                    onehot = np.zeros((m, nsets * k), dtype=np.float32)
                    np.put_along_axis(onehot, lab + offsets, 1.0, axis=1)
                    total += onehot.T @ xb  # float32 GEMM per chunk, float64 across chunks
            return counts, total

        parts = self.each_span(span)
        counts = sum(p[0] for p in parts).reshape(nsets, k).astype(np.float64)
        total = sum(p[1] for p in parts) if sums else np.zeros((nsets * k, self.d))
        return labels, dist, total.reshape(nsets, k, self.d), counts

    def _assign_torch(self, centers: np.ndarray, sums: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        import torch

        nsets, k, _ = centers.shape
        flat = torch.from_numpy(centers.reshape(nsets * k, self.d)).to(self.device)
        flat32 = flat.to(torch.float32)
        csq = (flat32.to(torch.float64) ** 2).sum(1)
        offsets = (torch.arange(nsets, device=self.device) * k)[None, :]
        labels, dist = [], []
        total = torch.zeros((nsets * k, self.d), dtype=torch.float64, device=self.device)
        step = 4 * CHUNK_ROWS
        for r0 in range(0, self.n, step):
            xb = self.tx[r0 : r0 + step]
            g = (csq[None, :] - 2.0 * (xb @ flat32.T).to(torch.float64)).reshape(len(xb), nsets, k)
            best, lab = g.min(2)
            labels.append(lab)
            dist.append((self.tsq[r0 : r0 + step, None] + best).clamp_min(0))
            if sums:
                index = (lab + offsets).reshape(-1)
                rows = xb.repeat_interleave(nsets, dim=0)
                part = torch.zeros((nsets * k, self.d), dtype=torch.float32, device=self.device)
                total += part.index_add_(0, index, rows).to(torch.float64)
        lab = torch.cat(labels).T.contiguous()
        counts = torch.stack([torch.bincount(lab[i], minlength=k) for i in range(nsets)]).to(torch.float64)
        return (
            lab.to(torch.int32).cpu().numpy(),
            torch.cat(dist).T.cpu().numpy(),
            total.reshape(nsets, k, self.d).cpu().numpy(),
            counts.cpu().numpy(),
        )

    def dist_to(self, points: np.ndarray) -> np.ndarray:
        """Squared distances (float64) of every row to each of a few points: shape (n, len(points))."""
        p32 = points.astype(np.float32)
        psq = np.einsum("ij,ij->i", points, points)
        if self.tx is not None:
            import torch

            dot = (self.tx @ torch.from_numpy(p32).to(self.device).T).cpu().numpy()
            return np.maximum(self.sq[:, None] - 2.0 * dot.astype(np.float64) + psq[None, :], 0.0)
        out = np.empty((self.n, len(points)), dtype=np.float64)

        def span(s0: int, s1: int) -> None:
            for r0 in range(s0, s1, CHUNK_ROWS):
                r1 = min(s1, r0 + CHUNK_ROWS)
                dot = (self.x[r0:r1] @ p32.T).astype(np.float64)
                np.maximum(self.sq[r0:r1, None] - 2.0 * dot + psq[None, :], 0.0, out=out[r0:r1])

        self.each_span(span)
        return out

    def inertia(self, centers: np.ndarray, labels: np.ndarray) -> float:
        """Σ‖x − c_label‖² in float64 from the original rows (not from the GEMM distances)."""
        total = 0.0
        shifted = centers + self.mean
        for r0 in range(0, self.n, CHUNK_ROWS):
            diff = self.orig[r0 : r0 + CHUNK_ROWS].astype(np.float64) - shifted[labels[r0 : r0 + CHUNK_ROWS]]
            total += float(np.einsum("ij,ij->", diff, diff))
        return total


def seed_centers(data: Data, partial: list[np.ndarray], k: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """Complete several centre sets to k centres each by greedy k-means++ (shape (L, k, d)); see seed_chains."""
    return np.asarray(seed_chains(data, partial, [k] * len(partial), rngs))


def seed_chains(
    data: Data, partial: list[np.ndarray], lengths: list[int], rngs: list[np.random.Generator]
) -> list[np.ndarray]:
    """Complete each centre set to its length by greedy k-means++: each new centre is the candidate — of
    2 + ln(length) rows drawn with probability ∝ D², the squared distance to the nearest centre of its set so far —
    that lowers the set's potential most. One pass over the rows serves every set's candidates."""
    sets = [list(p) for p in partial]
    for i, s in enumerate(sets):
        if not s:
            s.append(data.x[int(rngs[i].integers(data.n))].astype(np.float64))
    closest = np.stack([data.dist_to(np.asarray(s)).min(axis=1) for s in sets])  # (L, n)
    trials = [2 + int(math.log(length)) for length in lengths]
    while True:
        active = [i for i, s in enumerate(sets) if len(s) < lengths[i]]
        if not active:
            return [np.asarray(s) for s in sets]
        picks = []
        for i in active:
            cum = np.cumsum(closest[i])
            if cum[-1] <= 0:  # every row sits on a centre (duplicate rows): any rows will do
                picks.append(rngs[i].integers(data.n, size=trials[i]))
            else:
                draw = np.searchsorted(cum, rngs[i].random(trials[i]) * cum[-1], side="right")
                picks.append(np.minimum(draw, data.n - 1))
        cands = data.x[np.concatenate(picks)].astype(np.float64)
        dists = data.dist_to(cands)  # (n, Σ trials of the active sets)
        cols = np.cumsum([0] + [trials[i] for i in active])
        parts = each_span(data.threads, data.n, functools.partial(_potentials, closest, dists, active, cols))
        chosen = [int(cols[j]) + int(np.argmin(sum(p[j] for p in parts))) for j in range(len(active))]
        each_span(data.threads, data.n, functools.partial(_keep, closest, dists, active, chosen))
        for i, c in zip(active, chosen):
            sets[i].append(cands[c])


def _potentials(
    closest: np.ndarray, dists: np.ndarray, active: list[int], cols: np.ndarray, r0: int, r1: int
) -> list[np.ndarray]:
    """Over rows r0..r1: each candidate's share of its set's potential if it were added (one array per set)."""
    return [
        np.minimum(closest[i][r0:r1, None], dists[r0:r1, cols[j] : cols[j + 1]]).sum(axis=0)
        for j, i in enumerate(active)
    ]


def _keep(closest: np.ndarray, dists: np.ndarray, active: list[int], chosen: list[int], r0: int, r1: int) -> None:
    """Over rows r0..r1: each set's distance to its nearest centre, now that its chosen candidate joined it."""
    for i, c in zip(active, chosen):
        np.minimum(closest[i][r0:r1], dists[r0:r1, c], out=closest[i][r0:r1])


class FreshSeeds:
    """The fresh starts of every k of a sweep, cut from a few shared greedy k-means++ chains.

    Chain i is seeded once, to the largest k of the range that takes i + 1 fresh starts, and the fresh starts for
    k are the first k centres of chains 0 … n_init(k) − 1. A chain's first k picks do not depend on its later
    ones, so each start is a greedy k-means++ seeding for k (with the chain's 2 + ln(length) candidates per pick);
    the sweep pays max k seeding passes over the rows instead of Σ k. `data` is what the fresh starts are seeded
    on: the rows, or the subsample of large data."""

    def __init__(self, data: Data, k_min: int, k_max: int, seed: int) -> None:
        ks = range(max(1, k_min), k_max + 1)
        lengths = [max(k for k in ks if n_init(k) > i) for i in range(n_init(ks[0]))] if len(ks) else []
        rngs = [np.random.default_rng([seed, 2_000, i]) for i in range(len(lengths))]
        self.chains = seed_chains(data, [[] for _ in lengths], lengths, rngs) if lengths else []

    def starts(self, k: int) -> np.ndarray | None:
        """(n_init(k), k, d), or None where k lies outside the range the chains were seeded for."""
        count = n_init(k)
        if count > len(self.chains) or len(self.chains[count - 1]) < k:
            return None
        return np.asarray([chain[:k] for chain in self.chains[:count]])


def lloyd_batch(
    data: Data, centers: np.ndarray, max_iter: int = 300, rtol: float = RTOL
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lloyd iterations of L starts side by side (centers (L, k, d)) until every one has converged (labels
    unchanged, scikit-learn's centre-shift criterion, or a gain under `rtol` of its inertia); an emptied cluster
    takes the row farthest from its centre (as scikit-learn does). Returns (centres, labels, Σ of GEMM distances,
    iterations), one per start."""
    nsets, k, _ = centers.shape
    tol = TOL * data.variance  # on Σ over centres of ‖shift‖², as scikit-learn: tol · mean feature variance
    labels, dist, sums, counts = data.assign(centers)
    previous = dist.sum(axis=1)
    active = np.ones(nsets, dtype=bool)
    iterations = np.zeros(nsets, dtype=np.int64)
    while active.any() and iterations.max() < max_iter:
        idx = np.flatnonzero(active)
        new = np.where(counts[idx, :, None] > 0, sums[idx] / np.maximum(counts[idx], 1)[:, :, None], centers[idx])
        refilled = np.zeros(len(idx), dtype=bool)
        for j, i in enumerate(idx):
            empty = np.flatnonzero(counts[i] == 0)
            if empty.size:
                new[j, empty] = data.x[np.argpartition(dist[i], -empty.size)[-empty.size :]].astype(np.float64)
                refilled[j] = True
        shift = np.sum((new - centers[idx]) ** 2, axis=(1, 2))
        centers[idx] = new
        lab, dst, _, cnt = data.assign(new, sums=False)
        current = dst.sum(axis=1)
        unchanged = np.ones(len(idx), dtype=bool)
        for j, i in enumerate(idx):
            moved = np.flatnonzero(lab[j] != labels[i])
            if moved.size:
                unchanged[j] = False
                _move_rows(data, sums[i], moved, labels[i, moved], lab[j, moved])
        done = (unchanged | (shift <= tol) | (previous[idx] - current <= rtol * current)) & ~refilled
        labels[idx], dist[idx], counts[idx], previous[idx] = lab, dst, cnt, current
        iterations[idx] += 1
        active[idx[done]] = False
    centers = np.where(counts[:, :, None] > 0, sums / np.maximum(counts, 1)[:, :, None], centers)
    ssb = np.sum(np.sum(sums**2, axis=2) / np.maximum(counts, 1), axis=1)  # Σ_c ‖s_c‖² / n_c (centred data)
    return centers, labels, previous, iterations, ssb


def _move_rows(data: Data, sums: np.ndarray, rows: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
    """Take rows that changed cluster out of their old cluster's float64 sum and into the new one's (one ±1 GEMM
    over those rows only: late iterations move a few rows, so a pass needs no sums GEMM over all of them). Float32
    per chunk, float64 across chunks, as the sums of `Data.assign` (float64 per chunk took 9 of a 44 s sweep)."""

    def span(s0: int, s1: int) -> np.ndarray:
        part = np.zeros_like(sums)
        for r0 in range(s0, s1, CHUNK_ROWS):
            r1 = min(s1, r0 + CHUNK_ROWS)
            cols = np.arange(r1 - r0)
            signs = np.zeros((len(sums), len(cols)), dtype=np.float32)
            signs[new[r0:r1], cols] = 1.0
            signs[old[r0:r1], cols] = -1.0
            part += (signs @ data.x[rows[r0:r1]]).astype(np.float64)  # float32 GEMM per chunk, as assign's sums
        return part

    for part in each_span(data.threads, rows.size, span):
        sums += part


def _inertia(data: Data, centers: np.ndarray, labels: np.ndarray, ssb: float) -> float:
    """SSW of a partition, float64. Where the clusters explain at most half the total sum of squares (embeddings
    as trained models have them) SSW = TSS − SSB is exact to ~1e-8 relative from the float64-accumulated sums;
    otherwise the subtraction would cancel digits and SSW is summed exactly over the rows."""
    if ssb <= 0.5 * data.total_ss:
        return data.total_ss - ssb
    return data.inertia(centers, labels)


def n_init(k: int) -> int:
    """Fresh k-means++ starts for k: many for small k, where a start lands in a poor local minimum (two true
    clusters merged, a lone far row as a cluster) often enough to matter and extra starts are nearly free; one
    for large k."""
    return max(1, min(10, round(30 / k)))


def _subsample(data: Data, rows: int, seed: int) -> Data:
    idx = np.sort(np.random.default_rng([seed, rows]).choice(data.n, rows, replace=False))
    return Data(data.orig[idx], data.threads)


def _large(data: Data) -> bool:
    return data.n > 2 * SAMPLE_ROWS


def _fresh(
    data: Data, sample: Data | None, k: int, seed: int, count: int, max_iter: int, seeds: FreshSeeds | None = None
) -> np.ndarray:
    """Centre sets of fresh greedy k-means++ starts, shape (L, k, d), cut from `seeds` where given. On large data
    they are seeded and iterated on a subsample (`sample`), and only the one that is best on the full rows is kept
    (L = 1)."""
    init = seeds.starts(k) if seeds is not None else None
    if init is None or len(init) != count:
        rngs = [np.random.default_rng([seed, k, i]) for i in range(count)]
        init = seed_centers(data if sample is None else sample, [[] for _ in range(count)], k, rngs)
    if sample is None:
        return init
    centers = lloyd_batch(sample, init, max_iter)[0]
    centers += sample.mean - data.mean
    potentials = data.assign(centers, sums=False)[1].sum(axis=1)
    return centers[[int(np.argmin(potentials))]]


def _warm(data: Data, sample: Data | None, start: KMeansFit, k: int, seed: int) -> np.ndarray:
    """The previous solution plus greedy k-means++ centres (drawn from the subsample on large data), (1, k, d)."""
    rng = [np.random.default_rng([seed, k, 1_000])]
    if sample is None:
        return seed_centers(data, [list(start.centers)], k, rng)
    shift = sample.mean - data.mean
    return seed_centers(sample, [list(start.centers - shift)], k, rng) + shift


def sampler(data: Data, seed: int) -> Data | None:
    """The subsample that seeds and screens starts on large data (None for small data: everything runs full)."""
    if not _large(data):
        return None
    sample = _subsample(data, SAMPLE_ROWS, seed)
    if data.device != "cpu":
        sample.use_torch(data.device)
    return sample


def fit(
    data: Data,
    k: int,
    seed: int,
    start: KMeansFit | None = None,
    max_iter: int = 300,
    sample: Data | None = None,
    seeds: FreshSeeds | None = None,
) -> KMeansFit:
    """k-means for one k: the best of a warm start (`start`, a solution with fewer centres, plus greedy
    k-means++ centres) and `n_init(k)` fresh greedy k-means++ starts (cut from a sweep's `seeds` where given),
    run side by side to convergence (on large data the fresh starts are screened on `sample` and the best one
    runs). Deterministic for a seed; with `start`, never worse than it (the sweep's inertia is non-increasing in
    k)."""
    if sample is None and _large(data):
        sample = sampler(data, seed)
    fresh = n_init(k) if start is None or k < WARM_ONLY_K else 0
    sets = _fresh(data, sample, k, seed, fresh, max_iter, seeds) if fresh else np.zeros((0, k, data.d))
    if start is not None:
        sets = np.concatenate([_warm(data, sample, start, k, seed), sets])
    centers, labels, potentials, iterations, ssb = lloyd_batch(data, sets, max_iter)
    best = int(np.argmin(potentials))
    result = KMeansFit(
        k, centers[best], labels[best], _inertia(data, centers[best], labels[best], ssb[best]), int(iterations[best])
    )
    if start is not None and result.inertia > start.inertia:  # only by float rounding: keep the monotone answer
        centers = np.vstack([start.centers, result.centers[len(start.centers) :]])
        return KMeansFit(k, centers, start.labels.copy(), start.inertia, result.iterations)
    return result
