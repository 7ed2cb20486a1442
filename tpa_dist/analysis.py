"""Analyze one task: read its bytes, compute spectrum, metrics and statistics; return a result row.

This is the function every worker runs; it never raises for bad data — the row says status 'error'.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .errors import TpaError
from .metrics import spectral_metrics
from .spectrum import DEFAULT_BLOCK_BYTES, matrix_spectrum, vector_stats
from .tasks import METHOD_VERSION, MatrixTask


def base_row(task: MatrixTask, settings_id: str) -> dict[str, object]:
    r = task.region
    return {
        "model_id": task.model_id,
        "revision": task.revision,
        "settings_id": settings_id,
        "matrix_key": task.matrix_key,
        "param_name": task.param_name,
        "expert_index": task.expert_index,
        "layer_index": task.layer_index,
        "block_type": task.block_type,
        "kind": task.kind,
        "shape": "(" + ", ".join(str(d) for d in task.shape) + ("," if len(task.shape) == 1 else "") + ")",
        "rows": r.rows if task.kind == "matrix" else None,
        "cols": r.cols if task.kind == "matrix" else None,
        "numel": r.rows * r.cols,
        "dtype": task.dtype,
        "shard": task.shard,
        "nbytes": r.nbytes,
    }


def _free_cuda() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def analyze_task(
    task: MatrixTask,
    settings_id: str,
    sparsity_threshold: float,
    *,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    device: str = "cpu",
) -> tuple[dict, np.ndarray | None]:
    """(matrix_analysis row, singular values or None); errors become status='error' rows."""
    row = base_row(task, settings_id)
    row.update(sparsity_threshold=sparsity_threshold, device=device, method=None, status="ok", error=None)
    t0 = time.perf_counter()
    sv = None
    try:
        if task.kind == "skipped":
            row.update(status="skipped", error=f"tensor {task.matrix_key}: {task.note}")
        elif task.kind == "matrix":
            res = matrix_spectrum(
                task.region, sparsity_threshold=sparsity_threshold, block_bytes=block_bytes, device=device
            )
            measured = {
                **res.stats.as_row(),
                **spectral_metrics(res.singular_values, task.region.rows, task.region.cols, device),
            }
            row.update(measured, method=METHOD_VERSION)  # whole, or not at all
            sv = res.singular_values
        else:
            row.update(
                vector_stats(task.region, sparsity_threshold=sparsity_threshold, block_bytes=block_bytes).as_row()
            )
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
    row["seconds"] = time.perf_counter() - t0
    for key, value in list(row.items()):
        if isinstance(value, float) and not math.isfinite(value):
            row[key] = None
    return row, sv
