"""Read one tensor's values from its byte range, in bounded float64 blocks (never the whole file)."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .dtypes import ITEMSIZE, decode, raw_numpy_dtype
from .errors import TensorDataError


@dataclass(frozen=True)
class Region:
    """Where a matrix (or flat tensor) lives: file, absolute byte offset, dtype, 2-D shape."""

    name: str
    path: str
    start: int
    dtype: str
    rows: int
    cols: int

    @property
    def nbytes(self) -> int:
        return self.rows * self.cols * ITEMSIZE[self.dtype]


class _Mapping:
    """A read-only mmap of exactly one region, whose pages are dropped from RSS after each block."""

    def __init__(self, region: Region) -> None:
        self.region = region
        gran = mmap.ALLOCATIONGRANULARITY
        self.base = region.start - region.start % gran
        self.skip = region.start - self.base
        length = self.skip + region.nbytes
        with open(region.path, "rb") as fh:
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
        self.mm.close()


def iter_blocks(
    region: Region, max_block_bytes: int, transpose: bool = False, decoded: bool = True
) -> Iterator[np.ndarray]:
    """Yield float64 row blocks of the matrix (of its transpose when `transpose`), each ≤ max_block_bytes.

    Blocks of the transpose are column blocks of the stored row-major matrix. Pages already read are
    released after every block, so resident memory stays bounded by the block size, not the matrix.
    With ``decoded=False`` blocks are copies of the stored bits (for decoding on a GPU).
    """
    if region.rows == 0 or region.cols == 0:
        raise TensorDataError(region.name, f"has a zero-sized dimension (shape {region.rows}x{region.cols})")
    width = region.rows if transpose else region.cols
    length = region.cols if transpose else region.rows
    step = max(1, min(length, max_block_bytes // (8 * width)))
    mapping = _Mapping(region)
    try:
        for b0 in range(0, length, step):
            raw = mapping.array()
            part = raw[:, b0 : b0 + step].T if transpose else raw[b0 : b0 + step]
            block = decode(part, region.dtype, np.float64) if decoded else part
            if block.base is not None or not block.flags.c_contiguous:
                block = np.array(block, order="C", copy=True)  # never hand out a view of the mapping
            del raw, part
            mapping.release()
            yield block
    finally:
        mapping.close()


def read_all(region: Region) -> np.ndarray:
    """The whole matrix as float64 (tests and small tensors only)."""
    return np.concatenate(list(iter_blocks(region, max(region.rows * region.cols * 8, 8))), axis=0)
