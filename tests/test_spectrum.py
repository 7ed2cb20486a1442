"""The spectral engine against float64 scipy.linalg.svdvals on matrices with known structure."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from safetensors.torch import save_file

from tpa_dist.checkpoint.catalog import open_model
from tpa_dist.checkpoint.reader import Region
from tpa_dist.compute.metrics import actual_rank, energy_rank
from tpa_dist.compute.spectrum import matrix_spectrum
from tpa_dist.compute.tasks import tasks_for_tensor
from tpa_dist.errors import TensorDataError


def _assert_spectrum_close(sv: np.ndarray, ref: np.ndarray) -> None:
    """The issue's tolerances: 1e-9·σmax above 1e-3·σmax, 1e-6·σmax below."""
    assert sv.shape == ref.shape
    smax = max(ref[0], 1e-300)
    big = ref > 1e-3 * smax
    assert np.all(np.abs(sv[big] - ref[big]) <= 1e-9 * smax)
    assert np.all(np.abs(sv[~big] - ref[~big]) <= 1e-6 * smax)


def _store(tmp_path, tensors: dict[str, torch.Tensor]):
    save_file(tensors, str(tmp_path / "model.safetensors"))
    return {t.param_name: t for t in open_model(tmp_path).tensors()}


def _planted(rows, cols, rank, rng):
    return torch.from_numpy((rng.integers(-1, 2, (rows, rank)) @ rng.integers(-1, 2, (rank, cols))) / 64.0)


CASES = {
    "tall_f32": lambda rng: torch.from_numpy(rng.standard_normal((300, 40))).float(),
    "wide_f32": lambda rng: torch.from_numpy(rng.standard_normal((40, 300))).float(),
    "square_f16": lambda rng: torch.from_numpy(rng.standard_normal((96, 96)) * 0.02).half(),
    "tall_bf16": lambda rng: torch.from_numpy(rng.standard_normal((500, 64))).bfloat16(),
    "planted_rank7_bf16": lambda rng: _planted(200, 80, 7, rng).bfloat16(),
    "planted_rank3_wide_f16": lambda rng: _planted(30, 250, 3, rng).half(),
    "zero": lambda rng: torch.zeros(50, 20),
    "f64_ill_conditioned": lambda rng: torch.from_numpy(
        sl.qr(rng.standard_normal((120, 60)), mode="economic")[0] @ np.diag(np.logspace(0, -12, 60))
    ),
    "single_row": lambda rng: torch.from_numpy(rng.standard_normal((1, 33))).float(),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("block_bytes", [1 << 10, 64 << 20])
def test_spectrum_matches_scipy(tmp_path, case, block_bytes):
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    tensor = CASES[case](rng)
    info = _store(tmp_path, {"w": tensor.contiguous()})["w"]
    (task,) = tasks_for_tensor("m", "r", info)
    res = matrix_spectrum(task.region, block_bytes=block_bytes)
    values = tensor.double().numpy()  # the stored values, decoded by torch (independent of our reader)
    ref = sl.svdvals(values)
    _assert_spectrum_close(res.singular_values, ref)
    rows, cols = values.shape
    assert actual_rank(res.singular_values, rows, cols) == int(np.linalg.matrix_rank(values.astype(np.float32)))
    for q in (0.5, 0.9, 0.95, 0.99):
        assert energy_rank(res.singular_values, q) == energy_rank(ref, q)
    assert np.isclose(res.stats.mean, values.mean(), rtol=1e-9, atol=1e-15)
    assert np.isclose(res.stats.var, values.var(), rtol=1e-9, atol=1e-15)
    if case.startswith("planted"):
        assert actual_rank(res.singular_values, rows, cols) == int(case.split("rank")[1].split("_")[0])
    if case == "zero":
        assert actual_rank(res.singular_values, rows, cols) == 0


def test_3d_expert_tensor_is_analyzed_per_expert(tmp_path):
    rng = np.random.default_rng(3)
    experts = torch.stack([_planted(48, 32, r, rng) for r in (2, 5, 9)]).bfloat16()
    info = _store(tmp_path, {"model.layers.0.mlp.experts.down_proj": experts})["model.layers.0.mlp.experts.down_proj"]
    tasks = list(tasks_for_tensor("m", "r", info))
    assert [t.matrix_key for t in tasks] == [f"model.layers.0.mlp.experts.down_proj[{e}]" for e in range(3)]
    assert [t.expert_index for t in tasks] == [0, 1, 2]
    for task, rank, slice_ in zip(tasks, (2, 5, 9), experts.double().numpy()):
        res = matrix_spectrum(task.region)
        _assert_spectrum_close(res.singular_values, sl.svdvals(slice_))
        assert actual_rank(res.singular_values, 48, 32) == rank


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_values_raise_named_error(tmp_path, bad):
    t = torch.ones(10, 10)
    t[3, 4] = bad
    info = _store(tmp_path, {"layer.bad.weight": t})["layer.bad.weight"]
    (task,) = tasks_for_tensor("m", "r", info)
    with pytest.raises(TensorDataError, match="layer.bad.weight.*NaN or Inf"):
        matrix_spectrum(task.region, block_bytes=64)


def test_truncated_shard_is_a_named_error(tmp_path):
    region = Region("w", str(tmp_path / "short.bin"), 0, "F32", 10, 10)
    (tmp_path / "short.bin").write_bytes(b"\0" * 100)
    with pytest.raises(TensorDataError, match="truncated"):
        matrix_spectrum(region)


def test_every_synthetic_matrix_matches_scipy(synth_models):
    for path in synth_models.values():
        for info in open_model(path).tensors():
            for task in tasks_for_tensor("m", "r", info):
                if task.kind != "matrix":
                    continue
                from tpa_dist.checkpoint.reader import read_all

                values = read_all(task.region)
                _assert_spectrum_close(
                    matrix_spectrum(task.region, block_bytes=4096).singular_values, sl.svdvals(values)
                )
