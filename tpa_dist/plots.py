"""Headless matplotlib figures for report sections: heatmap, lines, log-log lines, histogram, ESD + fit.

Every figure is FIG_W × FIG_H pixels (per facet row for heatmaps), with a title, axis labels and a legend.
"""

from __future__ import annotations

import io
import textwrap
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FIG_W, FIG_H, DPI = 1000, 500, 100
MAX_SERIES = 12


def _png(fig) -> bytes:  # noqa: ANN001
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _figure(rows: int = 1):  # noqa: ANN202
    return plt.subplots(rows, 1, figsize=(FIG_W / DPI, FIG_H * rows / DPI), dpi=DPI, squeeze=False)


def _order_key(value: object) -> tuple[int, str]:
    """Block types in their canonical in-layer order (q, k, v, o, gate, up, down, …); other values by name."""
    from .classify import BLOCK_ORDER

    return (BLOCK_ORDER.index(value), "") if value in BLOCK_ORDER else (len(BLOCK_ORDER), str(value))


def _legend(ax) -> None:  # noqa: ANN001
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, loc="best", ncol=2 if len(handles) > 6 else 1)


def heatmap(
    title: str,
    cols: list[str],
    rows: list[tuple],
    x: str,
    y: str,
    value: str,
    facet: str | None,
    label: str | None = None,
) -> bytes:
    data = [dict(zip(cols, r)) for r in rows]
    facets = sorted({d[facet] for d in data}) if facet else [None]
    fig, axes = _figure(len(facets))
    for ax, name in zip(axes[:, 0], facets):
        part = [d for d in data if facet is None or d[facet] == name]
        xs = sorted({d[x] for d in part}, key=_order_key)
        ys = sorted({d[y] for d in part})
        grid = np.full((len(ys), len(xs)), np.nan)
        for d in part:
            if d[value] is not None:
                grid[ys.index(d[y]), xs.index(d[x])] = d[value]
        im = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=30, ha="right", fontsize=8)
        step = max(1, len(ys) // 16)
        ax.set_yticks(range(0, len(ys), step), [str(v) for v in ys[::step]], fontsize=8)
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(y.replace("_", " "))
        ax.set_title(f"{title} — {name}" if name else title, fontsize=10)
        fig.colorbar(im, ax=ax, label=(label or value).replace("_", " "))
    fig.tight_layout()
    return _png(fig)


def lines(title: str, cols: list[str], rows: list[tuple], x: str, y: str, series: str, log: bool = False) -> bytes:
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        d = dict(zip(cols, r))
        if d[x] is not None and d[y] is not None and (not log or d[y] > 0):
            groups[str(d[series])].append((d[x], d[y]))
    fig, axes = _figure()
    ax = axes[0, 0]
    for name in sorted(groups)[:MAX_SERIES]:
        pts = sorted(groups[name])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=None if log else "o", markersize=3, label=name)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set(title=title, xlabel=x.replace("_", " "), ylabel=y.replace("_", " "))
    ax.grid(alpha=0.3)
    _legend(ax)
    fig.tight_layout()
    return _png(fig)


def histogram(title: str, cols: list[str], rows: list[tuple], value: str, series: str) -> bytes:
    groups: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        d = dict(zip(cols, r))
        if d[value] is not None:
            groups[str(d[series])].append(d[value])
    fig, axes = _figure()
    ax = axes[0, 0]
    allv = [v for vs in groups.values() for v in vs]
    bins = np.linspace(min(allv), max(allv), 30) if allv and max(allv) > min(allv) else 10
    for name in sorted(groups)[:MAX_SERIES]:
        ax.hist(groups[name], bins=bins, alpha=0.55, label=f"{name} (n={len(groups[name])})")
    for edge, label in ((2, "alpha = 2"), (6, "alpha = 6")):
        if value == "alpha":
            ax.axvline(edge, color="red", linestyle="--", linewidth=1, label=label)
    ax.set(title=title, xlabel=value, ylabel="matrices")
    _legend(ax)
    fig.tight_layout()
    return _png(fig)


def esd(title: str, cols: list[str], rows: list[tuple], value: str, series: str, alpha: str, xmin: str) -> bytes:
    groups: dict[str, dict] = {}
    for r in rows:
        d = dict(zip(cols, r))
        g = groups.setdefault(str(d[series]), {"values": [], "alpha": d[alpha], "xmin": d[xmin]})
        if d[value] and d[value] > 0:
            g["values"].append(d[value])
    fig, axes = _figure()
    ax = axes[0, 0]
    for name in sorted(groups)[:4]:
        g = groups[name]
        lam = np.asarray(g["values"])
        if lam.size < 2:
            continue
        bins = np.logspace(np.log10(lam.min()), np.log10(lam.max()), 40)
        density, edges, _ = ax.hist(lam, bins=bins, density=True, alpha=0.5, label=f"ESD {name}")
        if g["alpha"] and g["xmin"]:
            a, lo = g["alpha"], g["xmin"]
            xs = np.logspace(np.log10(lo), np.log10(lam.max()), 50)
            tail_frac = float(np.mean(lam >= lo))
            ax.plot(
                xs, tail_frac * (a - 1) / lo * (xs / lo) ** (-a), "--", label=f"power law α = {a:.2f}, xmin = {lo:.3g}"
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(title=title, xlabel="eigenvalue λ = σ²", ylabel="density")
    _legend(ax)
    fig.tight_layout()
    return _png(fig)


def anova_curve(model_id: str, results: list) -> bytes:  # noqa: ANN001 - embedding_run.EmbeddingResult
    """F, silhouette and inertia against k (three panels sharing the k axis), the chosen k marked on each, and
    the degeneracy warning under the title when the chosen partition is not to be read as structure."""
    panels = (
        ("f_stat", "ANOVA F = (SSB/(k−1)) / (SSW/(n−k))"),
        ("silhouette", "silhouette (2,000-row sample)"),
        ("inertia", "inertia (SSW)"),
    )
    fig, axes = plt.subplots(3, 1, figsize=(FIG_W / DPI, 1.6 * FIG_H / DPI), dpi=DPI, sharex=True)
    colors = plt.get_cmap("tab10").colors
    warnings = []
    for i, res in enumerate(results):
        ks = [r["k"] for r in res.sweep]
        color = colors[i % len(colors)]
        label = f"{res.tensor} ({res.rows:,} of {res.vocab_rows:,} rows × {res.cols})"
        for ax, (key, ylabel) in zip(axes, panels):
            ys = [np.nan if r[key] is None else r[key] for r in res.sweep]
            ax.plot(ks, ys, marker="o", markersize=3, color=color, label=label)
            ax.axvline(res.chosen_k, linestyle="--", color=color, linewidth=1)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.grid(alpha=0.3)
        axes[0].annotate(
            f"chosen k = {res.chosen_k}",
            (res.chosen_k, 1.0),
            xycoords=("data", "axes fraction"),
            ha="left",
            va="top",
            fontsize=8,
            color=color,
        )
        if res.degenerate:
            warnings.append(f"{res.tensor}: k = {res.chosen_k} is degenerate — {res.degenerate}")
    axes[-1].set_xlabel("number of clusters k")
    axes[0].legend(loc="best", fontsize=7)
    title = f"{model_id}: k-means of the token embeddings (chosen k = argmax F, dashed)"
    if warnings:
        title += "\n" + "\n".join(textwrap.fill(w, 140) for w in warnings)
    fig.suptitle(title, fontsize=9, color="#a00" if warnings else "black")
    fig.tight_layout()
    return _png(fig)
