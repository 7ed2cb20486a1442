"""A matrix with its elements in uniformly random order, streamed in bounded memory, and its largest entries.

WeightWatcher's `randomize` shuffles W's elements (np.random.shuffle of the flattened matrix) and compares the
ESD: what survives shuffling (spikes of the shuffled ESD) comes from single large elements — correlation traps.
Here the permutation is drawn exactly uniformly without holding the matrix: its elements stream in storage order,
each block is split among fixed-size buckets by a multivariate hypergeometric draw on the buckets' remaining room
(the counts a uniform permutation would send there), the pieces spill to temporary files, and each bucket is
shuffled on its own when read back. A matrix of up to IN_MEMORY_ELEMENTS is shuffled in memory at once. Elements
move as their stored bits (2 bytes for bf16) and are decoded block by block; memory is O(bucket + block).
The shuffled matrix is produced as (long side × short side): the transpose of a uniformly shuffled matrix is
one too, and its Gram is the short side's.
"""

from __future__ import annotations

import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from tpa_dist.checkpoint.dtypes import decode
from tpa_dist.checkpoint.reader import Region, iter_blocks

IN_MEMORY_ELEMENTS = 1 << 22  # matrices up to this many elements are shuffled at once in memory (one pass)
BUCKET_ELEMENTS = 1 << 20  # larger ones: elements per spilled bucket (2 MiB of bf16: a shuffle in L2/L3 runs at
# ~29 ns an element, 4 MiB+ at ~54: 1 MiB buckets and pieces halved a 40M-element shuffle's time against 4 MiB / 256 KiB)
PIECE_ELEMENTS = 1 << 19  # elements a chunk is dealt out in: each piece permuted in cache, then split to the buckets
MAX_BUCKETS = 512  # open spill files at once; larger matrices get larger buckets
HYPERGEOMETRIC_LIMIT = 10**9  # numpy's hypergeometric sampler needs fewer elements than this in all


def matrix_seed(seed: int, matrix_key: str, replica: int) -> np.random.Generator:
    """The generator of one shuffle: reproducible from the run's seed, the matrix's key and the replica."""
    return np.random.default_rng([seed, zlib.crc32(matrix_key.encode()), replica])


@dataclass
class LargestEntries:
    """The k entries of largest |value| seen so far, with their (row, col) in the stored matrix."""

    k: int
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cols: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def update(self, block: np.ndarray, row0: int, dtype: str = "F64") -> None:
        """Merge a 2-D block whose first row is row `row0`: stored bits of `dtype` (bf16 as uint16) or its values;
        only the candidates for the largest are decoded."""
        flat = np.ascontiguousarray(block).ravel()
        idx = _candidates(flat, self.k)
        r, c = np.divmod(idx, block.shape[1])
        values = np.concatenate([self.values, decode(flat[idx], dtype, np.float64)])
        rows = np.concatenate([self.rows, r + row0])
        cols = np.concatenate([self.cols, c])
        keep = np.lexsort((cols, rows, -np.abs(values)))[: self.k]  # largest |value| first, ties by position
        self.values, self.rows, self.cols = values[keep], rows[keep], cols[keep]

    def top(self, n: int) -> list[tuple[int, int, float]]:
        return [(int(r), int(c), float(v)) for r, c, v in zip(self.rows[:n], self.cols[:n], self.values[:n])]


def _magnitude_keys(flat: np.ndarray) -> np.ndarray:
    """A key per float (or its stored bits) ordered as |value| is, ties aside: the top 16 bits of each element with
    the sign bit cleared (all 8 bits, sign cleared, for fp8). For every IEEE-style format (sign, exponent, mantissa
    from the top) these bits grow with |value| — the whole value for bf16/f16, a rounding toward zero for wider."""
    width = min(flat.itemsize, 2)
    words = flat.view(np.uint16 if width == 2 else np.uint8)
    per = flat.itemsize // width
    top = words[per - 1 :: per] if sys.byteorder == "little" else words[::per]
    return top & (0x7FFF if width == 2 else 0x7F)


def _candidates(flat: np.ndarray, k: int) -> np.ndarray:
    """Indices of a superset of the k largest |values| of `flat` (all their ties included), in a few linear passes:
    a histogram of the magnitude keys finds the key of the k-th largest, and every element at or above it is a
    candidate. An argpartition of all values was 4× slower."""
    if len(flat) <= k:
        return np.arange(len(flat))
    keys = _magnitude_keys(flat)
    from_top = np.cumsum(np.bincount(keys, minlength=1 << (8 * min(flat.itemsize, 2)))[::-1])
    threshold = len(from_top) - 1 - int(np.searchsorted(from_top, k))  # the k-th largest value's key
    return np.flatnonzero(keys >= threshold)


def _stored_chunks(region: Region, block_bytes: int, largest: LargestEntries | None) -> Iterator[np.ndarray]:
    """The matrix's elements in storage order, as flat arrays of their stored bits (float64 values where the
    values need host decoding: FP8 scales, GPTQ/AWQ packs); `largest` sees every decoded block."""
    host = region.needs_host_decode
    row0 = 0
    for block in iter_blocks(region, block_bytes, decoded=host):
        if largest is not None:
            largest.update(block, row0, "F64" if host else region.dtype)
        row0 += block.shape[0]
        yield block.ravel()


def _split_counts(room: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """How many of the next k elements each bucket takes: multivariate hypergeometric on the buckets' room (exact
    for a uniform permutation); beyond numpy's 10⁹ limit, multinomial on the room, clipped to it."""
    if room.sum() < HYPERGEOMETRIC_LIMIT:
        return rng.multivariate_hypergeometric(room, k, method="marginals")
    counts = np.minimum(rng.multinomial(k, room / room.sum()), room)
    short = k - counts.sum()
    while short > 0:  # hand the clipped elements to buckets with room left, at random
        spare = np.flatnonzero(counts < room)
        pick = rng.choice(spare, size=min(short, len(spare)), replace=False)
        counts[pick] += 1
        short -= len(pick)
    return counts


def permuted(chunks: Iterator[np.ndarray], total: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The elements of `chunks` (`total` in all) in uniformly random order, as flat arrays (buckets)."""
    bucket = max(BUCKET_ELEMENTS, -(-total // MAX_BUCKETS))
    n_buckets = -(-total // bucket)
    if total <= IN_MEMORY_ELEMENTS or n_buckets <= 1:
        values = np.concatenate(list(chunks))
        rng.shuffle(values)
        yield values
        return
    room = np.full(n_buckets, bucket, dtype=np.int64)
    room[-1] = total - bucket * (n_buckets - 1)
    # nameless spill files (unlinked at creation): whatever ends this process — an error, SIGTERM, SIGKILL — the
    # kernel frees them, and nothing is ever left in $TMPDIR
    files = [tempfile.TemporaryFile(prefix="tpa-dist-shuffle-") for _ in range(n_buckets)]  # noqa: SIM115
    try:
        dtype = None
        for chunk in chunks:
            dtype = chunk.dtype
            for start in range(0, len(chunk), PIECE_ELEMENTS):
                piece = chunk[start : start + PIECE_ELEMENTS]
                counts = _split_counts(room, len(piece), rng)
                room -= counts
                for f, part in zip(files, np.split(rng.permutation(piece), np.cumsum(counts)[:-1])):
                    if len(part):
                        f.write(part.tobytes())
        for i, f in enumerate(files):
            f.flush()
            f.seek(0)
            values = np.fromfile(f, dtype=dtype)
            f.close()
            files[i] = None
            rng.shuffle(values)
            yield values
    finally:
        for f in files:
            if f is not None:
                f.close()


def shuffled_blocks(
    region: Region, rng: np.random.Generator, block_bytes: int, largest: LargestEntries | None = None
) -> Iterator[np.ndarray]:
    """Float64 row blocks of the shuffled matrix shaped (long side × short side), each ≤ block_bytes."""
    width = min(region.rows, region.cols)
    step = max(1, block_bytes // (8 * width)) * width
    host = region.needs_host_decode
    carry = None
    for values in permuted(_stored_chunks(region, block_bytes, largest), region.rows * region.cols, rng):
        if carry is not None and len(carry):
            values = np.concatenate([carry, values])
        usable = len(values) - len(values) % width
        for s in range(0, usable, step):
            part = values[s : min(s + step, usable)].reshape(-1, width)
            yield part.astype(np.float64) if host else decode(part, region.dtype, np.float64)
        carry = values[usable:]
