"""WeightWatcher's random-matrix analyses of one matrix, from its exact eigenvalues λ = σ² (ascending).

Each function reproduces what weightwatcher 0.7.7's analyze() reports under the option of the same name
(weightwatcher.py, RMT_Util.py), on tpa-dist's float64 spectrum instead of a float32 SVD. Where WeightWatcher's
choice is arbitrary it is followed so that the numbers agree: the Marchenko–Pastur fit's linear-kernel KDE
(bandwidth 0.1 on a 1,000-point grid, densities below 0.01 dropped) and its brute-force σ grid (0.05–2× the
edge-implied σ in steps of 0.01×, polished by Nelder–Mead), the Tracy–Widom margin, the detX loop, the
100-bin histogram of the vector entropy.
"""

from __future__ import annotations

import math

import numpy as np

OVER_TRAINED_THRESH = 2.0  # alpha below: "over-trained" (WeightWatcher's warning)
UNDER_TRAINED_THRESH = 6.0  # alpha above: "under-trained"
EPSILON = 1e-10  # WeightWatcher's EPSILON (entropy and histogram floors)
MP_BANDWIDTH = 0.1  # of the KDE the MP fit compares with
MP_GRID = 1000  # points of that KDE
MP_DENSITY_FLOOR = 0.01  # grid points of lower density are left out of the fit
ENTROPY_BINS = 100


def rank_tolerance(sv_max: float, n_long: int, m_short: int) -> float:
    """The σ below which a singular value counts as zero for matrix_rank: WeightWatcher's σ_max·N·ε, raised to
    what a float64 Gram resolves — σ from eigvalsh(WᵀW) carry an absolute error of ~√(M·ε)·σ_max, so exact zeros
    come out near that, not below σ_max·N·ε (10× margin)."""
    eps = float(np.finfo(np.float64).eps)
    return sv_max * max(n_long * eps, 10.0 * math.sqrt(m_short * eps))


def rank_columns(sv: np.ndarray, rows: int, cols: int, tolerance: float) -> dict[str, object]:
    """N, M, Q, num_evals, sv_max/min, matrix_rank (σ above rank_tolerance), rank_loss, weak_rank_loss (eigenvalues
    below `tolerance`) and WeightWatcher's matrix entropy."""
    n_long, m_short = max(rows, cols), min(rows, cols)
    sv = np.asarray(sv, dtype=np.float64)
    evals = sv**2
    sv_max = float(np.max(sv))
    rank = int(np.count_nonzero(sv > rank_tolerance(sv_max, n_long, m_short)))
    return {
        "N": n_long,
        "M": m_short,
        "Q": n_long / m_short,
        "num_evals": len(sv),
        "sv_max": sv_max,
        "sv_min": float(np.min(sv)),
        "matrix_rank": rank,
        "rank_loss": len(sv) - rank,
        "weak_rank_loss": int(np.count_nonzero(evals < tolerance)),
        "entropy": matrix_entropy(evals, rank),
    }


def matrix_entropy(evals: np.ndarray, rank: int) -> float:
    """WeightWatcher's matrix entropy: −Σ p·log p / log(rank), p = λ/Σλ + ε."""
    total = float(np.sum(evals))
    if total <= 0:
        return math.nan
    p = evals / total + EPSILON
    return float(-np.sum(p * np.log(p)) / np.log(rank + EPSILON))


def warning(alpha: float | None) -> str:
    """WeightWatcher's flag: over-trained below alpha 2, under-trained above 6 (a failed fit's alpha is −1)."""
    a = -1.0 if alpha is None else alpha
    return "over-trained" if a < OVER_TRAINED_THRESH else "under-trained" if a > UNDER_TRAINED_THRESH else ""


class _MPResidual:
    """The squared residual between the MP (or, for Q = 1, quarter-circle) density of a σ and the KDE of the
    rescaled eigenvalues — RMT_Util.resid_mp with its KDE computed once instead of at every σ."""

    def __init__(self, to_fit: np.ndarray, q: float) -> None:
        from sklearn.neighbors import KernelDensity

        kde = KernelDensity(kernel="linear", bandwidth=MP_BANDWIDTH).fit(to_fit.reshape(-1, 1))
        xde = np.linspace(0, np.max(to_fit) + 0.5, MP_GRID)
        yde = np.exp(kde.score_samples(xde[:, np.newaxis]))
        good = np.where(np.array(yde) > MP_DENSITY_FLOOR)[0]
        self.n_bad = len(np.where(np.array(yde) < MP_DENSITY_FLOOR)[0])
        self.xde, self.yde, self.q = np.array(xde)[good], np.array(yde)[good], q
        self.peak = self.xde[np.where(self.yde == max(self.yde))][0]

    def __call__(self, p: np.ndarray, *_: object) -> float:
        sigma = p
        xde, yde, q = self.xde, self.yde, self.q
        with np.errstate(invalid="ignore", divide="ignore"):
            if q == 1:
                ymp = np.nan_to_num((1 / (np.pi * sigma * sigma)) * np.sqrt(4 - xde**2))
                resid = ymp - yde
            else:
                b = np.power(sigma * (1 + np.sqrt(1 / q)), 2)
                a = np.power(sigma * (1 - np.sqrt(1 / q)), 2)
                ymp = np.nan_to_num((1 / (2 * np.pi * sigma * sigma * xde * (1 / q))) * np.sqrt((b - xde) * (xde - a)))
                if (b < self.peak) | (b > max(xde)) | (a > self.peak):
                    resid = np.zeros(len(yde)) + 1000
                else:
                    resid = ymp - yde
        resid = np.concatenate((resid, np.zeros(self.n_bad)))
        return np.sum(resid**2)

    def on_grid(self, sigmas: np.ndarray) -> np.ndarray:
        """__call__ at every σ of a grid at once (one array operation, not one call per σ): the same arithmetic
        element by element, and the same sums (rows as long as __call__'s residual, zeros included)."""
        xde, yde, q = self.xde, self.yde, self.q
        sigma = sigmas[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            if q == 1:
                resid = np.nan_to_num((1 / (np.pi * sigma * sigma)) * np.sqrt(4 - xde**2)) - yde
            else:
                b = np.power(sigma * (1 + np.sqrt(1 / q)), 2)
                a = np.power(sigma * (1 - np.sqrt(1 / q)), 2)
                ymp = np.nan_to_num((1 / (2 * np.pi * sigma * sigma * xde * (1 / q))) * np.sqrt((b - xde) * (xde - a)))
                off = (b < self.peak) | (b > max(xde)) | (a > self.peak)
                resid = np.where(off, 1000.0, ymp - yde)
        resid = np.concatenate((resid, np.zeros((len(sigmas), self.n_bad))), axis=1)
        return np.sum(resid**2, axis=1)


def _brute(residual: _MPResidual, grid: slice) -> float:
    """scipy.optimize.brute(residual, (grid,), full_output=True)[0][0] — its grid (np.mgrid), its first minimum, its
    fmin polish from there — with the grid evaluated in one array operation (half of brute's time was its 195
    Python calls)."""
    from scipy import optimize

    sigmas = np.mgrid[grid]
    start = sigmas[int(np.argmin(residual.on_grid(sigmas)))]
    return float(optimize.fmin(residual, np.array([start]), full_output=1, disp=False)[0][0])


def mp_fit(evals: np.ndarray, n_long: int, m_short: int) -> dict[str, float | int]:
    """WeightWatcher's Marchenko–Pastur fit (`mp_fit`): σ of the MP law best matching the ESD rescaled to mean 1
    (W_scale² · λ), its bulk edges (back in λ's units), the spikes beyond the upper edge plus the Tracy–Widom
    margin, and mp_softrank = λ₊/λ_max (both rescaled)."""

    q = n_long / m_short
    w_scale = np.sqrt(evals.shape[0]) / np.sqrt(np.sum(evals))
    to_plot = (w_scale * w_scale) * evals
    lambda_max = np.max(to_plot)
    scale = np.sqrt(np.max(to_plot) / np.square(1 + 1.0 / np.sqrt(q)))  # RMT_Util.calc_sigma
    grid = (slice(0.05 * scale, 2.0 * scale, 0.01 * scale),)
    to_fit = np.sqrt(to_plot) if q == 1 else to_plot
    s1 = _brute(_MPResidual(to_fit, q), grid[0])
    bulk_max = (s1 * (1 + 1 / np.sqrt(q))) ** 2
    bulk_min = (s1 * (1 - 1 / np.sqrt(q))) ** 2
    tw = 1 / np.sqrt(q) * np.power(bulk_max, 2 / 3) * np.power(m_short, -2 / 3)
    return {
        "num_spikes": int(len(to_plot[to_plot > bulk_max + np.sqrt(tw)])),
        "sigma_mp": float(s1),
        "mp_softrank": float(bulk_max / lambda_max),
        "bulk_min": float(bulk_min / (w_scale * w_scale)),
        "bulk_max": float(bulk_max / (w_scale * w_scale)),
        "W_scale": float(w_scale),
    }


def randomized(evals: np.ndarray, replicas: list[np.ndarray], n_long: int, m_short: int) -> dict[str, object]:
    """WeightWatcher's `randomize` columns from the eigenvalues of the element-wise shuffled matrix (`replicas`,
    one per shuffle, each ascending): the largest of all, the Jensen–Shannon distance between the sorted ESDs and
    the ratio/gap of the largest eigenvalues (against the first shuffle; WeightWatcher draws one more for these),
    and the MP fit of the pooled shuffled ESD — whose spikes are correlation traps."""
    from scipy import stats

    pooled = np.sort(np.concatenate(replicas))
    first = replicas[0]
    p, q = np.array(evals), np.array(first)
    m = (p + q) / 2
    distance = np.sqrt((stats.entropy(p, m) + stats.entropy(q, m)) / 2)
    fit = mp_fit(pooled, n_long, m_short)
    return {
        "max_rand_eval": float(np.max(pooled)),
        "rand_distance": float(distance),
        "ww_softrank": float(np.max(first) / np.max(evals)),
        "ww_maxdist": float(np.max(evals) - np.max(first)),
        "rand_num_spikes": fit["num_spikes"],
        "rand_sigma_mp": fit["sigma_mp"],
        "rand_mp_softrank": fit["mp_softrank"],
        "rand_bulk_min": fit["bulk_min"],
        "rand_bulk_max": fit["bulk_max"],
        "rand_W_scale": fit["W_scale"],
    }


def detx(evals: np.ndarray, num_pl_spikes: int | None) -> dict[str, float | int | None]:
    """WeightWatcher's detX (ERG) condition: rescaled to mean 1, the fewest largest eigenvalues whose product
    falls below 1 (`detX_num`, also num_ERG_spikes), the eigenvalue there in λ's units (`detX_val`) and rescaled
    (`detX_val_unrescaled`: WeightWatcher's names are swapped, kept for compatibility), and the gap to the
    power-law tail, ERG_gap = detX_num − num_pl_spikes."""
    w_scale = np.sqrt(len(evals)) / np.sqrt(np.sum(evals))
    rescaled = (w_scale * w_scale) * evals
    num, idx = 0, 0
    if len(rescaled) >= 2 and rescaled[0] < rescaled[-1]:
        num = len(rescaled)
        for idx in range(len(rescaled) - 1, 0, -1):  # noqa: B007 - the loop's last index is the answer
            if np.prod(rescaled[idx:]) < 1.0:
                num = len(rescaled) - idx
                break
    return {
        "detX_num": num,
        "detX_val": float(rescaled[idx] / (w_scale * w_scale)),
        "detX_val_unrescaled": float(rescaled[idx]),
        "ERG_gap": num - num_pl_spikes if num_pl_spikes is not None else None,
    }


def discrete_entropies(vectors: np.ndarray) -> np.ndarray:
    """RMT_Util.discrete_entropy of every column: the entropy of a 100-bin density histogram of |v| − mean|v| (with ε
    and its 1/√2π), by numpy's histogram algorithm (edges from np.linspace, the same index corrections at the edges,
    density by each bin's own width) vectorized over the columns — equal to np.histogram column by column to
    rounding (≤ 2e-15), twice as fast on a 1,024-column Gram."""
    v = np.absolute(vectors)
    v = v - v.mean(axis=0)
    n, m = v.shape
    lo, hi = v.min(axis=0), v.max(axis=0)
    same = lo == hi
    lo, hi = np.where(same, lo - 0.5, lo), np.where(same, hi + 0.5, hi)
    edges = np.linspace(lo, hi, ENTROPY_BINS + 1, axis=1)  # (m, bins + 1), as np.histogram's per column
    idx = (((v - lo) / (hi - lo)) * ENTROPY_BINS).astype(np.intp)
    idx[idx == ENTROPY_BINS] -= 1
    cols = np.arange(m)
    idx[v < edges[cols, idx]] -= 1
    idx[(v >= edges[cols, idx + 1]) & (idx != ENTROPY_BINS - 1)] += 1
    counts = np.bincount((idx + cols * ENTROPY_BINS).ravel(), minlength=m * ENTROPY_BINS).reshape(m, ENTROPY_BINS)
    h = counts / np.diff(edges, axis=1) / counts.sum(axis=1, keepdims=True)
    p = h + EPSILON
    p = p / np.sqrt(2 * np.pi)
    p = p / p.sum(axis=1, keepdims=True)
    return -(p * np.log(p)).sum(axis=1)


def vector_columns(vectors: np.ndarray, n_tail: int | None) -> dict[str, float]:
    """WeightWatcher's `vectors` columns: per eigenvector of the Gram (columns, ascending eigenvalue), the vector
    entropy, localization ratio ‖v‖₁/‖v‖∞ and participation ratio ‖v‖₂/‖v‖₄; their mean and variance over the
    bulk (eigenvalues below the fit's xmin) and the tail (the top `n_tail`; all of them when the fit failed, as
    WeightWatcher's xmin = −1 makes it)."""
    n = vectors.shape[1]
    tail_from = n - n_tail if n_tail is not None else 0
    a = np.abs(vectors)
    squares = np.square(a)  # a⁴ as (a²)², not a**4: pow() per element was a quarter of this function's time
    metrics = {
        "vec_entropy": discrete_entropies(vectors),
        "loc_ratio": a.sum(axis=0) / a.max(axis=0),
        "part_ratio": np.sqrt(squares.sum(axis=0)) / np.power(np.square(squares).sum(axis=0), 0.25),
    }
    out: dict[str, float] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, values in metrics.items():
            for part, sel in (("bulk", values[:tail_from]), ("tail", values[tail_from:])):
                out[f"{part}_mean_{name}"] = float(np.mean(sel)) if len(sel) else math.nan
                out[f"{part}_var_{name}"] = float(np.var(sel)) if len(sel) else math.nan
    return out
