"""What fine-tuning changed, exactly and lazily: ΔW = W_tuned − W_base of one matrix, never materialised whole.

Both matrices stream by row block from their own byte ranges (any stored dtypes, decoded to float64); each pair of
blocks adds to three Gram matrices of the smaller side n: ΔᵀΔ (from the difference of the blocks, so a small
update is not lost to cancellation), W_tᵀW_t and W_bᵀW_b. Memory is O(block + 3·n²), independent of the long
side. Without the subspace metrics only ΔᵀΔ is needed, and W_bᵀW_b only for ‖W_b‖₂ — not even that where the
base's own analysis is stored (its ‖W_b‖_F and ‖W_b‖₂, the same float64 values, come with the task).

* σ(ΔW) = sqrt(eigvalsh(ΔᵀΔ)) — the spectrum every matrix metric is computed from;
* the singular vectors of W_t and W_b on that side come from their Grams (right singular vectors for a tall
  matrix; left ones, of the transpose that was streamed, for a wide one: `subspace_side`) — only the top ones, by
  LAPACK's MRRR on the tridiagonal form (a third of a full eigh at n = 1,024);
* principal angles between the top-r singular subspaces: arccos of the singular values of V_bᵀV_t (r = 16);
* intruder dimensions (Shuttleworth et al., 2024): among the top-k singular vectors of W_t, those whose largest
  |cosine| with every singular vector of W_b is below ε (k = 10, ε = 0.5). All n base vectors are needed only
  where W_b's top 64 cannot decide (the bound in `_largest_cosines`): a fine-tune's tuned vectors lie close to
  base ones and are decided there; LoRA intruders and unrelated pairs take the full decomposition of W_b.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tpa_dist.checkpoint.reader import Region, iter_blocks
from tpa_dist.compute.tasks import LoraFactors
from tpa_dist.errors import TensorDataError
from tpa_dist.settings import DeltaSettings

#: top singular vectors of W_b computed first; the intruder test asks for all of them only where these cannot decide
BASE_TOP = 64


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


def _top(gram: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
    """The q largest singular values (descending) and their vectors, from the Gram: LAPACK's MRRR on the
    tridiagonal form for the top q only (a third of a full eigh's time at n = 1,024), or the full eigh where q is
    a large share of n."""
    n = len(gram)
    if 4 * q >= n:
        s, v = _eigh_desc(gram)
        return s[:q], v[:, :q]
    from scipy.linalg import eigh

    lam, vec = eigh(gram, subset_by_index=[n - q, n - 1], driver="evr", check_finite=False)
    return np.sqrt(np.clip(lam[::-1], 0.0, None)), vec[:, ::-1]


def _frobenius(gram: np.ndarray) -> float:
    return float(np.sqrt(max(np.trace(gram), 0.0)))


def _largest(gram: np.ndarray) -> float:
    """The largest singular value (‖W‖₂) from the Gram: its top eigenvalue alone."""
    from scipy.linalg import eigh

    n = len(gram)
    return float(
        np.sqrt(max(eigh(gram, subset_by_index=[n - 1, n - 1], eigvals_only=True, check_finite=False)[0], 0.0))
    )


def _largest_cosines(v_t: np.ndarray, g_b: np.ndarray, v_b: np.ndarray) -> np.ndarray:
    """For each column of v_t, its largest |cos| with any singular vector of W_b — all n of them, though only the
    top ones (v_b) were computed: the cosines with a full orthonormal basis have squares summing to 1, so when the
    largest known cosine is at least the norm of the unknown rest, sqrt(1 − Σ known²), it is the largest of all.
    Otherwise (a tuned vector spread over many base vectors) the full decomposition of W_b decides, exactly."""
    cos = np.abs(v_t.T @ v_b)
    best = cos.max(axis=1)
    rest = np.sqrt(np.clip(1.0 - np.einsum("ij,ij->i", cos, cos), 0.0, None))
    if v_b.shape[1] == len(g_b) or np.all(best >= rest + 1e-7):
        return best
    return np.abs(v_t.T @ _eigh_desc(g_b)[1]).max(axis=1)


def _grams(
    tuned: Region, base: Region, block_bytes: int, transpose: bool, n: int, sub: bool, need_base: bool, device: str
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, float]:
    """(ΔᵀΔ, W_tᵀW_t or None, W_bᵀW_b or None, ‖W_t‖_F²) accumulated in float64 over streamed block pairs — with
    numpy on the CPU, with torch on `device` for GPU workers ("torch-cpu": the same code on the CPU, for tests)."""
    blocks = zip(iter_blocks(tuned, block_bytes, transpose), iter_blocks(base, block_bytes, transpose), strict=True)
    if device == "cpu":
        g_d = np.zeros((n, n))
        g_b = np.zeros((n, n)) if need_base else None
        g_t = np.zeros((n, n)) if sub else None
        sq_t = 0.0
        for bt, bb in blocks:
            if not (np.isfinite(bt).all() and np.isfinite(bb).all()):
                raise TensorDataError(tuned.name, "the tuned or the base matrix contains NaN or Inf values")
            d = bt - bb
            g_d += d.T @ d
            if need_base:
                g_b += bb.T @ bb
            if sub:
                g_t += bt.T @ bt
            else:
                sq_t += float(np.einsum("ij,ij->", bt, bt))
        return g_d, g_t, g_b, sq_t
    import torch

    dev = "cpu" if device == "torch-cpu" else device
    zeros = lambda: torch.zeros((n, n), dtype=torch.float64, device=dev)  # noqa: E731
    g_d = zeros()
    g_b = zeros() if need_base else None
    g_t = zeros() if sub else None
    sq_t = torch.zeros((), dtype=torch.float64, device=dev)
    for bt, bb in blocks:
        t, b = torch.from_numpy(bt).to(dev), torch.from_numpy(bb).to(dev)
        if not (bool(torch.isfinite(t).all()) and bool(torch.isfinite(b).all())):
            raise TensorDataError(tuned.name, "the tuned or the base matrix contains NaN or Inf values")
        d = t - b
        g_d.addmm_(d.T, d)
        if need_base:
            g_b.addmm_(b.T, b)
        if sub:
            g_t.addmm_(t.T, t)
        else:
            sq_t += (t * t).sum()
    host = lambda g: g.cpu().numpy() if g is not None else None  # noqa: E731
    return host(g_d), host(g_t), host(g_b), float(sq_t)


def delta_spectrum(
    tuned: Region,
    base: Region,
    settings: DeltaSettings,
    block_bytes: int,
    device: str = "cpu",
    base_norms: tuple[float, float] | None = None,
) -> DeltaResult:
    """Spectrum of ΔW and the subspace change of one matrix pair (same shape), streamed block by block; the Grams
    accumulate on `device` (a GPU worker's "cuda"), the eigen-decompositions run in float64 LAPACK. `base_norms`
    (‖W_b‖_F, ‖W_b‖₂ from the base's stored analysis) spare the Gram of W_b when the subspace metrics are off."""
    if (tuned.rows, tuned.cols) != (base.rows, base.cols):
        raise TensorDataError(
            tuned.name, f"shape {(tuned.rows, tuned.cols)} differs from the base's {(base.rows, base.cols)}"
        )
    transpose = tuned.rows < tuned.cols
    n = min(tuned.rows, tuned.cols)
    sub = settings.subspace
    stored = base_norms is not None and not sub
    g_d, g_t, g_b, sq_t = _grams(tuned, base, block_bytes, transpose, n, sub, not stored, device)
    sv = np.sqrt(np.clip(np.linalg.eigvalsh(g_d), 0.0, None))[::-1].copy()
    side = "left" if transpose else "right"
    if not sub:
        base_frobenius, base_spectral = base_norms if stored else (_frobenius(g_b), _largest(g_b))
        return DeltaResult(sv, base_frobenius, base_spectral, float(np.sqrt(sq_t)), None, None, None, side)
    return _with_subspace(sv, g_t, g_b, settings, n, side)


def _with_subspace(
    sv: np.ndarray, g_t: np.ndarray, g_b: np.ndarray, settings: DeltaSettings, n: int, side: str
) -> DeltaResult:
    """The result with the subspace metrics, from the Grams of W_t and W_b."""
    r, k = min(settings.subspace_rank, n), min(settings.intruder_k, n)
    _, v_t = _top(g_t, max(r, k))
    s_b, v_b = _top(g_b, min(n, max(r, BASE_TOP)))
    cosines = np.linalg.svd(v_b[:, :r].T @ v_t[:, :r], compute_uv=False)
    angles = np.sort(np.arccos(np.clip(cosines, -1.0, 1.0)))
    similarity = _largest_cosines(v_t[:, :k], g_b, v_b)
    return DeltaResult(
        singular_values=sv,
        base_frobenius=_frobenius(g_b),
        base_spectral=float(s_b[0]) if n else 0.0,
        tuned_frobenius=_frobenius(g_t),
        principal_angles=angles,
        intruders=int(np.count_nonzero(similarity < settings.intruder_epsilon)),
        intruder_similarity=similarity,
        side=side,
    )


def lora_delta_spectrum(
    lora: LoraFactors,
    base: Region,
    settings: DeltaSettings,
    block_bytes: int,
    base_norms: tuple[float, float] | None = None,
) -> DeltaResult:
    """The same for an adapter's update ΔW = s·B·A (r × r pieces, never the m × n product whole): σ(ΔW) from the QR
    factors of the two sides, σ(s·B·A) = |s|·σ(R_B·R_Aᵀ), padded with the exact zeros of its rank r; ‖W_t‖_F and the
    subspace metrics from W_t = W_b + ΔW, formed block by block beside the streamed base."""
    from tpa_dist.checkpoint.reader import read_all

    a, b = read_all(lora.a), read_all(lora.b)  # r × in and out × r: small
    left, right = (a.T, b.T) if lora.transposed else (b, a)  # ΔW = s · left · right in the stored orientation
    if (left.shape[0], right.shape[1]) != (base.rows, base.cols):
        raise TensorDataError(
            base.name,
            f"the adapter's update is {(left.shape[0], right.shape[1])}, the base matrix {(base.rows, base.cols)}",
        )
    for factor in (lora.a, lora.b):  # name the factor that holds them
        values = a if factor is lora.a else b
        if not np.isfinite(values).all():
            raise TensorDataError(factor.name, "the adapter's factor contains NaN or Inf values")
    n = min(base.rows, base.cols)
    _, r_left = np.linalg.qr(left)
    _, r_right = np.linalg.qr(right.T)
    core = np.linalg.svd(r_left @ r_right.T, compute_uv=False) * abs(lora.scale)
    sv = np.zeros(n)
    sv[: min(len(core), n)] = np.sort(core)[::-1][:n]
    transpose = base.rows < base.cols
    side = "left" if transpose else "right"
    p, q = (right.T, left.T) if transpose else (left, right)  # the streamed matrix X = s · p · q, rows as blocks
    sub = settings.subspace
    need_base = sub or base_norms is None
    g_t = np.zeros((n, n)) if sub else None
    g_b = np.zeros((n, n)) if need_base else None
    sq_t, row = 0.0, 0
    for bb in iter_blocks(base, block_bytes, transpose):
        if not np.isfinite(bb).all():
            raise TensorDataError(base.name, "the base matrix contains NaN or Inf values")
        bt = bb + lora.scale * (p[row : row + len(bb)] @ q)
        row += len(bb)
        if need_base:
            g_b += bb.T @ bb
        if sub:
            g_t += bt.T @ bt
        else:
            sq_t += float(np.einsum("ij,ij->", bt, bt))
    if not sub:
        base_frobenius, base_spectral = base_norms if base_norms is not None else (_frobenius(g_b), _largest(g_b))
        return DeltaResult(sv, base_frobenius, base_spectral, float(np.sqrt(sq_t)), None, None, None, side)
    return _with_subspace(sv, g_t, g_b, settings, n, side)
