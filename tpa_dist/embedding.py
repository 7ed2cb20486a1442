"""Embedding-space clustering: a k-means sweep over the token-embedding matrix, k chosen by the one-way
ANOVA F statistic (Calinski–Harabasz pseudo-F), and representative tokens per cluster as real strings.

The sweep runs as Ray tasks (one per k, the matrix shared through the object store); every F is computed
in closed form from cluster sizes and means — no per-point Python loop.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.stats import f as f_dist

from .catalog import ModelCatalog, TensorInfo
from .reader import Region, iter_blocks

MINIBATCH_ROWS = 20_000  # exact (Lloyd) k-means below this many rows, mini-batch k-means above


@dataclass(frozen=True)
class EmbeddingSettings:
    k_min: int = 2
    k_max: int = 100
    k_step: int | None = None  # None: coarse-to-fine search
    seed: int = 0
    representatives: int = 10
    silhouette_sample: int = 2000


def find_embeddings(catalog: ModelCatalog) -> list[TensorInfo]:
    """The token-embedding matrix, plus the output head when it is a separate (untied) matrix.

    Position and token-type embeddings are never chosen (BERT's position table is not the vocabulary).
    """
    tensors = [t for t in catalog.tensors() if t.ndim == 2]
    vocab = catalog.config.get("vocab_size")
    tokens = [t for t in tensors if t.block_type == "embedding"]
    if isinstance(vocab, int) and vocab > 0:
        tokens.sort(key=lambda t: (t.shape[0] != vocab, -t.shape[0]))
    else:
        tokens.sort(key=lambda t: -t.shape[0])
    out = tokens[:1]
    heads = [t for t in tensors if t.block_type == "output" and (not out or t.shape == out[0].shape)]
    if heads and catalog.config.get("tie_word_embeddings") is not True:
        out.append(heads[0])
    return out


def load_embedding(info: TensorInfo) -> np.ndarray:
    """The matrix as float32 rows (the values are stored in ≤ 32 bits: exact)."""
    region = Region(info.name, info.path, info.start, info.dtype, info.shape[0], info.shape[1])
    return np.concatenate([b.astype(np.float32) for b in iter_blocks(region, 64 << 20)], axis=0)


def anova_f(x: np.ndarray, labels: np.ndarray, k: int, chunk: int = 16384) -> tuple[float, float, float, float]:
    """(F, p-value, SSB, SSW) of a one-way ANOVA of the rows of x grouped by labels (= Calinski–Harabasz).

    Sums are accumulated in float64 over row chunks, so a 152k × 2560 float32 matrix is never copied whole.
    """
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
    groups = int(nonempty.sum())
    if groups < 2 or n <= groups or ssw == 0:
        return math.inf if ssw == 0 and groups > 1 else math.nan, 0.0, ssb, ssw
    f_stat = (ssb / (groups - 1)) / (ssw / (n - groups))
    return f_stat, float(f_dist.sf(f_stat, groups - 1, n - groups)), ssb, ssw


def torch_kmeans(
    x: np.ndarray, k: int, seed: int, device: str, n_init: int = 3, max_iter: int = 100, tol: float = 1e-4
) -> np.ndarray:
    """Exact (Lloyd) k-means with k-means++ seeding in torch — on a GPU every iteration over a 152k × 2560
    matrix is a few milliseconds, so no mini-batch approximation is needed there. Returns labels."""
    import torch

    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    best_labels, best_inertia = None, math.inf
    sq = (data * data).sum(1)
    for _ in range(n_init):
        first = int(torch.randint(data.shape[0], (1,), generator=gen))
        centers = data[first : first + 1].clone()
        closest = (sq - 2 * data @ centers[0] + centers[0] @ centers[0]).clamp_min(0)
        for _c in range(1, k):  # k-means++: next center with probability ∝ squared distance
            probs = (closest / closest.sum()).cpu() if float(closest.sum()) > 0 else None
            pick = (
                int(torch.multinomial(probs, 1, generator=gen))
                if probs is not None
                else int(torch.randint(data.shape[0], (1,), generator=gen))
            )
            centers = torch.cat([centers, data[pick : pick + 1]])
            d_new = (sq - 2 * data @ data[pick] + data[pick] @ data[pick]).clamp_min(0)
            closest = torch.minimum(closest, d_new)
        for _it in range(max_iter):
            dist = sq[:, None] - 2 * data @ centers.T + (centers * centers).sum(1)[None, :]
            labels = dist.argmin(1)
            counts = torch.bincount(labels, minlength=k).to(data.dtype)
            sums = torch.zeros_like(centers).index_add_(0, labels, data)
            moved = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centers)
            shift = float(((moved - centers) ** 2).sum())
            centers = moved
            if shift <= tol * float((centers * centers).sum()) / max(k, 1) * 1e-2:
                break
        dist = sq[:, None] - 2 * data @ centers.T + (centers * centers).sum(1)[None, :]
        inertia, labels = dist.min(1)
        total = float(inertia.clamp_min(0).sum())
        if total < best_inertia:
            best_inertia, best_labels = total, labels
    return best_labels.cpu().numpy().astype(np.int32)


def fit_k(x: np.ndarray, k: int, seed: int, silhouette_sample: int, device: str = "cpu") -> dict:
    """k-means for one k and its statistics. CPU: exact Lloyd (scikit-learn) below MINIBATCH_ROWS rows,
    mini-batch above; GPU ("cuda", or "torch-cpu" for fake-GPU tests): exact Lloyd in torch."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.metrics import silhouette_score

    t0 = time.perf_counter()
    if device != "cpu":
        labels = torch_kmeans(x, k, seed, "cpu" if device == "torch-cpu" else device)
        method = "kmeans_torch_" + ("gpu" if device.startswith("cuda") else "cpu")
    elif x.shape[0] > MINIBATCH_ROWS:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=4096, n_init=3, max_no_improvement=20)
        method = "minibatch_kmeans"
        labels = model.fit_predict(x).astype(np.int32)
    else:
        model = KMeans(n_clusters=k, random_state=seed, n_init=4)
        method = "kmeans"
        labels = model.fit_predict(x).astype(np.int32)
    f_stat, p_value, _ssb, ssw = anova_f(x, labels, k)
    pick = np.random.default_rng(seed).permutation(x.shape[0])[: min(silhouette_sample, x.shape[0])]
    sampled = labels[pick]
    sil = None
    if 2 <= len(np.unique(sampled)) < len(pick):  # silhouette needs 2..n-1 distinct labels in the sample
        sil = float(silhouette_score(x[pick], sampled))
    return {
        "k": k,
        "f_stat": f_stat,
        "p_value": p_value,
        "inertia": ssw,
        "silhouette": sil,
        "labels": labels,
        "method": method,
        "seconds": time.perf_counter() - t0,
    }


def coarse_grid(k_min: int, k_max: int, points: int = 8) -> list[int]:
    return sorted({int(round(v)) for v in np.geomspace(k_min, k_max, points)})


def fine_grid(coarse: list[int], best: int, points: int = 8) -> list[int]:
    """k values between the coarse neighbours of the best coarse k, not already tried."""
    i = coarse.index(best)
    lo, hi = coarse[max(0, i - 1)], coarse[min(len(coarse) - 1, i + 1)]
    step = max(1, (hi - lo) // points)
    return [k for k in range(lo, hi + 1, step) if k not in coarse]


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


def representatives(x: np.ndarray, labels: np.ndarray, k: int, n: int) -> list[dict]:
    """Per cluster: size, centroid norm, and the ids of the n members nearest the centroid."""
    out = []
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            out.append({"cluster": c, "size": 0, "centroid_norm": None, "ids": []})
            continue
        centroid = x[idx].mean(axis=0, dtype=np.float64)
        dist = np.sum((x[idx] - centroid) ** 2, axis=1)
        nearest = idx[np.argsort(dist, kind="stable")[:n]]
        out.append(
            {
                "cluster": c,
                "size": int(idx.size),
                "centroid_norm": float(np.linalg.norm(centroid)),
                "ids": [int(i) for i in nearest],
            }
        )
    return out
