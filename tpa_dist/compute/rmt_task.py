"""The --rmt part of one matrix's analysis: WeightWatcher's per-layer columns (compute/rmt.py) from the spectrum
the matrix task computed, the chosen power-law fit (powerlaw_fits.py), and the element-wise shuffled matrix's
spectrum (shuffle.py) with the entries behind its spikes, named by row and column."""

from __future__ import annotations

import time

import numpy as np

from tpa_dist.compute.powerlaw_fits import chosen_fit
from tpa_dist.compute.rmt import detx, mp_fit, randomized, rank_columns, vector_columns
from tpa_dist.compute.rows import TRAP_CAP, RmtRow
from tpa_dist.compute.shuffle import LargestEntries, matrix_seed, shuffled_blocks
from tpa_dist.compute.spectrum import SpectrumResult, gram_singular_values, range_guarded
from tpa_dist.compute.tasks import MatrixTask
from tpa_dist.errors import TensorDataError
from tpa_dist.settings import RmtSettings

SMALL_M = 100  # below this many eigenvalues WeightWatcher pools 5 shuffles ("to improve the random estimator")
SMALL_M_REPLICAS = 5


def shuffle_replicas(m_short: int) -> int:
    return SMALL_M_REPLICAS if m_short < SMALL_M else 1


def analyze_rmt(
    task: MatrixTask, spectrum: SpectrumResult, settings: RmtSettings, device: str, block_bytes: int
) -> RmtRow:
    """The rmt_analysis row of one matrix; parts switched off in `settings` stay NULL."""
    t0 = time.perf_counter()
    region = task.region
    sv = spectrum.singular_values
    with np.errstate(over="ignore"):
        evals = np.sort(sv**2)
    if not np.isfinite(evals).all():  # σ² past 1.8e308: every ESD fit (a KDE, a power law) is undefined
        raise TensorDataError(
            task.matrix_key,
            f"--rmt: its eigenvalues σ² overflow float64 (σ_max = {sv.max():.3g}, entries near 1e154 or more), so "
            "WeightWatcher's ESD fits are undefined for it; run it without --rmt for its other metrics",
        )
    base = rank_columns(sv, region.rows, region.cols, settings.tolerance)
    n_long, m_short = base["N"], base["M"]
    row = RmtRow(matrix_key=task.matrix_key, rmt_id=settings.rmt_id(), **base)
    row.update(chosen_fit(evals, settings, device))
    n_tail = row.num_pl_spikes if row.status == "success" else None
    if evals[-1] > 0:  # the zero matrix has no ESD to fit
        with np.errstate(all="ignore"):
            if settings.mp_fit:
                row.update(mp_fit(evals, n_long, m_short))
            if settings.detx:
                row.update(detx(evals, n_tail))
            if settings.vectors and spectrum.vectors is not None:
                row.update(vector_columns(spectrum.vectors[:, ::-1], n_tail))
        if settings.randomize:
            largest = LargestEntries(TRAP_CAP)
            replicas = []
            for r in range(shuffle_replicas(m_short)):
                rng = matrix_seed(settings.seed, task.matrix_key, r)
                blocks = shuffled_blocks(region, rng, block_bytes, largest if r == 0 else None)
                singular_values = gram_singular_values(blocks, m_short, device, range_guarded(region))
                replicas.append(np.sort(singular_values**2))
            with np.errstate(all="ignore"):
                row.update(randomized(evals, replicas, n_long, m_short))
            row.update({"seed": settings.seed, "replicas": len(replicas)})
            row.traps = _traps(largest, row.rand_num_spikes or 0, task)
    row.seconds = time.perf_counter() - t0
    row.finite()
    return row


def _traps(largest: LargestEntries, count: int, task: MatrixTask) -> list[tuple[int, int, float]]:
    """The `count` largest entries (at most TRAP_CAP): a shuffled matrix keeps its elements, so the spikes of its
    ESD beyond the bulk edge come from its largest ones. (row, col) as in the layer's weight (a GPTQ/AWQ layer,
    dequantized as [in, out], is transposed back)."""
    top = largest.top(min(count, TRAP_CAP))
    return [(c, r, v) for r, c, v in top] if task.region.packed is not None else top
