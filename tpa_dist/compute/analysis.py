"""Analyze one task: read its bytes, compute spectrum, metrics and statistics; return a result row.

This is the function every worker runs; it never raises for bad data — the row says status 'error'.
"""

from __future__ import annotations

import time

import numpy as np

from tpa_dist.checkpoint.reader import Region
from tpa_dist.compute.metrics import spectral_metrics
from tpa_dist.compute.rows import DeltaRow, MatrixRow
from tpa_dist.compute.spectrum import matrix_spectrum, vector_stats
from tpa_dist.compute.tasks import DeltaTask, MatrixTask
from tpa_dist.errors import TpaError, is_out_of_memory
from tpa_dist.settings import METHOD_VERSION, AnalysisSettings

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


def failed_row(task: MatrixTask | DeltaTask, message: str) -> MatrixRow | DeltaRow:
    """The stored row of a task that could not run (its worker lost, its shard not fetchable): status 'error' and
    the message, prefixed with the tensor's name."""
    row = delta_base_row(task) if isinstance(task, DeltaTask) else base_row(task)
    row.update(status="error", error=f"tensor {task.matrix_key}: {message}", device="cpu")
    return row


def memory_error(key: str, region: Region, block_bytes: int | None, exc: BaseException) -> str:
    """The row error of a matrix whose analysis ran out of memory: what it needs, and what to change."""
    n = min(region.rows, region.cols)
    gram, block = 8 * n * n / 2**20, (block_bytes or 0) / 2**20
    return (
        f"tensor {key}: out of memory analyzing this {region.rows}×{region.cols} {region.dtype} matrix (its Gram "
        f"needs {gram:,.0f} MiB, each streamed block up to {block:,.0f} MiB; {type(exc).__name__}: {exc}): lower "
        "--block-mib, or give each worker more memory (fewer --num-workers)"
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
            rmt = task.rmt
            res = matrix_spectrum(
                task.region,
                sparsity_threshold=threshold,
                block_bytes=block_bytes,
                device=device,
                vectors=rmt is not None and rmt.vectors,
            )
            metrics = spectral_metrics(res.singular_values, task.region.rows, task.region.cols, device)
            measured = {**res.stats.as_row(), **{k: v for k, v in metrics.items() if not k.startswith("svd_90")}}
            if rmt is not None:
                from tpa_dist.compute.rmt_task import analyze_rmt

                measured["rmt"] = analyze_rmt(task, res, rmt, device, block_bytes)
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
        elif is_out_of_memory(exc):
            row.update(status="error", error=memory_error(task.matrix_key, task.region, block_bytes, exc))
        else:
            row.update(status="error", error=f"tensor {task.matrix_key}: {type(exc).__name__}: {exc}")
        sv = None
    row.seconds = time.perf_counter() - t0
    row.finite()
    return row, sv


def delta_base_row(task: DeltaTask) -> DeltaRow:
    """The delta_analysis row of a pair before anything is measured."""
    t, b = task.tuned, task.base
    rows, cols = t.matrix_shape
    return DeltaRow(
        model_id=t.model_id,
        revision=t.revision,
        base_model_id=b.model_id,
        base_revision=b.revision,
        matrix_key=t.matrix_key,
        param_name=t.param_name,
        expert_index=t.expert_index,
        layer_index=t.layer_index,
        block_type=t.block_type,
        shape=f"({rows}, {cols})",
        rows=rows,
        cols=cols,
        dtype=t.dtype,
        base_dtype=b.dtype,
    )


def analyze_delta(
    task: DeltaTask,
    settings: AnalysisSettings = DEFAULT_SETTINGS,
    *,
    device: str = "cpu",
    block_bytes: int | None = None,
) -> tuple[DeltaRow, np.ndarray | None]:
    """(delta_analysis row, singular values of ΔW or None); errors become status='error' rows, never exceptions."""
    from tpa_dist.compute.delta import delta_spectrum, lora_delta_spectrum

    row = delta_base_row(task)
    row.update(device=device)
    t0 = time.perf_counter()
    sv = None
    try:
        budget = block_bytes or settings.block_bytes
        if task.lora is not None:  # an adapter: from its factors (CPU float64 whatever the worker)
            res = lora_delta_spectrum(task.lora, task.base.region, task.settings, budget, task.base_norms)
        else:
            res = delta_spectrum(task.tuned.region, task.base.region, task.settings, budget, device, task.base_norms)
        rows, cols = task.tuned.region.rows, task.tuned.region.cols
        metrics = {
            k: v
            for k, v in spectral_metrics(res.singular_values, rows, cols, device).items()
            if not k.startswith("svd_90")
        }
        s = task.settings
        row.update(
            metrics,
            relative_update=metrics["frobenius_norm"] / res.base_frobenius if res.base_frobenius > 0 else None,
            spectral_update=metrics["spectral_norm"] / res.base_spectral if res.base_spectral > 0 else None,
            base_frobenius_norm=res.base_frobenius,
            tuned_frobenius_norm=res.tuned_frobenius,
            subspace_side=res.side,
        )
        if res.principal_angles is not None:
            row.update(
                subspace_rank=min(s.subspace_rank, len(res.singular_values)),
                principal_angles=[float(a) for a in res.principal_angles],
                max_principal_angle=float(res.principal_angles.max()) if len(res.principal_angles) else None,
                intruder_k=min(s.intruder_k, len(res.singular_values)),
                intruder_epsilon=s.intruder_epsilon,
                intruders=res.intruders,
                intruder_similarity=[float(c) for c in res.intruder_similarity],
            )
        sv = res.singular_values
    except TpaError as exc:
        row.update(status="error", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad pair is its own row's error, never the run's
        if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError: re-run on a CPU worker
            _free_cuda()
            row.update(status="oom", error=f"tensor {task.matrix_key}: {exc}")
        elif is_out_of_memory(exc):
            row.update(status="error", error=memory_error(task.matrix_key, task.tuned.region, block_bytes, exc))
        else:
            row.update(status="error", error=f"tensor {task.matrix_key}: {type(exc).__name__}: {exc}")
    row.seconds = time.perf_counter() - t0
    row.finite()
    return row, sv
