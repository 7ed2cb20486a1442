"""Heavy-tail (power-law) metrics of an eigenvalue spectrum, as WeightWatcher defines them.

λ = σ². alpha is the continuous power-law MLE with xmin chosen by minimum Kolmogorov–Smirnov distance
(Clauset, Shalizi & Newman 2009), computed the way weightwatcher's default ``WWFit`` does — eigenvalues
≤ 1e-5 dropped, every eigenvalue but the largest tried as xmin — but vectorized instead of a Python loop.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

EVALS_THRESH = 1e-5  # weightwatcher's EVALS_THRESH
MIN_EVALS = 8  # weightwatcher's DEFAULT_MIN_EVALS
SMALL_N = 20  # below this weightwatcher switches to its small-N estimator
_CHUNK = 1 << 16  # (i, j) pairs evaluated at a time on the CPU: row blocks this thin keep to the j ≥ i triangle
# (bench: 5.8 ms against 20.6 ms for 1,024 eigenvalues with 1 << 20, the whole square in one block; equal results)
_TORCH_CHUNK = 16 << 20  # ... on a GPU


def _alphas(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log x, tail sizes n_i, MLE alpha_i) for every xmin candidate x[0..N-2]."""
    logx = np.log(x)
    suffix = np.cumsum(logx[::-1])[::-1]  # Σ_{j≥i} log x_j
    n = (len(x) - np.arange(len(x) - 1)).astype(np.float64)
    return logx, n, 1.0 + n / (suffix[:-1] - n * logx[:-1])


def _ks_numpy(logx: np.ndarray, n: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """D_i = max_{j≥i} |1 − (x_j/x_i)^(1−α_i) − (j−i)/n_i|, only the j ≥ i triangle evaluated.

    Entries j < i are zeroed: at j = i the difference is exactly 0, so they never change the max.
    """
    n_total = len(logx)
    ds = np.empty(n_total - 1)
    rows = max(1, _CHUNK // n_total)
    for i0 in range(0, n_total - 1, rows):
        i1 = min(n_total - 1, i0 + rows)
        i = np.arange(i0, i1)
        t = logx[None, i0:] - logx[i0:i1, None]
        t *= (1.0 - alphas[i0:i1])[:, None]
        with np.errstate(over="ignore"):  # only entries j < i can overflow, and they are zeroed below
            np.exp(t, out=t)
        np.subtract(1.0, t, out=t)
        t -= (np.arange(i0, n_total)[None, :] - i[:, None]) / n[i0:i1, None]
        np.abs(t, out=t)
        t[np.arange(i0, n_total)[None, :] < i[:, None]] = 0.0
        ds[i0:i1] = t.max(axis=1)
    return ds


def _ks_torch(logx: np.ndarray, n: np.ndarray, alphas: np.ndarray, device: str) -> np.ndarray:
    """The same distances computed with torch on `device` (the GPU worker's card)."""
    import torch

    lx = torch.from_numpy(logx).to(device)
    nn = torch.from_numpy(n).to(device)
    al = torch.from_numpy(alphas).to(device)
    n_total = len(logx)
    j = torch.arange(n_total, device=device, dtype=torch.float64)
    out = torch.empty(n_total - 1, dtype=torch.float64, device=device)
    rows = max(1, _TORCH_CHUNK // n_total)
    for i0 in range(0, n_total - 1, rows):
        i1 = min(n_total - 1, i0 + rows)
        i = j[i0:i1, None]
        t = 1.0 - torch.exp((1.0 - al[i0:i1, None]) * (lx[None, i0:] - lx[i0:i1, None]))
        t = (t - (j[None, i0:] - i) / nn[i0:i1, None]).abs()
        t = torch.where(j[None, i0:] < i, torch.zeros((), dtype=t.dtype, device=device), t)
        out[i0:i1] = t.amax(dim=1)
    return out.cpu().numpy()


@dataclass(frozen=True)
class PowerLawFit:
    """A power-law fit of ascending data as weightwatcher's WWFit reports it."""

    alpha: float
    xmin: float
    xmax: float  # the largest value fitted
    D: float  # noqa: N815 - the KS distance, WeightWatcher's name
    n_tail: int  # values ≥ xmin

    @property
    def sigma(self) -> float:
        """alpha's standard error, (alpha − 1)/√n_tail (WWFit's `sigma`)."""
        return (self.alpha - 1.0) / math.sqrt(self.n_tail)


def fit_power_law(data: np.ndarray, device: str = "cpu") -> PowerLawFit | None:
    """WWFit on ascending positive data (at least 2 values, not all equal): the small-N estimator below SMALL_N
    values, the vectorized KS scan otherwise; None where no valid exponent exists. The last few fits are remembered
    by value: --rmt's chosen fit (powerlaw_fits.py) asks again for the default metrics' fit of the same spectrum."""
    return _fit_by_value(np.ascontiguousarray(data, dtype=np.float64).tobytes(), device)


@functools.lru_cache(maxsize=4)
def _fit_by_value(raw: bytes, device: str) -> PowerLawFit | None:
    data = np.frombuffer(raw, dtype=np.float64)
    alpha, xmin, d, i = _fit_small(data) if len(data) < SMALL_N else _fit_standard(data, device)
    if not math.isfinite(alpha):
        return None
    return PowerLawFit(alpha, xmin, float(data[-1]), d, len(data) - i)


def _fit_standard(x: np.ndarray, device: str = "cpu") -> tuple[float, float, float, int]:
    """(alpha, xmin, D, index of xmin) minimizing D over xmin candidates x[0..N-2] of ascending data x."""
    logx, n, alphas = _alphas(x)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        ds = _ks_torch(logx, n, alphas, device) if device.startswith("cuda") else _ks_numpy(logx, n, alphas)
    ds[~(alphas > 1)] = 1.0  # weightwatcher leaves D = 1 where the MLE is not a valid exponent
    best = int(np.argmin(ds))
    return float(alphas[best]), float(x[best]), float(ds[best]), best


def _fit_small(x: np.ndarray, k_min: int = 8) -> tuple[float, float, float, int]:
    """weightwatcher's small-N path: bias-corrected MLE on tails of ≥ k_min points; xmin by minimum D.

    (weightwatcher scores candidates by D − 0.868/√n inside its small-N routine, but its WWFit then
    re-selects by minimum D; we reproduce what it reports.)
    """
    n_total = len(x)
    logx = np.log(x)
    alphas = np.zeros(n_total - 1)
    ds = np.ones(n_total - 1)
    found = False
    for i in range(n_total - 1):
        n = n_total - i
        s = float(np.sum(logx[i:]) - n * logx[i])
        if n < k_min or s <= 1e-12:
            continue
        alphas[i] = 1.0 + (n - 1.0) / s
        if alphas[i] <= 1.0:
            continue
        ds[i] = float(np.max(np.abs(np.arange(n) / n - (1.0 - (x[i:] / x[i]) ** (1.0 - alphas[i])))))
        found = True
    if not found:
        s = float(np.sum(logx) - n_total * logx[0])
        if s <= 1e-12:
            return math.nan, float(x[0]), 1.0, 0
        alphas[0] = 1.0 + (n_total - 1.0) / s
        ds[0] = float(np.max(np.abs(np.arange(n_total) / n_total - (1.0 - (x / x[0]) ** (1.0 - alphas[0])))))
    best = int(np.argmin(ds))
    return float(alphas[best]), float(x[best]), float(ds[best]), best


def heavy_tail_metrics(sv: np.ndarray, device: str = "cpu") -> dict[str, float | int | None]:
    """WeightWatcher's default per-layer metrics from singular values (any order); `device` "cuda..."
    evaluates the O(N²) KS scan on that GPU."""
    evals = np.sort(np.asarray(sv, dtype=np.float64) ** 2)
    out: dict[str, float | int | None] = dict.fromkeys(
        ("alpha", "D", "xmin", "xmax", "num_pl_spikes", "alpha_weighted", "log_alpha_norm"), None
    )
    lam_max = float(evals[-1]) if len(evals) else 0.0
    total = float(evals.sum())
    out["lambda_max"] = lam_max
    out["log_norm"] = math.log10(total) if total > 0 else None
    out["log_spectral_norm"] = math.log10(lam_max) if lam_max > 0 else None
    data = evals[evals > EVALS_THRESH]
    # weightwatcher's gate is on the matrix's eigenvalue count; the fit then uses those above EVALS_THRESH
    if len(evals) >= MIN_EVALS and len(data) >= 2 and data[-1] > data[0]:
        fit = fit_power_law(data, device)
        if fit is not None:
            out.update(fit_columns(fit, evals))
    return out


def fit_columns(fit: PowerLawFit, evals: np.ndarray) -> dict[str, float | int | None]:
    """The columns a fit gives, over all eigenvalues `evals` (ascending): alpha, D, xmin, xmax, num_pl_spikes, and
    the norms weighted by alpha."""
    with np.errstate(over="ignore", under="ignore"):
        alpha_norm = float(np.sum(evals**fit.alpha))  # 0 or inf for a degenerate fit's huge alpha: NULL
    lam_max = float(evals[-1])
    return {
        "alpha": fit.alpha,
        "D": fit.D,
        "xmin": fit.xmin,
        "xmax": fit.xmax,
        "num_pl_spikes": int(np.count_nonzero(evals >= fit.xmin)),
        "alpha_weighted": fit.alpha * math.log10(lam_max) if lam_max > 0 else None,
        "log_alpha_norm": math.log10(alpha_norm) if 0 < alpha_norm < math.inf else None,
    }
