"""The CUDA path against float64 scipy (runs only where a GPU is present; skipped in CI)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sl
import torch

from tpa_dist.metrics import actual_rank
from tpa_dist.spectrum import matrix_spectrum
from tpa_dist.tasks import tasks_for_tensor

from .test_spectrum import CASES, _assert_spectrum_close, _store

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("case", sorted(CASES))
def test_cuda_spectrum_matches_scipy(tmp_path, case):
    tensor = CASES[case](np.random.default_rng(7))
    info = _store(tmp_path, {"w": tensor.contiguous()})["w"]
    (task,) = tasks_for_tensor("m", "r", info)
    gpu = matrix_spectrum(task.region, device="cuda", block_bytes=1 << 12)
    cpu = matrix_spectrum(task.region, device="cpu")
    values = tensor.double().numpy()
    _assert_spectrum_close(gpu.singular_values, sl.svdvals(values))
    assert actual_rank(gpu.singular_values, *values.shape) == actual_rank(cpu.singular_values, *values.shape)
    assert gpu.stats.mean == pytest.approx(cpu.stats.mean, rel=1e-9, abs=1e-15)
    assert gpu.stats.small == cpu.stats.small
