"""Streaming element statistics (mean, population variance, min, max, sparsity) over value blocks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class RunningStats:
    """Chan et al.'s pairwise-combinable moments: exact to float64 rounding, one pass, O(1) memory."""

    sparsity_threshold: float = 1e-8
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    small: int = 0
    finite: bool = True

    def update(self, block: np.ndarray) -> None:
        """Add a float64 numpy block."""
        flat = block.reshape(-1)
        if flat.size == 0:
            return
        total = float(flat.sum())
        if not math.isfinite(total):  # NaN and ±Inf propagate into the sum
            self.finite = False
            return
        thr = self.sparsity_threshold
        self.add_moments(
            flat.size,
            total,
            float(np.dot(flat, flat)),
            float(flat.min()),
            float(flat.max()),
            int(np.count_nonzero((flat <= thr) & (flat >= -thr))),
        )

    def update_torch(self, block) -> None:  # noqa: ANN001 - a float64 torch tensor on any device
        """Add a float64 torch block (statistics computed where the block lives, e.g. on the GPU)."""
        flat = block.reshape(-1)
        if flat.numel() == 0:
            return
        total = float(flat.sum())
        if not math.isfinite(total):
            self.finite = False
            return
        lo, hi = flat.aminmax()
        self.add_moments(
            flat.numel(),
            total,
            float(flat.dot(flat)),
            float(lo),
            float(hi),
            int((flat.abs() <= self.sparsity_threshold).sum()),
        )

    def add_moments(self, n: int, total: float, sumsq: float, lo: float, hi: float, small: int) -> None:
        """Merge one block's count, sum, sum of squares, extremes and near-zero count (Chan et al.)."""
        bmean = total / n
        bm2 = max(0.0, sumsq - n * bmean * bmean)
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
