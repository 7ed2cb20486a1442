"""The exact singular-value spectrum of a stored matrix, in float64, never truncated or sampled.

Method: accumulate the Gram matrix of the smaller side, G = Σ_blocks Bᵀ B (float64, BLAS syrk), then
σ = sqrt(eigvalsh(G)). Blocks stream from disk, so memory is O(block + n²) for an m×n matrix with
n = min(m, n) — independent of the long side (152k-row embeddings included). The Gram method squares
the condition number, which bounds the absolute error of every σ by ~sqrt(n·eps)·σ_max: far inside the
1e-6·σ_max tolerance for small values and exact to ~1e-13·σ_max for σ ≥ 1e-3·σ_max.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from tpa_dist.checkpoint.reader import Region, iter_blocks
from tpa_dist.compute.stats import RunningStats
from tpa_dist.errors import TensorDataError
from tpa_dist.settings import DEFAULT_BLOCK_MIB, DEFAULT_SPARSITY_THRESHOLD

DEFAULT_BLOCK_BYTES = DEFAULT_BLOCK_MIB << 20
#: the numpy path's row blocks are at most this large, whatever the budget: a block that stays in the last-level
#: cache is decoded, summarized and multiplied without a trip to memory between the passes, and a worker's first
#: large matrix does not fault in 64 MiB buffers (MiniLM's 30522×384 embedding in a fresh process: 0.35 → 0.20 s).
#: (A transpose that fits the budget is still decoded whole: its column blocks would be strided reads.)
CPU_ROW_BLOCK_BYTES = 16 << 20
#: dtypes whose values can lie outside [2^-300, 2^300] (F32/F16/BF16/FP8 cannot): only these are range-checked
WIDE_DTYPES = frozenset({"F64"})


@dataclass
class SpectrumResult:
    singular_values: np.ndarray  # float64, descending, length min(rows, cols)
    stats: RunningStats
    method: str
    device: str
    vectors: np.ndarray | None = None  # with vectors=True: the Gram's eigenvectors, columns in σ's order


_TORCH_VIEW = {
    "BF16": ("<i2", "bfloat16"),
    "F16": ("<f2", None),
    "F32": ("<f4", None),
    "F64": ("<f8", None),
    "F8_E4M3": ("u1", "float8_e4m3fn"),
    "F8_E5M2": ("u1", "float8_e5m2"),
}


def _to_device(raw: np.ndarray, dtype: str, device: str):  # noqa: ANN202 - torch.Tensor
    """Stored bits -> float64 tensor on `device`; the narrow dtype crosses the bus, decoding runs there."""
    import torch

    if dtype not in _TORCH_VIEW:
        from tpa_dist.checkpoint.dtypes import decode

        return torch.from_numpy(decode(raw, dtype, np.float64)).to(device)
    np_view, torch_view = _TORCH_VIEW[dtype]
    t = torch.from_numpy(raw.view(np_view))
    if torch_view:
        t = t.view(getattr(torch, torch_view))
    return t.to(device, non_blocking=False).to(torch.float64)


class PowerOfTwoScale:
    """Keeps the streamed float64 Gram inside float64's range: blocks whose magnitude is beyond 2^±SAFE are scaled by
    a power of two (exact) before BᵀB, and the Gram accumulated so far is rescaled when a larger block arrives.
    Matrices of ordinary magnitude are never scaled, so their results are bit-for-bit those of the plain method.
    σ = 2^exp · sqrt(eigvalsh(G))."""

    SAFE = 300  # |w| in [2^-300, 2^300]: squares and sums of ~10^9 of them stay normal float64

    def __init__(self) -> None:
        self.exp = 0  # the Gram holds BᵀB · 2^(-2·exp)
        self.nonzero = False

    def block_factor(self, peak: float) -> tuple[int, int | None]:
        """(exponent to scale this block by, exponent to rescale the Gram by or None) for a block of max |w| peak."""
        if peak == 0.0:
            return -self.exp, None
        f = math.frexp(peak)[1]
        rescale = None
        if not self.nonzero:
            if abs(f) > self.SAFE:
                self.exp = f
            self.nonzero = True
        elif f - self.exp > self.SAFE:  # this block would overflow the current scale: move the scale up
            rescale = 2 * (self.exp - f)
            self.exp = f
        return -self.exp, rescale

    def singular_values(self, lam: np.ndarray) -> np.ndarray:
        sv = np.sqrt(np.clip(lam, 0.0, None))[::-1].copy()
        return np.ldexp(sv, self.exp) if self.exp else sv


class StreamedGram:
    """The float64 Gram Σ BᵀB of row blocks streamed by, on numpy ("cpu") or torch (any other device), kept inside
    float64's range by a PowerOfTwoScale; its spectrum by eigvalsh, or eigh where the vectors are wanted."""

    def __init__(self, n: int, device: str = "cpu") -> None:
        self.scale = PowerOfTwoScale()
        self.numpy = device == "cpu"
        if self.numpy:
            self.gram = np.zeros((n, n), dtype=np.float64)
        else:
            import torch

            self.device = "cpu" if device == "torch-cpu" else device
            self.gram = torch.zeros((n, n), dtype=torch.float64, device=self.device)

    def add(self, block, peak: float | None = None) -> None:  # noqa: ANN001 - np.ndarray or torch.Tensor
        """Accumulate one float64 block (a torch tensor on the device, or numpy); `peak` is its largest |w| where it
        may lie outside the safe range (None: its dtype cannot)."""
        if peak is not None:
            by, rescale = self.scale.block_factor(peak)
            if rescale is not None:
                self.gram *= 2.0**rescale
            if by:
                block = np.ldexp(block, by) if self.numpy else _torch_ldexp(block, by)
        if self.numpy:
            self.gram += block.T @ block  # numpy dispatches Bᵀ·B to syrk
        else:
            self.gram.addmm_(block.T, block)

    def spectrum(self, vectors: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(σ descending, the eigenvectors as columns in σ's order, or None without `vectors`)."""
        if self.numpy:
            lam, vec = np.linalg.eigh(self.gram) if vectors else (np.linalg.eigvalsh(self.gram), None)
        else:
            import torch

            if vectors:
                lam_t, vec_t = torch.linalg.eigh(self.gram)
                lam, vec = lam_t.cpu().numpy(), vec_t.cpu().numpy()
            else:
                lam, vec = torch.linalg.eigvalsh(self.gram).cpu().numpy(), None
        return self.scale.singular_values(lam), vec[:, ::-1] if vec is not None else None


def range_guarded(region: Region) -> bool:
    """Whether a matrix's values may lie beyond 2^±300 (F64, or decoded on the host with scales): only those pay for
    the range guard; narrower dtypes cannot leave the safe range."""
    return region.dtype in WIDE_DTYPES or region.needs_host_decode


def _torch_ldexp(block, by: int):  # noqa: ANN001, ANN202 - torch.Tensor
    """block · 2^by, exact (2^by alone may be beyond float64 where the block's values are not)."""
    import torch

    return torch.ldexp(block, torch.tensor(float(by), dtype=torch.float64, device=block.device))


def _gram_pass(
    region: Region, block_bytes: int, transpose: bool, n: int, stats: RunningStats, device: str, vectors: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """One streaming pass: statistics and the Gram of every block; (σ, vectors) — or empty σ once a value is not
    finite. On torch devices the narrow stored dtype crosses the bus and is decoded there."""
    gram = StreamedGram(n, device)
    host = region.needs_host_decode
    check = range_guarded(region)
    if gram.numpy and not transpose:
        block_bytes = min(block_bytes, CPU_ROW_BLOCK_BYTES)
    for raw in iter_blocks(region, block_bytes, transpose, decoded=host or gram.numpy):
        if gram.numpy:
            stats.update(raw)
            peak = max(abs(stats.block_lo), abs(stats.block_hi))
            block = raw
        else:
            import torch

            block = torch.from_numpy(raw).to(gram.device) if host else _to_device(raw, region.dtype, gram.device)
            stats.update_torch(block)
            peak = float(block.abs().max()) if check and stats.finite and block.numel() else 0.0
        if not stats.finite:
            return np.zeros((0,)), None
        gram.add(block, peak if check else None)
        del block
    return gram.spectrum(vectors)


def matrix_spectrum(
    region: Region,
    *,
    sparsity_threshold: float = DEFAULT_SPARSITY_THRESHOLD,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    device: str = "cpu",
    vectors: bool = False,
) -> SpectrumResult:
    """Singular values (descending) and element statistics of one stored matrix, in one streaming pass; with
    `vectors`, also the Gram's eigenvectors (the singular vectors of the smaller side), from the same eigh."""
    # Gram of the smaller side; a square matrix's vectors are its left ones (W·Wᵀ), as WeightWatcher's
    transpose = region.rows < region.cols or (vectors and region.rows == region.cols)
    n = min(region.rows, region.cols)
    stats = RunningStats(sparsity_threshold)
    sv, vec = _gram_pass(region, block_bytes, transpose, n, stats, device, vectors)
    if not stats.finite:
        raise TensorDataError(region.name, "contains NaN or Inf values")
    return SpectrumResult(sv, stats, "gram_eigvalsh_f64", device, vec)


def gram_singular_values(blocks: Iterable[np.ndarray], n: int, device: str = "cpu", guard: bool = True) -> np.ndarray:
    """Singular values (descending) of the matrix whose float64 row blocks of width n stream by — the same
    float64 Gram and eigvalsh as matrix_spectrum, on `device`, with the same power-of-two range guard where `guard`
    (values that may lie beyond 2^±300: F64, host-decoded)."""
    gram = StreamedGram(n, device)
    for block in blocks:
        peak = (float(np.abs(block).max()) if block.size else 0.0) if guard else None
        if not gram.numpy:
            import torch

            block = torch.from_numpy(block).to(gram.device)
        gram.add(block, peak)
    return gram.spectrum()[0]


def vector_stats(
    region: Region, *, sparsity_threshold: float = DEFAULT_SPARSITY_THRESHOLD, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> RunningStats:
    """Element statistics of a tensor read as flat values (1-D and other non-matrix tensors)."""
    stats = RunningStats(sparsity_threshold)
    for block in iter_blocks(region, block_bytes):
        stats.update(block)
        if not stats.finite:
            raise TensorDataError(region.name, "contains NaN or Inf values")
    return stats
