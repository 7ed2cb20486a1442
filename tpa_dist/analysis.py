"""Analyze one task: read its bytes, compute spectrum, metrics and statistics; return a result row.

This is the function every worker runs; it never raises for bad data — the row says status 'error'.
"""

from __future__ import annotations

import time

import numpy as np

from .errors import TpaError
from .metrics import spectral_metrics
from .rows import MatrixRow
from .settings import METHOD_VERSION, AnalysisSettings
from .spectrum import matrix_spectrum, vector_stats
from .tasks import MatrixTask

DEFAULT_SETTINGS = AnalysisSettings()


def base_row(task: MatrixTask) -> MatrixRow:
    """The row of a task before anything is measured: identity and shape, from the task alone."""
    if task.kind == "matrix":
        rows, cols = task.matrix_shape
        shape, numel = (rows, cols), rows * cols
    else:
        rows = cols = None
        shape, numel = task.shape, task.region.rows * task.region.cols
    return MatrixRow(
        model_id=task.model_id,
        revision=task.revision,
        matrix_key=task.matrix_key,
        param_name=task.param_name,
        expert_index=task.expert_index,
        layer_index=task.layer_index,
        block_type=task.block_type,
        kind=task.kind,
        shape="(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")",
        rows=rows,
        cols=cols,
        numel=numel,
        dtype=task.dtype,
        shard=task.shard,
        nbytes=task.region.nbytes,
    )


def _free_cuda() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def analyze_task(
    task: MatrixTask,
    settings: AnalysisSettings = DEFAULT_SETTINGS,
    *,
    device: str = "cpu",
    block_bytes: int | None = None,
) -> tuple[MatrixRow, np.ndarray | None]:
    """(matrix_analysis row, singular values or None); errors become status='error' rows, never exceptions.
    `block_bytes` overrides the settings' MiB budget (tests and benchmarks use tiny blocks)."""
    row = base_row(task)
    threshold, block_bytes = settings.sparsity_threshold, block_bytes or settings.block_bytes
    row.update(sparsity_threshold=threshold, device=device)
    t0 = time.perf_counter()
    sv = None
    try:
        if task.kind == "skipped":
            row.update(status="skipped", error=f"tensor {task.matrix_key}: {task.note}")
        elif task.kind == "matrix":
            res = matrix_spectrum(task.region, sparsity_threshold=threshold, block_bytes=block_bytes, device=device)
            measured = {
                **res.stats.as_row(),
                **spectral_metrics(res.singular_values, task.region.rows, task.region.cols, device),
            }
            row.update(measured, method=METHOD_VERSION)  # whole, or not at all
            sv = res.singular_values
        else:
            row.update(vector_stats(task.region, sparsity_threshold=threshold, block_bytes=block_bytes).as_row())
    except TpaError as exc:
        row.update(status="error", error=str(exc))
        sv = None
    except Exception as exc:  # noqa: BLE001 - one bad tensor is its own row's error, never the run's
        if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError: re-run on a CPU worker
            _free_cuda()
            row.update(status="oom", error=f"tensor {task.matrix_key}: {exc}")
        else:
            row.update(status="error", error=f"tensor {task.matrix_key}: {type(exc).__name__}: {exc}")
        sv = None
    row.seconds = time.perf_counter() - t0
    row.finite()
    return row, sv
