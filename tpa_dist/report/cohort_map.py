"""The cohort map (draw kind `map`): every model one point, its profile projected on the profiles' first two principal
components — one fixed-size figure however many models there are (a point each, the outliers named, every point
named under the pointer in report.html)."""

from __future__ import annotations

import numpy as np

from tpa_dist.report import plots
from tpa_dist.text import printable

CLIP_Z = 10.0  # a profile feature's |z| counts up to this (one wild model does not decide the axes)
OUTLIER_Z = 3.5  # as the outliers section: some feature's |z| above this
NAMED = 12  # outliers named on the figure (the farthest first); the pointer names every point


def project(z: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """(n, 2) coordinates of the rows of `z` (models × features, NaN where a model lacks a feature) on their first two
    principal components, and the share of the variance each carries; a component the data does not have is 0."""
    x = np.nan_to_num(np.clip(z, -CLIP_Z, CLIP_Z), nan=0.0)
    x = x - x.mean(axis=0, keepdims=True)
    out = np.zeros((z.shape[0], 2))
    if not x.size or not np.any(x):
        return out, (0.0, 0.0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    k = min(2, len(s))
    out[:, :k] = u[:, :k] * s[:k]
    total = float(np.sum(s**2))
    shares = [float(s[i] ** 2 / total) if i < k and total > 0 else 0.0 for i in range(2)]
    for i in range(k):  # a sign convention: the farthest point lies on the positive side
        if out[np.argmax(np.abs(out[:, i])), i] < 0:
            out[:, i] = -out[:, i]
    return out, (shares[0], shares[1])


def draw(title: str, cols: list[str], rows: list[tuple], point: str, feature: str, value: str) -> bytes:
    """The map of `rows` (point, feature, value): one dot per point."""
    ip, jf, jv = cols.index(point), cols.index(feature), cols.index(value)
    names = list(dict.fromkeys(str(r[ip]) for r in rows))
    feats = list(dict.fromkeys(str(r[jf]) for r in rows))
    at, fat = {n: i for i, n in enumerate(names)}, {f: i for i, f in enumerate(feats)}
    z = np.full((len(names), len(feats)), np.nan)
    for r in rows:
        if r[jv] is not None:
            z[at[str(r[ip])], fat[str(r[jf])]] = float(r[jv])
    xy, shares = project(z)
    worst = np.nan_to_num(np.nanmax(np.abs(z), axis=1, initial=0.0), nan=0.0)
    outlier = worst > OUTLIER_Z
    fig, ax = plots.plt.subplots(figsize=(plots.FIG_W / plots.DPI, plots.FIG_H * 1.4 / plots.DPI), dpi=plots.DPI)
    for mask, colour, label in ((~outlier, "#0072B2", "models"), (outlier, "#D55E00", "outliers (some |z| > 3.5)")):
        if not mask.any():
            continue
        dots = ax.scatter(xy[mask, 0], xy[mask, 1], s=18, c=colour, alpha=0.75, label=f"{label}: {int(mask.sum())}")
        dots.tpa_labels = [printable(n) for n, keep in zip(names, mask) if keep]  # hover.py names each point
    order = np.argsort(-worst, kind="stable")
    places: dict[tuple[float, float], list[int]] = {}  # models at one spot (copies) are named once, with a count
    for i in order:
        if outlier[i]:
            places.setdefault((round(float(xy[i, 0]), 6), round(float(xy[i, 1]), 6)), []).append(int(i))
    for same in list(places.values())[:NAMED]:
        more = f" (+{len(same) - 1} here)" if len(same) > 1 else ""
        ax.annotate(plots._short(names[same[0]], 28) + more, xy[same[0]], xytext=(4, 4), textcoords="offset points",
                    fontsize=8)  # fmt: skip
    ax.set_xlabel(f"PC1 ({100 * shares[0]:.0f} % of the profiles' variance)")
    ax.set_ylabel(f"PC2 ({100 * shares[1]:.0f} %)")
    ax.set_title(f"{title}: {len(names)} models, {len(feats)} profile features", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    plots._layout(fig)
    return plots._png(fig)


__all__ = ["draw", "project"]
