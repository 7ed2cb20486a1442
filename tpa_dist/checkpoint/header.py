"""Read and validate one safetensors header without touching tensor data (the file is untrusted)."""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass

from tpa_dist.checkpoint.dtypes import ITEMSIZE
from tpa_dist.errors import HeaderError
from tpa_dist.files import open_regular

#: Refuse headers larger than this: real ones are a few hundred kB; the format's own limit is 100 MB.
MAX_HEADER_BYTES = 100_000_000


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of one file: where its bytes are and how to read them."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class FileHeader:
    path: str
    size: int
    header_bytes: bytes
    metadata: dict[str, str]
    tensors: tuple[TensorEntry, ...]


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate tensor name {key!r}")
        seen[key] = value
    return seen


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


MAX_DIM = 2**63 - 1  # safetensors shapes are usize; DuckDB and numpy index with int64


def _valid_text(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape: not Unicode text
        return False
    return True


def _entry(path: str, name: str, spec: object, data_start: int, data_len: int) -> TensorEntry:
    if not _valid_text(name):
        raise HeaderError(
            path,
            f"tensor name {name.encode('utf-8', 'backslashreplace').decode()!r} is not valid "
            "Unicode (a lone surrogate escape)",
        )
    if not isinstance(spec, dict):
        raise HeaderError(path, f"tensor {name!r}: entry is not an object")
    dtype = spec.get("dtype")
    if dtype not in ITEMSIZE:
        raise HeaderError(path, f"tensor {name!r}: unknown dtype {dtype!r}")
    shape = spec.get("shape")
    if not isinstance(shape, list) or any(_as_int(d) is None or d < 0 for d in shape):
        raise HeaderError(path, f"tensor {name!r}: shape {shape!r} is not a list of non-negative integers")
    if any(d > MAX_DIM for d in shape):
        raise HeaderError(path, f"tensor {name!r}: shape {shape!r} has a dimension over 2^63 - 1")
    if len(shape) > 8:
        raise HeaderError(path, f"tensor {name!r}: {len(shape)} dimensions is implausible")
    offsets = spec.get("data_offsets")
    if not isinstance(offsets, list) or len(offsets) != 2 or any(_as_int(o) is None for o in offsets):
        raise HeaderError(path, f"tensor {name!r}: data_offsets {offsets!r} is not [begin, end]")
    begin, end = offsets
    if not 0 <= begin <= end <= data_len:
        raise HeaderError(
            path, f"tensor {name!r}: data_offsets [{begin}, {end}] outside the data area of {data_len} bytes"
        )
    expected = math.prod(shape) * ITEMSIZE[dtype]
    if end - begin != expected:
        raise HeaderError(
            path,
            f"tensor {name!r}: {end - begin} bytes stored but dtype {dtype} x shape {shape} needs {expected}",
        )
    return TensorEntry(name, dtype, tuple(shape), data_start + begin, end - begin)


def check_length(path: str, hlen: int, size: int) -> None:
    """Refuse a header length that exceeds the limit or the file before anything that long is read."""
    if hlen > MAX_HEADER_BYTES:
        raise HeaderError(path, f"header length {hlen} exceeds the {MAX_HEADER_BYTES}-byte limit")
    if hlen > size - 8:
        raise HeaderError(path, f"header length {hlen} is larger than the file ({size} bytes): truncated?")


def read_header(path: str | os.PathLike[str]) -> FileHeader:
    """Parse and validate the header of a .safetensors file; raise HeaderError naming the file."""
    path = os.fspath(path)
    try:
        with open_regular(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise HeaderError(path, f"file is {size} bytes, too short for the 8-byte header length")
            (hlen,) = struct.unpack("<Q", prefix)
            check_length(path, hlen, size)
            raw = fh.read(hlen)
    except OSError as exc:
        raise HeaderError(path, f"cannot read: {exc.strerror or exc}") from exc
    return parse_header(path, size, raw)


def parse_header(path: str, size: int, raw: bytes) -> FileHeader:
    """Validate the JSON header `raw` of a file of `size` bytes (read locally or by HTTP Range)."""
    hlen = len(raw)
    try:
        parsed = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise HeaderError(path, f"header is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise HeaderError(path, f"header is a JSON {type(parsed).__name__}, not an object")
    meta = parsed.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise HeaderError(path, "__metadata__ is not an object")
    data_start = 8 + hlen
    data_len = size - data_start
    entries = [_entry(path, name, spec, data_start, data_len) for name, spec in parsed.items()]
    ordered = sorted(entries, key=lambda e: (e.start, e.nbytes))
    for prev, cur in zip(ordered, ordered[1:]):
        if cur.start < prev.start + prev.nbytes:
            raise HeaderError(path, f"tensors {prev.name!r} and {cur.name!r} overlap in the data area")
    metadata = {str(k): str(v) for k, v in meta.items()}
    if not all(_valid_text(t) for kv in metadata.items() for t in kv):
        raise HeaderError(path, "__metadata__ holds text that is not valid Unicode (a lone surrogate escape)")
    return FileHeader(path, size, raw, metadata, tuple(entries))
