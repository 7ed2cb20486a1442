"""What fine-tuning changed, exactly and lazily: ΔW = W_tuned − W_base of one matrix, never materialised whole.

Both matrices stream by row block from their own byte ranges (any stored dtypes, decoded to float64); each pair of
blocks adds to three Gram matrices of the smaller side n: ΔᵀΔ (from the difference of the blocks, so a small
update is not lost to cancellation), W_tᵀW_t and W_bᵀW_b. Memory is O(block + 3·n²), independent of the long
side.

* σ(ΔW) = sqrt(eigvalsh(ΔᵀΔ)) — the spectrum every matrix metric is computed from;
* the singular vectors of W_t and W_b on that side come from eigh of their Grams (right singular vectors for a
  tall matrix; left ones, of the transpose that was streamed, for a wide one: `subspace_side`);
* principal angles between the top-r singular subspaces: arccos of the singular values of V_bᵀV_t (r = 16);
* intruder dimensions (Shuttleworth et al., 2024): among the top-k singular vectors of W_t, those whose largest
  |cosine| with every singular vector of W_b is below ε (k = 10, ε = 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import TensorDataError
from .reader import Region, iter_blocks
from .settings import DeltaSettings


@dataclass
class DeltaResult:
    singular_values: np.ndarray  # σ of ΔW, descending
    base_frobenius: float
    base_spectral: float
    tuned_frobenius: float
    principal_angles: np.ndarray | None  # radians, ascending (None without the subspace metrics)
    intruders: int | None
    intruder_similarity: np.ndarray | None  # largest |cos| of each top-k tuned vector with any base vector
    side: str  # right | left: which singular vectors (the smaller side's)


def _eigh_desc(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lam, vec = np.linalg.eigh(gram)
    return np.sqrt(np.clip(lam[::-1], 0.0, None)), vec[:, ::-1]


def delta_spectrum(tuned: Region, base: Region, settings: DeltaSettings, block_bytes: int) -> DeltaResult:
    """Spectrum of ΔW and the subspace change of one matrix pair (same shape), streamed block by block."""
    if (tuned.rows, tuned.cols) != (base.rows, base.cols):
        raise TensorDataError(
            tuned.name, f"shape {(tuned.rows, tuned.cols)} differs from the base's {(base.rows, base.cols)}"
        )
    transpose = tuned.rows < tuned.cols
    n = min(tuned.rows, tuned.cols)
    g_d = np.zeros((n, n))
    sub = settings.subspace
    g_t = np.zeros((n, n)) if sub else None
    g_b = np.zeros((n, n))  # always: ‖W_b‖₂ and ‖W_b‖_F are exact from it
    sq_t = 0.0  # ‖W_t‖_F² when its Gram is not kept
    finite = True
    for bt, bb in zip(
        iter_blocks(tuned, block_bytes, transpose), iter_blocks(base, block_bytes, transpose), strict=True
    ):
        if not (np.isfinite(bt).all() and np.isfinite(bb).all()):
            finite = False
            break
        d = bt - bb
        g_d += d.T @ d
        g_b += bb.T @ bb
        if sub:
            g_t += bt.T @ bt
        else:
            sq_t += float(np.einsum("ij,ij->", bt, bt))
    if not finite:
        raise TensorDataError(tuned.name, "the tuned or the base matrix contains NaN or Inf values")
    sv = np.sqrt(np.clip(np.linalg.eigvalsh(g_d), 0.0, None))[::-1].copy()
    side = "left" if transpose else "right"
    base_frobenius = float(np.sqrt(max(np.trace(g_b), 0.0)))
    if not sub:
        s_b = np.sqrt(np.clip(np.linalg.eigvalsh(g_b)[::-1], 0.0, None))
        return DeltaResult(
            sv, base_frobenius, float(s_b[0]) if n else 0.0, float(np.sqrt(sq_t)), None, None, None, side
        )
    s_t, v_t = _eigh_desc(g_t)
    s_b, v_b = _eigh_desc(g_b)
    r = min(settings.subspace_rank, n)
    cosines = np.linalg.svd(v_b[:, :r].T @ v_t[:, :r], compute_uv=False)
    angles = np.sort(np.arccos(np.clip(cosines, -1.0, 1.0)))
    k = min(settings.intruder_k, n)
    similarity = np.abs(v_t[:, :k].T @ v_b).max(axis=1)
    return DeltaResult(
        singular_values=sv,
        base_frobenius=base_frobenius,
        base_spectral=float(s_b[0]) if n else 0.0,
        tuned_frobenius=float(np.sqrt(max(np.trace(g_t), 0.0))),
        principal_angles=angles,
        intruders=int(np.count_nonzero(similarity < settings.intruder_epsilon)),
        intruder_similarity=similarity,
        side=side,
    )
