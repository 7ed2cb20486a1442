"""The CUDA path against float64 scipy (runs only where a GPU is present; skipped in CI)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sl
import torch

from tpa_dist.compute.metrics import actual_rank
from tpa_dist.compute.spectrum import matrix_spectrum
from tpa_dist.compute.tasks import tasks_for_tensor

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


def test_concurrent_calls_on_streams_equal_one_call(tmp_path):
    """A GPU actor's concurrent batches (--gpu-streams, one CUDA stream per calling thread) give the results of
    the same tasks run one by one, and every stream's result matches float64 scipy."""
    from concurrent.futures import ThreadPoolExecutor

    from tpa_dist.run.actors import AnalysisWorker
    from tpa_dist.settings import AnalysisSettings

    rng = np.random.default_rng(11)
    tensors = {f"w{i}": CASES[case](rng).contiguous() for i, case in enumerate(sorted(CASES) * 2)}
    infos = _store(tmp_path, tensors)
    tasks = [t for name in sorted(infos) for t in tasks_for_tensor("m", "r", infos[name])]
    worker = AnalysisWorker(AnalysisSettings(block_mib=1), gpu=True)
    alone = {row["matrix_key"]: sv for row, sv in worker.analyze(tasks)}
    with ThreadPoolExecutor(4) as pool:
        parts = list(pool.map(worker.analyze, [tasks[i::4] for i in range(4)]))
    together = {row["matrix_key"]: (row, sv) for part in parts for row, sv in part}
    assert set(together) == set(alone)
    for key, (row, sv) in together.items():
        assert row["status"] == "ok" and row["device"].startswith("cuda:")
        np.testing.assert_allclose(sv, alone[key], rtol=0, atol=1e-12 * max(alone[key][0], 1e-300))
        _assert_spectrum_close(sv, sl.svdvals(tensors[key.split(".")[0]].double().numpy()))


def test_fresh_worker_takes_concurrent_calls_at_once(tmp_path):
    """In a fresh process (as a Ray GPU actor is), the first calls arrive on several threads together: none fails
    on torch's lazily loaded CUDA linear algebra (it is loaded when the worker starts)."""
    import subprocess
    import sys
    import textwrap

    rng = np.random.default_rng(3)
    _store(tmp_path, {f"w{i}": torch.from_numpy(rng.standard_normal((64, 48))).float() for i in range(8)})
    script = textwrap.dedent(
        f"""
        from concurrent.futures import ThreadPoolExecutor
        from tpa_dist.run.actors import AnalysisWorker
        from tpa_dist.checkpoint.catalog import open_model
        from tpa_dist.settings import AnalysisSettings
        from tpa_dist.compute.tasks import tasks_for_tensor
        tasks = [t for info in open_model({str(tmp_path)!r}).tensors() for t in tasks_for_tensor("m", "r", info)]
        worker = AnalysisWorker(AnalysisSettings(), gpu=True)
        with ThreadPoolExecutor(8) as pool:
            rows = [r for part in pool.map(worker.analyze, [[t] for t in tasks]) for r, _ in part]
        print(sorted((r["status"], r["error"]) for r in rows))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == str([("ok", None)] * 8), out.stdout + out.stderr


def test_rmt_on_cuda_equals_cpu(tmp_path):
    """--rmt on a GPU worker (the Grams of the matrix and of its shuffles on CUDA): every column as on the CPU, the
    planted trap named at the same place."""
    from dataclasses import replace

    from tpa_dist.compute.analysis import analyze_task
    from tpa_dist.settings import RmtSettings

    rng = np.random.default_rng(3)
    values = (rng.standard_t(4, size=(300, 200)) * 0.02).astype(np.float32)
    values[17, 40] = 3.0
    info = _store(tmp_path, {"w": torch.from_numpy(values).contiguous()})["w"]
    (task,) = tasks_for_tensor("m", "r", info)
    task = replace(task, rmt=RmtSettings(enabled=True))
    gpu, _ = analyze_task(task, device="cuda")
    cpu, _ = analyze_task(task, device="cpu")
    assert gpu.status == cpu.status == "ok" and gpu.rmt is not None
    for col in ("alpha", "xmin", "D", "sigma", "sigma_mp", "bulk_max", "detX_val", "max_rand_eval", "rand_distance",
                "tail_mean_vec_entropy", "bulk_mean_part_ratio"):  # fmt: skip
        assert getattr(gpu.rmt, col) == pytest.approx(getattr(cpu.rmt, col), rel=1e-9), col
    assert gpu.rmt.rand_num_spikes == cpu.rmt.rand_num_spikes >= 1 and gpu.rmt.traps[0][:2] == (17, 40)
