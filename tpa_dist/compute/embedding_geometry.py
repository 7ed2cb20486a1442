"""The geometry of a token embedding over its clustered rows: how anisotropic it is (mean pairwise cosine, Ethayarajh
2019), how few directions dominate (top principal components' shares, participation ratio), the partition-function
isotropy of Mu & Viswanath (2018) before and after their "all-but-the-top" post-processing, and its row norms (which
track token frequency). Never a float64 copy of the whole matrix.

Up to WORK multiply-adds (n · d²; all-MiniLM-L6-v2: 4.4e9) everything is exact in float64 from the d × d Gram. Above
it (151,936 × 2,560: 1e12, tens of seconds on 2 cores) the mean cosines, norms and the covariance's trace stay exact
over every row, the top two principal components come from block subspace iteration on the exact covariance
operator (top_pc_shares holds those two, to about 1e-5 relative), the participation ratio's Σλ² from the unbiased
pair estimate Σ_{i≠j} ((w_i−μ)·(w_j−μ))² / (m(m−1)) over a seeded sample of m rows, and the isotropies over that
sample (`sample_rows` says how many rows; NULL when all)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

TOP_PCS = 10  # principal components whose variance shares are stored
BLOCK_ROWS = 1024  # rows per pass block: small enough to stay in cache between its two products
WORK = 2e10  # n · d² up to which everything is exact (above: see the module's docstring)
SUBSPACE = 8  # axes the subspace iteration of the top two principal components carries
MAX_STEPS = 30
RESIDUAL_TOL = 1e-3  # Ritz residual ≤ this × its value: eigenvalues to about 1e-6
VALUE_TOL = 1e-5  # or both Ritz values moved less than this (relative) in a step (a flat spectrum's slow axes)


@dataclass
class Geometry:
    columns: dict[str, object]  # embedding_geometry's columns
    mean: np.ndarray  # the mean row
    axes: np.ndarray  # the top two principal axes (d × 2), for the projection figure


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given the mean of their positions (scipy.stats.rankdata's 'average')."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2.0  # positions starts+1 … ends, averaged
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's of the average ranks (as scipy.stats.spearmanr, without importing
    scipy.stats — 0.7 s of the embedding step's start in a fresh worker)."""
    ra, rb = average_ranks(np.asarray(a, dtype=np.float64)), average_ranks(np.asarray(b, dtype=np.float64))
    ra -= ra.mean()
    rb -= rb.mean()
    return float(ra @ rb / np.sqrt((ra @ ra) * (rb @ rb)))


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """log Σ_i exp(a[i, j]) per column j, stably."""
    top = a.max(axis=0)
    return top + np.log(np.exp(a - top).sum(axis=0))


def isotropy_of(log_z: np.ndarray) -> float:
    """Mu & Viswanath's I(W) = min_c Z(c) / max_c Z(c): 1 when isotropic, near 0 with a shared direction."""
    return float(np.exp(log_z.min() - log_z.max()))


def _isotropies(
    rows: np.ndarray, mean: np.ndarray, gram_vecs: np.ndarray, cov_vecs: np.ndarray, top_d: int
) -> tuple[float, float]:
    """I(W) over c the eigenvectors of WᵀW (`gram_vecs`), and I after removing the mean and the top `top_d` principal
    directions (that W's WᵀW has the covariance's eigenvectors `cov_vecs`, descending). Directions missing from
    either set (a sample with fewer rows than columns has a null space) and the removed ones project every row to
    0, so Z = rows there."""
    dim, count = rows.shape[1], len(rows)
    log_z = np.full(gram_vecs.shape[1], -np.inf)
    log_post = np.full(cov_vecs.shape[1] - top_d, -np.inf)
    for i in range(0, count, BLOCK_ROWS):
        b = np.asarray(rows[i : i + BLOCK_ROWS], dtype=np.float64)  # a block in float64, never the whole matrix
        log_z = np.logaddexp(log_z, _logsumexp_rows(b @ gram_vecs))
        log_post = np.logaddexp(log_post, _logsumexp_rows((b - mean) @ cov_vecs[:, top_d:]))
    null = np.full(dim - gram_vecs.shape[1], np.log(count))
    removed = np.full(top_d + dim - cov_vecs.shape[1], np.log(count))
    return isotropy_of(np.concatenate([log_z, null])), isotropy_of(np.concatenate([log_post, removed]))


def geometry(x: np.ndarray, row_ids: np.ndarray, seed: int = 0) -> Geometry:
    """The embedding_geometry columns of rows `x` (token ids `row_ids`, for the norm–id rank correlation).

    mean_cosine: Σ_{i≠j} cos(w_i, w_j) / (n(n−1)), exactly ((‖Σ u_i‖² − n) / (n(n−1)) with unit rows u_i), and the
    same for the centred rows; top_pc_share, top_pc_shares, participation_ratio: λ₁/Σλ, λ_i/Σλ, (Σλ)²/Σλ² of the
    covariance's eigenvalues; isotropy, isotropy_all_but_top (D = d/100)."""
    n, dim = x.shape
    slices = [slice(i, min(i + BLOCK_ROWS, n)) for i in range(0, n, BLOCK_ROWS)]
    exact = n * dim * dim <= WORK
    gram = np.zeros((dim, dim)) if exact else None
    total, unit_sum, norms = np.zeros(dim), np.zeros(dim), np.empty(n)
    for s in slices:
        b = np.asarray(x[s], dtype=np.float64)
        if gram is not None:
            gram += b.T @ b
        total += b.sum(axis=0)
        norms[s] = np.linalg.norm(b, axis=1)
        unit_sum += (b / norms[s, None]).sum(axis=0)
    mean = total / n
    # the centred rows' norms and unit sum without forming them: r_i² = ‖w_i‖² − 2 w_i·μ + ‖μ‖²,
    # Σ (w_i − μ)/r_i = Σ w_i/r_i − μ Σ 1/r_i (two products with the rows)
    dots = np.concatenate([np.asarray(x[s], dtype=np.float64) @ mean for s in slices])
    r = np.sqrt(np.maximum(norms**2 - 2 * dots + mean @ mean, 0.0))
    inv = np.divide(1.0, r, out=np.zeros(n), where=r > 0)
    centered_unit = sum(inv[s] @ np.asarray(x[s], dtype=np.float64) for s in slices) - mean * inv.sum()
    trace = float((r**2).sum())
    trace /= n - 1  # Σλ: the covariance's trace, exact
    top_d = max(1, round(dim / 100))  # Mu & Viswanath's D ≈ d/100
    if exact:
        cov = (gram - n * np.outer(mean, mean)) / (n - 1)
        evals, vecs = np.linalg.eigh(cov)
        evals, vecs = evals[::-1].clip(min=0.0), vecs[:, ::-1]
        top, sum_sq = evals[:TOP_PCS], float((evals**2).sum())
        gram_vecs = np.linalg.eigh(gram)[1]
        iso, iso_post = _isotropies(x, mean, gram_vecs, vecs, top_d)
        sample_rows = None
        axes = vecs[:, :2]
    else:
        m = min(n, max(2000, min(5000, int(WORK / dim**2))))
        pick = np.sort(np.random.default_rng(seed).choice(n, m, replace=False))
        rows = np.asarray(x[pick], dtype=np.float64)
        c = rows - mean
        # E[((w_i−μ)·(w_j−μ))²] over pairs i ≠ j: Σ_ij (c_i·c_j)² = ‖CCᵀ‖_F² = ‖CᵀC‖_F² (d × d, never the m × m
        # pair matrix), less the diagonal's Σ‖c_i‖⁴
        ctc = c.T @ c
        sq_norms = np.einsum("ij,ij->i", c, c)
        sum_sq = float((np.einsum("ij,ij->", ctc, ctc) - (sq_norms**2).sum()) / (m * (m - 1)))
        # the eigenvectors of the sample's WᵀW and of its (centred) covariance, descending (float32 divide and
        # conquer: half the time of float64 at d = 2,560; a sample's directions, not an exact quantity)
        gram_vecs = _eigenvectors(rows.T @ rows)
        sample_vecs = _eigenvectors(ctc)[:, ::-1]
        iso, iso_post = _isotropies(rows, mean, gram_vecs, sample_vecs, top_d)
        top, axes = _top_components(x, mean, n, sample_vecs[:, :SUBSPACE])
        sample_rows = m
    rho = spearman(norms, row_ids) if n > 2 and np.ptp(norms) > 0 else float("nan")
    columns = {
        "rows": n,
        "cols": dim,
        "mean_cosine": float((unit_sum @ unit_sum - n) / (n * (n - 1))),
        "mean_cosine_centered": float((centered_unit @ centered_unit - n) / (n * (n - 1))),
        "top_pc_share": float(top[0] / trace) if trace > 0 else None,
        "top_pc_shares": [float(v / trace) for v in top] if trace > 0 else [],
        "participation_ratio": float(trace**2 / sum_sq) if sum_sq > 0 else None,
        "isotropy": iso,
        "isotropy_all_but_top": iso_post,
        "all_but_top_d": top_d,
        "sample_rows": sample_rows,
        "mean_vector_norm": float(np.linalg.norm(mean)),
        "norm_mean": float(norms.mean()),
        "norm_std": float(norms.std()),
        "norm_min": float(norms.min()),
        "norm_max": float(norms.max()),
        "norm_id_spearman": None if rho != rho else float(rho),
    }
    return Geometry(columns, mean, axes)


def _eigenvectors(sym: np.ndarray) -> np.ndarray:
    """The eigenvectors (ascending eigenvalues) of a symmetric matrix, in float32, back as float64."""
    return scipy.linalg.eigh(sym.astype(np.float32), driver="evd")[1].astype(np.float64)


def _top_components(x: np.ndarray, mean: np.ndarray, n: int, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The top two covariance eigenvalues (descending) and their axes, by block subspace iteration with
    Rayleigh–Ritz on the covariance operator V ↦ (Xᵀ(XV) − n μ(μᵀV)) / (n − 1) — one pass over the rows per step,
    nothing d × d — started from the sample's top SUBSPACE axes and run until both Ritz pairs' residuals are
    under RESIDUAL_TOL of their values (their eigenvalues then agree to about its square) or both values settle
    to VALUE_TOL (a near-flat spectrum, whose top axes are barely defined, converges slowly in the axes only)."""
    xs = np.asarray(x, dtype=np.float32) if x.dtype != np.float64 else x
    v = np.linalg.qr(start)[0]
    previous = None
    for _ in range(MAX_STEPS):
        w = np.zeros_like(v)
        for i in range(0, n, BLOCK_ROWS):
            b = xs[i : i + BLOCK_ROWS]
            w += (b.T @ (b @ v.astype(b.dtype))).astype(np.float64)
        w = (w - n * np.outer(mean, mean @ v)) / (n - 1)
        theta, s_vecs = np.linalg.eigh(v.T @ w)
        theta, s_vecs = theta[::-1], s_vecs[:, ::-1]
        axes, images = v @ s_vecs[:, :2], w @ s_vecs[:, :2]
        residual = np.linalg.norm(images - axes * theta[:2], axis=0)
        scale = np.maximum(theta[:2], np.finfo(float).tiny)
        settled = previous is not None and np.all(np.abs(theta[:2] - previous) <= VALUE_TOL * scale)
        if settled or np.all(residual <= RESIDUAL_TOL * scale):
            break
        previous = theta[:2]
        v = np.linalg.qr(w)[0]
    return theta[:2].clip(min=0.0), axes
