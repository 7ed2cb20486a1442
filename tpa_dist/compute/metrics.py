"""Per-matrix metrics from a singular-value spectrum (definitions in the README, exact as stated)."""

from __future__ import annotations

import math

import numpy as np

from tpa_dist.compute.heavytail import heavy_tail_metrics

RANK_EPS = 2.0**-23  # float32 machine epsilon: numpy.linalg.matrix_rank's default for float32 input
ENERGY_LEVELS = (50, 90, 95, 99)
EXTREME_EXP = 480


def actual_rank(sv: np.ndarray, rows: int, cols: int) -> int:
    """#{σ > σ_max · max(rows, cols) · 2^-23}; 0 for the zero matrix."""
    if len(sv) == 0 or sv[0] == 0:
        return 0
    tolerance = sv[0] * (max(rows, cols) * RANK_EPS)  # the small factor first: σ_max · max(m, n) may overflow
    return int(np.count_nonzero(sv > tolerance))


def energy_rank(sv: np.ndarray, fraction: float) -> int:
    """Smallest k with Σ_{i≤k} σ_i² ≥ fraction · Σ σ_i² (σ descending); 0 for the zero matrix."""
    energy = np.cumsum(sv.astype(np.float64) ** 2)
    if len(energy) == 0 or energy[-1] == 0:
        return 0
    return int(np.searchsorted(energy, fraction * energy[-1], side="left") + 1)


def quantile(ascending: np.ndarray, q: float) -> float:
    """numpy.quantile(ascending, q) with its default method (linear, Hyndman & Fan's 7th) for values sorted
    ascending: the same float64 operations, without numpy's quantile machinery (whose first call imports numpy.ma,
    0.03 s in every worker process)."""
    n = len(ascending)
    virtual = (n - 1) * q
    lo = math.floor(virtual)
    a, b = float(ascending[lo]), float(ascending[min(lo + 1, n - 1)])
    t, diff = virtual - lo, b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def spectrum_snr(sv: np.ndarray, rows: int, cols: int) -> float | None:
    """Spectrum's signal-to-noise ratio of a matrix (Hartford et al. 2024, cognitivecomputations/spectrum): σ̂ =
    IQR(S)/1.349 estimates the noise level, the Marchenko–Pastur edge σ̂·(1 + √β) with β = min/max side splits
    the singular values S into signal (above) and noise (at or below), and SNR = (Σ signal ÷ Σ noise) ÷ S_max.
    As Spectrum: quantiles by linear interpolation, a noise sum of 1 when no value is noise, +inf when the noise
    values are all zero; None for the zero matrix."""
    sv = np.asarray(sv, dtype=np.float64)
    if len(sv) == 0 or sv[0] <= 0:
        return None
    ascending = sv[::-1]
    q75, q25 = quantile(ascending, 0.75), quantile(ascending, 0.25)
    threshold = (q75 - q25) / 1.349 * math.sqrt((1 + math.sqrt(min(rows, cols) / max(rows, cols))) ** 2)
    above = sv > threshold
    signal = float(sv[above].sum())
    noise = float(sv[~above].sum()) if (~above).any() else 1.0
    return (signal / noise if noise != 0 else math.inf) / float(sv[0])


def _ldexp(x: float, e: int) -> float | None:
    """x · 2^e, or None where that is beyond float64."""
    try:
        return math.ldexp(x, e) if math.isfinite(x) else None
    except OverflowError:
        return None


def spectral_metrics(sv: np.ndarray, rows: int, cols: int, device: str = "cpu") -> dict[str, float | int | None]:
    """All spectrum-derived columns of matrix_analysis for one matrix."""
    sv = np.asarray(sv, dtype=np.float64)
    design = min(rows, cols)
    smax = float(sv[0]) if len(sv) else 0.0
    # σ beyond 2^±480 would over/underflow σ²: the scale-free metrics are computed on σ/2^e (exact), norms scaled back
    e = math.frexp(smax)[1] if smax > 0 and abs(math.frexp(smax)[1]) > EXTREME_EXP else 0
    sv_n = np.ldexp(sv, -e) if e else sv
    rank = actual_rank(sv_n, rows, cols)
    fro2 = float(np.sum(sv_n**2))
    nuclear = float(np.sum(sv_n))
    smax_n = float(sv_n[0]) if len(sv) else 0.0
    out: dict[str, float | int | None] = {
        "design_rank": design,
        "actual_rank": rank,
        "rank_ratio": rank / design if design else None,
        "spectral_norm": smax,
        "frobenius_norm": _ldexp(math.sqrt(fro2), e),
        "nuclear_norm": _ldexp(nuclear, e),
        "stable_rank": fro2 / smax_n**2 if smax_n > 0 else None,
        "condition_number": smax / float(sv[-1]) if len(sv) and sv[-1] > 0 else None,
        "effective_rank": None,
        "entropy": None,
        "snr": spectrum_snr(sv_n, rows, cols),  # scale-free: computed on σ/2^e like the other ratios
    }
    sv = sv_n
    for level in ENERGY_LEVELS:
        k = energy_rank(sv, level / 100)
        out[f"energy_rank_{level}"] = k
    out["svd_90_percent_rank"] = out["energy_rank_90"]
    out["svd_90_percent_ratio"] = out["energy_rank_90"] / design if design else None
    if nuclear > 0:
        p = sv[sv > 0] / nuclear
        out["effective_rank"] = float(math.exp(-np.sum(p * np.log(p))))
    if fro2 > 0 and rank > 1:
        q = sv[sv > 0] ** 2 / fro2
        out["entropy"] = float(-np.sum(q * np.log(q)) / math.log(rank))
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        out.update(heavy_tail_metrics(np.ldexp(sv, e) if e else sv, device))
    return out
