"""Read one tensor's values from its byte range, in bounded float64 blocks (never the whole file)."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tpa_dist.checkpoint.dtypes import ITEMSIZE, decode, raw_numpy_dtype
from tpa_dist.errors import TensorDataError
from tpa_dist.files import open_regular


@dataclass(frozen=True)
class Region:
    """Where a matrix (or flat tensor) lives: file, absolute byte offset, dtype, 2-D shape."""

    name: str
    path: str
    start: int
    dtype: str
    rows: int
    cols: int
    scale: Region | None = None  # FP8 scales (scalar, per row, or 2-D blocks) multiplied in after decoding
    scale_block: tuple[int, int] = (0, 0)  # rows × cols of values sharing one scale
    packed: object | None = None  # quant.Packed: a GPTQ/AWQ layer dequantized whole before analysis

    @property
    def nbytes(self) -> int:
        if self.packed is not None:
            return self.packed.qweight.nbytes
        return self.rows * self.cols * ITEMSIZE[self.dtype]

    @property
    def needs_host_decode(self) -> bool:
        """Scaled or packed values must be decoded on the host (the GPU path then takes float64 blocks)."""
        return self.scale is not None or self.packed is not None


class _Mapping:
    """A read-only mmap of exactly one region, whose pages are dropped from RSS after each block."""

    def __init__(self, region: Region) -> None:
        self.region = region
        gran = mmap.ALLOCATIONGRANULARITY
        self.base = region.start - region.start % gran
        self.skip = region.start - self.base
        length = self.skip + region.nbytes
        try:
            fh = open_regular(region.path)
        except OSError as exc:
            raise TensorDataError(region.name, f"cannot read {region.path}: {exc.strerror or exc}") from None
        with fh:
            size = os.fstat(fh.fileno()).st_size
            if region.start + region.nbytes > size:
                raise TensorDataError(region.name, f"{region.path} ends before the tensor's bytes (truncated file)")
            self.mm = mmap.mmap(fh.fileno(), length, access=mmap.ACCESS_READ, offset=self.base)

    def array(self) -> np.ndarray:
        r = self.region
        return np.frombuffer(self.mm, dtype=raw_numpy_dtype(r.dtype), count=r.rows * r.cols, offset=self.skip).reshape(
            r.rows, r.cols
        )

    def release(self) -> None:
        if hasattr(mmap, "MADV_DONTNEED"):
            self.mm.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        try:
            self.mm.close()
        except BufferError:  # a view still exported (a traceback holds it): unmapped when that goes
            pass


def iter_blocks(
    region: Region, max_block_bytes: int, transpose: bool = False, decoded: bool = True
) -> Iterator[np.ndarray]:
    """Yield float64 row blocks of the matrix (of its transpose when `transpose`), each ≤ max_block_bytes.

    Blocks of the transpose are column blocks of the stored row-major matrix (a transpose that fits one block is
    the stored matrix decoded whole, handed out as its transposed, Fortran-ordered view). Pages already read are
    released after every block, so resident memory stays bounded by the block size, not the matrix.
    With ``decoded=False`` blocks are copies of the stored bits (for decoding on a GPU).
    """
    if region.rows == 0 or region.cols == 0:
        raise TensorDataError(region.name, f"has a zero-sized dimension (shape {region.rows}x{region.cols})")
    if region.packed is not None:
        yield from _array_blocks(_dequantized(region), max_block_bytes, transpose)
        return
    scale = _scale_grid(region) if region.scale is not None and decoded else None
    width = region.rows if transpose else region.cols
    length = region.cols if transpose else region.rows
    step = max(1, min(length, max_block_bytes // (8 * width)))
    mapping = _Mapping(region)
    # a decoded transpose that fits one block: decode the matrix as stored (contiguous, several times faster than a
    # strided column block) and hand out its transposed view
    whole = transpose and decoded and step >= length
    raw = part = None
    try:
        for b0 in range(0, length, step):
            raw = mapping.array()
            part = raw if whole else raw[:, b0 : b0 + step].T if transpose else raw[b0 : b0 + step]
            block = decode(part, region.dtype, np.float64) if decoded else part
            if block.base is not None or not block.flags.c_contiguous:
                block = np.array(block, order="C", copy=True)  # never hand out a view of the mapping
            if scale is not None:
                block *= _scale_block(scale, region, b0, b0 + block.shape[0], transpose and not whole)
            del raw, part
            mapping.release()
            yield block.T if whole else block
    finally:
        raw = part = None  # noqa: F841 - views of the mapping, dropped: an error under way may still hold them
        mapping.close()


def _scale_grid(region: Region) -> np.ndarray:
    s = region.scale
    grid = read_all(s) if s.rows * s.cols > 1 else read_all(s).reshape(1, 1)
    if not np.all(np.isfinite(grid)):
        raise TensorDataError(region.name, f"scale tensor {s.name} contains NaN or Inf")
    return grid


def _scale_block(grid: np.ndarray, region: Region, b0: int, b1: int, transpose: bool) -> np.ndarray:
    """The scales of rows b0..b1 of the block stream, expanded to element resolution."""
    br, bc = region.scale_block
    if transpose:  # blocks are columns b0..b1 of the stored matrix, transposed
        return grid[np.arange(region.rows) // br][:, np.arange(b0, b1) // bc].T
    return grid[np.arange(b0, b1) // br][:, np.arange(region.cols) // bc]


def _dequantized(region: Region) -> np.ndarray:
    from tpa_dist.checkpoint.quant import dequantize_packed

    def read(info) -> np.ndarray:  # noqa: ANN001 - catalog.TensorInfo
        rows, cols = (info.shape + (1,))[:2] if info.ndim < 2 else info.shape
        return read_all(Region(info.param_name, info.path, info.start, info.dtype, rows, cols))

    w = dequantize_packed(region.packed, read)
    if w.shape != (region.rows, region.cols):
        raise TensorDataError(region.name, f"dequantized to {w.shape}, expected {(region.rows, region.cols)}")
    return w


def _array_blocks(w: np.ndarray, max_block_bytes: int, transpose: bool) -> Iterator[np.ndarray]:
    src = w.T if transpose else w
    step = max(1, min(src.shape[0], max_block_bytes // (8 * src.shape[1])))
    for b0 in range(0, src.shape[0], step):
        yield np.ascontiguousarray(src[b0 : b0 + step], dtype=np.float64)


def read_all(region: Region) -> np.ndarray:
    """The whole matrix as float64 (tests and small tensors only)."""
    return np.concatenate(list(iter_blocks(region, max(region.rows * region.cols * 8, 8))), axis=0)
