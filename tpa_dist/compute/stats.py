"""Streaming element statistics (mean, population variance, min, max, sparsity) over value blocks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tpa_dist.settings import DEFAULT_SPARSITY_THRESHOLD


@dataclass
class RunningStats:
    """Chan et al.'s pairwise-combinable moments: exact to float64 rounding, one pass, O(1) memory."""

    sparsity_threshold: float = DEFAULT_SPARSITY_THRESHOLD
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    small: int = 0
    finite: bool = True
    block_lo: float = 0.0  # extremes of the last block added (the spectrum's range check reads them)
    block_hi: float = 0.0

    def update(self, block: np.ndarray) -> None:
        """Add a float64 numpy block."""
        flat = block.ravel(order="K")  # a view of a transposed (Fortran-ordered) block too, never a copy
        if flat.size == 0:
            return
        with np.errstate(over="ignore", invalid="ignore"):
            total = float(flat.sum())
            sumsq = float(np.dot(flat, flat))
        lo, hi = float(flat.min()), float(flat.max())
        self.block_lo, self.block_hi = lo, hi
        if not (math.isfinite(total) and math.isfinite(sumsq)):  # NaN/Inf, or finite values near 1e300
            if not (math.isfinite(lo) and math.isfinite(hi)) or not np.isfinite(flat).all():
                self.finite = False
                return
            self._add_scaled(flat.size, np.asarray(flat), lo, hi)
            return
        thr = self.sparsity_threshold
        self.add_moments(flat.size, total, sumsq, lo, hi, int(np.count_nonzero((flat <= thr) & (flat >= -thr))))

    def update_torch(self, block) -> None:  # noqa: ANN001 - a float64 torch tensor on any device
        """Add a float64 torch block (statistics computed where the block lives, e.g. on the GPU)."""
        flat = block.reshape(-1)
        if flat.numel() == 0:
            return
        total = float(flat.sum())
        sumsq = float(flat.dot(flat))
        lo, hi = (float(v) for v in flat.aminmax())
        if not (math.isfinite(total) and math.isfinite(sumsq)):
            if not (math.isfinite(lo) and math.isfinite(hi)):
                self.finite = False
                return
            self._add_scaled(flat.numel(), flat.cpu().numpy(), lo, hi)
            return
        small = int((flat.abs() <= self.sparsity_threshold).sum())
        self.add_moments(flat.numel(), total, sumsq, lo, hi, small)

    def _add_scaled(self, n: int, flat: np.ndarray, lo: float, hi: float) -> None:
        """Moments of a block whose sums overflow float64: computed on the block scaled by a power of two (exact),
        then scaled back (a variance beyond float64 becomes inf, stored as NULL)."""
        exp = math.frexp(max(abs(lo), abs(hi)))[1]
        scaled = np.ldexp(flat, -exp)
        smean = float(scaled.mean())
        sm2 = float(np.sum((scaled - smean) ** 2))
        bmean = math.ldexp(smean, exp)
        with np.errstate(over="ignore"):
            bm2 = float(np.ldexp(sm2, 2 * exp))
        thr = self.sparsity_threshold
        self._merge(n, bmean, bm2, lo, hi, int(np.count_nonzero((flat <= thr) & (flat >= -thr))))

    def add_moments(self, n: int, total: float, sumsq: float, lo: float, hi: float, small: int) -> None:
        """Merge one block's count, sum, sum of squares, extremes and near-zero count (Chan et al.)."""
        bmean = total / n
        self._merge(n, bmean, max(0.0, sumsq - n * bmean * bmean), lo, hi, small)

    def _merge(self, n: int, bmean: float, bm2: float, lo: float, hi: float, small: int) -> None:
        delta = bmean - self.mean
        count = self.count + n
        self.mean += delta * n / count
        self.m2 += bm2 + delta * delta * self.count * n / count
        self.count = count
        self.minimum = min(self.minimum, lo)
        self.maximum = max(self.maximum, hi)
        self.small += small

    @property
    def var(self) -> float:
        return self.m2 / self.count if self.count else math.nan

    def as_row(self) -> dict[str, float]:
        return {
            "mean": self.mean,
            "var": self.var,
            "std": math.sqrt(self.var) if self.count else math.nan,
            "min": self.minimum,
            "max": self.maximum,
            "sparsity": self.small / self.count if self.count else math.nan,
        }
