"""The safetensors dtype table and exact decoding of raw little-endian bytes to float arrays."""

from __future__ import annotations

import numpy as np

#: safetensors dtype name -> bytes per element
ITEMSIZE: dict[str, int] = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
}

#: dtypes that hold weights; integer and boolean tensors are buffers (ids, masks), never analyzed as matrices
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})

_NUMPY: dict[str, str] = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "u1",
}


def raw_numpy_dtype(dtype: str) -> np.dtype:
    """The numpy dtype that holds one stored element's bits (bf16/fp8 as unsigned ints)."""
    if dtype == "BF16":
        return np.dtype("<u2")
    if dtype in ("F8_E4M3", "F8_E5M2"):
        return np.dtype("u1")
    return np.dtype(_NUMPY[dtype])


def _fp8_table(dtype: str) -> np.ndarray:
    """All 256 fp8 codes decoded to float32 (torch's exact fp8 definitions)."""
    import torch

    tdtype = torch.float8_e4m3fn if dtype == "F8_E4M3" else torch.float8_e5m2
    codes = torch.arange(256, dtype=torch.uint8).view(tdtype)
    return codes.to(torch.float32).numpy()


_FP8_TABLES: dict[str, np.ndarray] = {}


def decode(raw: np.ndarray, dtype: str, out_dtype: type = np.float64) -> np.ndarray:
    """Decode stored bits to `out_dtype` exactly (every stored float is representable in float64)."""
    if dtype == "BF16":
        bits = raw.astype(np.uint32)
        bits <<= 16  # in place: one temporary, not two
        return bits.view(np.float32).astype(out_dtype, copy=False)
    if dtype in ("F8_E4M3", "F8_E5M2"):
        table = _FP8_TABLES.get(dtype)
        if table is None:
            table = _FP8_TABLES[dtype] = _fp8_table(dtype)
        return table[raw].astype(out_dtype, copy=False)
    return raw.astype(out_dtype, copy=False)


def encode_bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bits with round-to-nearest-even, as torch does."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) >> 16).astype(np.uint16)
