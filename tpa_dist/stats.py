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
        n = block.size
        if n == 0:
            return
        flat = block.reshape(-1)
        bmean = float(flat.sum()) / n
        if not math.isfinite(bmean):  # NaN and ±Inf propagate into the sum
            self.finite = False
            return
        bm2 = max(0.0, float(np.dot(flat, flat)) - n * bmean * bmean)  # no block-sized temporaries
        delta = bmean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.m2 += bm2 + delta * delta * self.count * n / total
        self.count = total
        self.minimum = min(self.minimum, float(block.min()))
        self.maximum = max(self.maximum, float(block.max()))
        thr = self.sparsity_threshold
        self.small += int(np.count_nonzero((flat <= thr) & (flat >= -thr)))

    @property
    def var(self) -> float:
        return self.m2 / self.count if self.count else math.nan

    def as_row(self) -> dict[str, float]:
        return {
            "mean": self.mean, "var": self.var, "std": math.sqrt(self.var) if self.count else math.nan,
            "min": self.minimum, "max": self.maximum,
            "sparsity": self.small / self.count if self.count else math.nan,
        }
