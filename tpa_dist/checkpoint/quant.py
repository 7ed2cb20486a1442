"""Quantized checkpoints: FP8 weights with their scales (per tensor, per row, or DeepSeek-V3's 128×128
`weight_scale_inv` blocks) and packed GPTQ / AWQ integer weights, dequantized before analysis.

Formats are recognised from tensor names, shapes and config.json's `quantization_config`; anything packed
that is not understood is skipped with the reason recorded, never analyzed as if its bits were values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tpa_dist.checkpoint.catalog import TensorInfo
from tpa_dist.errors import TensorDataError

FP8 = ("F8_E4M3", "F8_E5M2")
FP8_SCALE_SUFFIXES = (".weight_scale_inv", ".weight_scale")
PACKED_PARTS = (".qweight", ".qzeros", ".scales", ".g_idx")
AWQ_REVERSE_ORDER = (0, 4, 1, 5, 2, 6, 3, 7)  # field k of an AWQ int32 sits at shift ORDER[k]·bits


@dataclass(frozen=True)
class Packed:
    """Where the parts of one GPTQ/AWQ linear layer are; enough to dequantize it."""

    method: str  # gptq | gptq_v2 | awq
    bits: int
    qweight: TensorInfo
    qzeros: TensorInfo
    scales: TensorInfo
    g_idx: TensorInfo | None


def fp8_scale_for(t: TensorInfo, by_name: dict[str, TensorInfo]) -> TensorInfo | None:
    """The scale tensor that belongs to an FP8 weight, if the checkpoint has one."""
    if t.dtype not in FP8 or not t.param_name.endswith(".weight"):
        return None
    stem = t.param_name[: -len(".weight")]
    for suffix in FP8_SCALE_SUFFIXES:
        scale = by_name.get(stem + suffix)
        if scale is not None:
            return scale
    return None


def scale_block(rows: int, cols: int, grid: tuple[int, int], config: dict) -> tuple[int, int]:
    """Values per scale along each axis: config's `weight_block_size` (DeepSeek-V3: [128, 128]) when it
    fits the grid, else the smallest power of two that yields the grid (as block quantizers use)."""
    qc = config.get("quantization_config") if isinstance(config.get("quantization_config"), dict) else {}
    block = qc.get("weight_block_size")
    out = []
    for n, g, i in ((rows, grid[0], 0), (cols, grid[1], 1)):
        if g <= 1:
            out.append(n)
            continue
        b = block[i] if isinstance(block, list) and len(block) == 2 and isinstance(block[i], int) else None
        if not b or -(-n // b) != g:
            b = next((1 << k for k in range(31) if -(-n // (1 << k)) == g), -(-n // g))
        out.append(b)
    return out[0], out[1]


def packed_layers(tensors: list[TensorInfo], config: dict) -> tuple[dict[str, Packed], dict[str, str]]:
    """(module prefix -> Packed) for understood GPTQ/AWQ layers, and (name -> reason) for packed tensors
    that cannot be dequantized (they are skipped)."""
    by_name = {t.param_name: t for t in tensors}
    qc = config.get("quantization_config") if isinstance(config.get("quantization_config"), dict) else {}
    method = str(qc.get("quant_method", "")).lower()
    if method == "gptq" and str(qc.get("checkpoint_format", "gptq")).lower() == "gptq_v2":
        method = "gptq_v2"
    bits = qc.get("bits", qc.get("w_bit", 4))
    layers: dict[str, Packed] = {}
    skipped: dict[str, str] = {}
    for t in tensors:
        if not t.param_name.endswith(".qweight"):
            continue
        prefix = t.param_name[: -len(".qweight")]
        parts = [by_name.get(prefix + s) for s in (".qzeros", ".scales")]
        reason = None
        if not isinstance(bits, int) or bits not in (2, 4, 8):
            reason = f"{bits}-bit packing is not supported (2, 4, 8)"
        elif None in parts or t.dtype != "I32" or parts[0].dtype != "I32" or t.ndim != 2:
            reason = "packed weight without int32 qzeros/scales companions: format not recognised"
        elif parts[0].ndim != 2 or parts[1].ndim != 2:
            reason = f"qzeros/scales of shapes {parts[0].shape}/{parts[1].shape} are not 2-D: format not recognised"
        if reason is None:
            fmt = method or _guess_method(t, parts[1], bits)
            if fmt not in ("gptq", "gptq_v2", "awq"):
                reason = f"quantization method {fmt or 'unknown'!r} is not supported (GPTQ and AWQ are)"
            else:
                layers[prefix] = Packed(fmt, bits, t, parts[0], parts[1], by_name.get(prefix + ".g_idx"))
        if reason:
            for s in PACKED_PARTS:
                if prefix + s in by_name:
                    skipped[prefix + s] = f"skipped: {reason}"
    return layers, skipped


def _guess_method(qweight: TensorInfo, scales: TensorInfo, bits: int) -> str:
    per = 32 // bits
    if qweight.shape[1] == scales.shape[1] and qweight.shape[0] * per >= scales.shape[0]:
        return "gptq"
    if qweight.shape[1] * per == scales.shape[1]:
        return "awq"
    return ""


def _unpack(words: np.ndarray, bits: int, axis: int, order: tuple[int, ...] | None = None) -> np.ndarray:
    """Split every int32 into 32/bits unsigned fields along `axis` (field j = bits j·b .. j·b+b−1)."""
    per = 32 // bits
    shifts = np.arange(per, dtype=np.uint32) * bits
    if order is not None:
        shifts = shifts[list(order)]
    u = words.astype(np.uint32)
    fields = (u[..., None] >> shifts) & np.uint32((1 << bits) - 1)  # [..., per]
    fields = np.moveaxis(fields, -1, axis + 1) if axis == 0 else fields
    shape = list(words.shape)
    shape[axis] *= per
    return fields.reshape(shape).astype(np.float64)


def dequantize_packed(p: Packed, read) -> np.ndarray:  # noqa: ANN001 - read(TensorInfo) -> ndarray
    """The dequantized weight as [in_features, out_features] float64 (transpose-invariant spectrum)."""
    qweight = read(p.qweight).astype(np.int64).astype(np.int32)
    qzeros = read(p.qzeros).astype(np.int64).astype(np.int32)
    scales = read(p.scales)
    if p.method == "awq":
        q = _unpack(qweight, p.bits, axis=1, order=AWQ_REVERSE_ORDER)
        z = _unpack(qzeros, p.bits, axis=1, order=AWQ_REVERSE_ORDER)
        n_in = q.shape[0]
        group = np.arange(n_in) // max(1, n_in // scales.shape[0])
    else:
        q = _unpack(qweight, p.bits, axis=0)
        z = _unpack(qzeros, p.bits, axis=1) + (1.0 if p.method == "gptq" else 0.0)
        n_in = q.shape[0]
        if p.g_idx is not None:
            group = read(p.g_idx).astype(np.int64).ravel()
        else:
            group = np.arange(n_in) // max(1, n_in // scales.shape[0])
    if group.min(initial=0) < 0 or group.max(initial=0) >= scales.shape[0]:
        raise TensorDataError(p.qweight.param_name, f"g_idx holds group indices outside 0..{scales.shape[0] - 1}")
    if group.shape[0] != n_in or z.shape[1] < q.shape[1]:
        raise TensorDataError(p.qweight.param_name, "packed shapes of qweight/qzeros/scales/g_idx do not agree")
    return (q - z[group, : q.shape[1]]) * scales[group, : q.shape[1]]
