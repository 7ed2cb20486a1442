"""Quantized weights: FP8 with scales and packed GPTQ/AWQ are dequantized before analysis, checked against
float64 scipy on an independently dequantized reference; unsupported packings are skipped with a reason."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from safetensors.torch import save_file

from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.compute.analysis import analyze_task
from tpa_dist.compute.metrics import actual_rank
from tpa_dist.compute.spectrum import matrix_spectrum
from tpa_dist.compute.tasks import plan_tasks

from .test_spectrum import _assert_spectrum_close


def _tasks(folder, config=None):
    (folder / "config.json").write_text(json.dumps(config or {}))
    cat = open_model(folder)
    return {t.matrix_key: t for t in plan_tasks("m", "r", cat.tensors(), cat.config)}


@pytest.mark.parametrize("shape, block", [((64, 96), 32), ((40, 200), 16)])
def test_fp8_block_scaled_weights_are_dequantized(tmp_path, shape, block):
    rng = np.random.default_rng(1)
    w = torch.from_numpy(rng.standard_normal(shape) * rng.lognormal(0, 1, (shape[0], 1)))
    grid = (-(-shape[0] // block), -(-shape[1] // block))
    scale = torch.from_numpy(rng.uniform(0.01, 0.1, grid)).float()
    expanded = scale.repeat_interleave(block, 0)[: shape[0]].repeat_interleave(block, 1)[:, : shape[1]]
    q = (w / expanded).to(torch.float8_e4m3fn)
    save_file(
        {"layers.0.mlp.down_proj.weight": q, "layers.0.mlp.down_proj.weight_scale_inv": scale},
        str(tmp_path / "model.safetensors"),
    )
    tasks = _tasks(tmp_path)
    task = tasks["layers.0.mlp.down_proj.weight"]
    reference = (q.to(torch.float64) * expanded.double()).numpy()  # dequantized by torch, independently
    res = matrix_spectrum(task.region, block_bytes=2048)
    _assert_spectrum_close(res.singular_values, sl.svdvals(reference))
    assert res.stats.mean == pytest.approx(reference.mean(), rel=1e-9)
    assert tasks["layers.0.mlp.down_proj.weight_scale_inv"].kind == "matrix"  # the scale grid itself: analyzed as is
    raw = matrix_spectrum(task.region.__class__(**{**task.region.__dict__, "scale": None}))
    assert not np.allclose(raw.singular_values, res.singular_values)  # the scales do change the result


def test_fp8_per_tensor_scale(tmp_path):
    w = torch.from_numpy(np.random.default_rng(2).standard_normal((32, 48)))
    q = (w / 0.05).to(torch.float8_e5m2)
    save_file({"proj.weight": q, "proj.weight_scale": torch.tensor(0.05)}, str(tmp_path / "model.safetensors"))
    task = _tasks(tmp_path)["proj.weight"]
    reference = q.to(torch.float64).numpy() * np.float64(np.float32(0.05))
    _assert_spectrum_close(matrix_spectrum(task.region).singular_values, sl.svdvals(reference))


def _pack_rows(values: np.ndarray, bits: int) -> np.ndarray:
    """GPTQ qweight: 32/bits consecutive input rows per int32 (written independently of tpa_dist)."""
    per = 32 // bits
    out = np.zeros((values.shape[0] // per, values.shape[1]), dtype=np.uint32)
    for j in range(per):
        out |= values[j::per].astype(np.uint32) << np.uint32(bits * j)
    return out.view(np.int32)


def _pack_cols(values: np.ndarray, bits: int, order=None) -> np.ndarray:
    per = 32 // bits
    order = order or list(range(per))
    out = np.zeros((values.shape[0], values.shape[1] // per), dtype=np.uint32)
    for k in range(per):
        out |= values[:, order[k] :: per].astype(np.uint32) << np.uint32(bits * k)
    return out.view(np.int32)


@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_packed_int4_weights_are_dequantized(tmp_path, method):
    rng = np.random.default_rng(3)
    n_in, n_out, group = 64, 48, 16
    q = rng.integers(0, 16, (n_in, n_out))
    z = rng.integers(1, 16, (n_in // group, n_out))
    s = rng.uniform(0.001, 0.02, (n_in // group, n_out)).astype(np.float16)
    g = np.arange(n_in) // group
    reference = (q - z[g]) * s.astype(np.float64)[g]  # [in, out]
    if method == "gptq":  # v1 stores zeros − 1
        tensors = {
            "qweight": _pack_rows(q, 4),
            "qzeros": _pack_cols(z - 1, 4),
            "scales": s,
            "g_idx": g.astype(np.int32),
        }
    else:
        order = [0, 2, 4, 6, 1, 3, 5, 7]
        tensors = {"qweight": _pack_cols(q, 4, order), "qzeros": _pack_cols(z, 4, order), "scales": s}
    save_file(
        {f"model.layers.0.self_attn.q_proj.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()},
        str(tmp_path / "model.safetensors"),
    )
    tasks = _tasks(tmp_path, {"quantization_config": {"quant_method": method, "bits": 4, "group_size": group}})
    assert set(tasks) == {"model.layers.0.self_attn.q_proj.qweight"}  # companions folded in
    task = tasks["model.layers.0.self_attn.q_proj.qweight"]
    assert task.block_type == "q_proj" and task.layer_index == 0 and task.dtype == f"{method}-int4"
    row, sv = analyze_task(task)
    assert row["status"] == "ok", row["error"]
    # one shape: the module's (out, in) weight, in the shape string and in rows/cols alike
    assert (row["shape"], row["rows"], row["cols"]) == (f"({n_out}, {n_in})", n_out, n_in)
    _assert_spectrum_close(sv, sl.svdvals(reference))
    assert row["actual_rank"] == actual_rank(sl.svdvals(reference), n_in, n_out)
    assert row["mean"] == pytest.approx(reference.mean(), rel=1e-9)


def test_unsupported_packing_is_skipped_with_reason(tmp_path):
    ints = torch.zeros((8, 16), dtype=torch.int32)
    save_file(
        {
            "l.qweight": ints,
            "l.qzeros": torch.zeros((1, 2), dtype=torch.int32),
            "l.scales": torch.zeros((1, 16), dtype=torch.float16),
        },
        str(tmp_path / "model.safetensors"),
    )
    tasks = _tasks(tmp_path, {"quantization_config": {"quant_method": "gptq", "bits": 3}})
    assert {t.kind for t in tasks.values()} == {"skipped"}
    row, sv = analyze_task(tasks["l.qweight"])
    assert row["status"] == "skipped" and "3-bit packing is not supported" in row["error"] and sv is None
