"""The data of report.html's matrix picker: for every analyzed matrix, its spectrum thinned for display and its
eigenvalues binned into the ESD, with the power-law fit to draw over it — computed here from the stored singular
values (sql/html/matrices.sql), so the page needs no numerics of its own and stays small.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPECTRUM_POINTS = 256  # σ_k drawn at up to this many k, log-spaced (every k of a smaller matrix)
ESD_BINS = 40  # log-spaced bins of λ = σ², as the static ESD figure
MIN_EIGENVALUE = 1e-5  # λ at or below this is left out of the ESD, as in the power-law fit
MAX_MATRICES = 6_000  # matrices offered by one page (about 3 KB each); the rest are named in a note


def _r(v: object) -> float | None:
    """Five significant digits: what a tooltip shows, a third of the page of full floats."""
    if v is None:
        return None
    f = float(v)
    return float(f"{f:.5g}") if np.isfinite(f) else None


def _thin(n: int) -> np.ndarray:
    if n <= SPECTRUM_POINTS:
        return np.arange(n)
    return np.unique(np.geomspace(1, n, SPECTRUM_POINTS).round().astype(int) - 1)


def matrix_entry(row: dict) -> dict:
    """One matrix of one model: shape, metrics, thinned spectrum [k, σ_k] and ESD [bin edges, densities, tail]."""
    sv = np.asarray(row.get("singular_values") or [], dtype=float)
    keep = _thin(sv.size)
    lam = np.sort(sv[sv > 0] ** 2)
    lam = lam[lam > MIN_EIGENVALUE]
    edges: list = []
    density: list = []
    tail = None
    if lam.size >= 2 and lam[-1] > lam[0]:
        bins = np.geomspace(lam[0], lam[-1], ESD_BINS + 1)
        counts, _ = np.histogram(lam, bins=bins)
        edges = [_r(b) for b in bins]
        density = [_r(c / (lam.size * w)) for c, w in zip(counts, np.diff(bins))]
        if row.get("xmin"):
            tail = _r(np.mean(lam >= row["xmin"]))
    return {
        "shape": f"{row.get('rows')} × {row.get('cols')}",
        "alpha": _r(row.get("alpha")),
        "xmin": _r(row.get("xmin")),
        "stable_rank": _r(row.get("stable_rank")),
        "r90": _r(row.get("svd_90_percent_ratio")),
        "k": [int(i) + 1 for i in keep],
        "s": [_r(v) for v in sv[keep]],
        "edges": edges,
        "density": density,
        "tail": tail,
    }


def picker_data(columns: Sequence[str], rows: Sequence[tuple]) -> dict:
    """{"keys": [{"key", "label", "m": {model: entry}}], "left_out": n} in the query's order (layer, matrix)."""
    keys: dict[str, dict] = {}
    left_out = 0
    for values in rows:
        row = dict(zip(columns, values))
        key = str(row["matrix_key"])
        if key not in keys and len(keys) >= MAX_MATRICES:
            left_out += 1
            continue
        where = "" if row.get("layer_index") is None else f"layer {row['layer_index']} · "
        entry = keys.setdefault(key, {"key": key, "label": f"{where}{row.get('block_type')} · {key}", "m": {}})
        entry["m"][str(row["model_id"])] = matrix_entry(row)
    return {"keys": list(keys.values()), "left_out": left_out}
