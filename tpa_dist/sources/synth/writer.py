"""Write synthetic checkpoints: streamed safetensors shards, config.json, tokenizer files, a manifest.

Values are trained-like (a heavy-tailed bulk from log-normal row/column scales plus a few spikes with
power-law strengths); planted-rank matrices are products of ternary factors scaled by a power of two,
so they are exactly representable in bf16/fp16 and their rank survives storage exactly.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tpa_dist.checkpoint.dtypes import ITEMSIZE, encode_bf16
from tpa_dist.sources.synth.presets import Preset, TensorSpec, preset
from tpa_dist.sources.synth.tokenizers import write_tokenizer

MANIFEST = "tpa_synth.json"
_BLOCK_ELEMS = 1 << 23  # generate at most 8M values at a time


def _rng(seed: int, name: str, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), salt])


def _trained_blocks(spec_name: str, rows: int, cols: int, seed: int) -> Iterator[np.ndarray]:
    rng = _rng(seed, spec_name)
    scale = 0.5 / math.sqrt(cols)
    row_s = rng.lognormal(0.0, 0.45, rows).astype(np.float32)
    col_s = rng.lognormal(0.0, 0.45, cols).astype(np.float32)
    k = max(1, min(8, min(rows, cols) // 8))
    strength = (3.0 * scale * math.sqrt(max(rows, cols)) * (np.arange(1, k + 1) ** -1.0)).astype(np.float32)
    v = rng.standard_normal((k, cols), dtype=np.float32) / math.sqrt(cols)
    step = max(1, _BLOCK_ELEMS // max(cols, 1))
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        block = rng.standard_normal((r1 - r0, cols), dtype=np.float32)
        block *= row_s[r0:r1, None] * scale
        block *= col_s[None, :]
        u = rng.standard_normal((r1 - r0, k), dtype=np.float32) / math.sqrt(rows)
        block += (u * strength) @ v
        yield block


def _planted(spec_name: str, rows: int, cols: int, rank: int, seed: int) -> np.ndarray:
    rng = _rng(seed, spec_name, 1)
    a = rng.integers(-1, 2, (rows, rank)).astype(np.float32)
    b = rng.integers(-1, 2, (rank, cols)).astype(np.float32)
    return (a @ b) * np.float32(2.0**-7)


def _matrix_slices(spec: TensorSpec, seed: int) -> Iterator[np.ndarray]:
    """Row blocks of a tensor's values (3-D tensors slice by slice)."""
    shape = spec.shape
    if len(shape) == 3:
        for e in range(shape[0]):
            sub = TensorSpec(f"{spec.name}[{e}]", shape[1:], spec.dtype, spec.kind if e == 1 else "trained", spec.rank)
            yield from _matrix_slices(sub, seed)
        return
    if spec.kind == "zero":
        yield np.zeros(shape, np.float32)
    elif spec.kind == "planted":
        yield _planted(spec.name, shape[0], shape[1], int(spec.rank or 1), seed)
    elif spec.kind == "mask":
        yield np.broadcast_to(np.tril(np.ones(shape[-2:], np.float32)), shape).copy()
    elif len(shape) == 1:
        rng = _rng(seed, spec.name)
        base = 1.0 if spec.kind == "norm" else 0.0
        yield (base + 0.02 * rng.standard_normal(shape[0])).astype(np.float32)
    else:
        yield from _trained_blocks(spec.name, shape[0], int(np.prod(shape[1:])), seed)


def _encode(block: np.ndarray, dtype: str) -> bytes:
    if dtype == "BF16":
        return encode_bf16(block).tobytes()
    return block.astype({"F32": "<f4", "F16": "<f2", "F64": "<f8"}[dtype]).tobytes()


def _split_shards(specs: list[TensorSpec], n: int) -> list[list[TensorSpec]]:
    sizes = [math.prod(s.shape) * ITEMSIZE[s.dtype] for s in specs]
    target = sum(sizes) / n
    shards: list[list[TensorSpec]] = [[]]
    acc = 0.0
    for spec, size in zip(specs, sizes):
        if acc >= target * len(shards) and len(shards) < n:
            shards.append([])
        shards[-1].append(spec)
        acc += size
    return shards


def _write_shard(path: Path, specs: list[TensorSpec], seed: int, values: bool = True) -> int:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for s in specs:
        nbytes = math.prod(s.shape) * ITEMSIZE[s.dtype]
        header[s.name] = {"dtype": s.dtype, "shape": list(s.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little"))
        fh.write(raw)
        if not values:  # headers only: a sparse file of the right size (catalog/planner tests)
            fh.truncate(8 + len(raw) + offset)
        for s in specs if values else ():
            for block in _matrix_slices(s, seed):
                fh.write(_encode(block, s.dtype))
    tmp.replace(path)
    return offset


def planted_ranks(p: Preset) -> dict[str, int]:
    """Matrix key -> planted rank (expert slices as ``name[e]``); zero matrices have rank 0."""
    out: dict[str, int] = {}
    for s in p.tensors:
        if s.kind in ("planted", "zero"):
            key = f"{s.name}[1]" if len(s.shape) == 3 else s.name
            out[key] = int(s.rank or 0)
    return out


def write_synthetic(name: str, out_dir: str | Path, seed: int = 0, values: bool = True) -> Path:
    """Write preset `name` into `out_dir` (created); return the folder. Idempotent for the same seed.

    With ``values=False`` the shards are sparse files holding only real headers (zero-valued data). Derived
    presets (fine-tunes, a training trajectory) are synth_derived.write_any's.
    """
    return write_preset(preset(name), out_dir, seed, values)


def write_preset(p: Preset, out_dir: str | Path, seed: int = 0, values: bool = True) -> Path:
    """Write a Preset (a built-in one, or one a benchmark composes) into `out_dir`."""
    name = p.name
    out = Path(out_dir)
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        try:
            done = json.loads(manifest_path.read_text())
            if (done.get("preset"), done.get("seed"), done.get("values", True), done.get("complete")) == (
                name,
                seed,
                values,
                True,
            ):
                return out
        except ValueError:
            pass
    out.mkdir(parents=True, exist_ok=True)
    groups = _split_shards(p.tensors, p.shards)
    names = (
        ["model.safetensors"]
        if len(groups) == 1
        else [f"model-{i:05d}-of-{len(groups):05d}.safetensors" for i in range(1, len(groups) + 1)]
    )
    weight_map = {s.name: fname for fname, group in zip(names, groups) for s in group}
    if len(groups) > 1 and values:  # shards are independent: write them in parallel processes
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(len(groups), os.cpu_count() or 1)) as pool:
            total = sum(
                pool.map(_write_shard, [out / f for f in names], groups, [seed] * len(groups), [values] * len(groups))
            )
    else:
        total = sum(_write_shard(out / f, g, seed, values) for f, g in zip(names, groups))
    if len(groups) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (out / "config.json").write_text(json.dumps(p.config, indent=2))
    (out / "generation_config.json").write_text(json.dumps({"do_sample": False, "max_new_tokens": 32}))
    write_tokenizer(out, p.tokenizer, p.vocab_size)
    manifest = {"preset": name, "seed": seed, "values": values, "planted_ranks": planted_ranks(p), "complete": True}
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return out
