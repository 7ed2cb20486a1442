"""Headless matplotlib figures for report sections: heatmap, lines, log-log lines, histogram, ESD + power-law fit.

Figures a reviewer can compare: every model keeps one colour in every plot (Okabe–Ito, colour-blind safe; line
styles vary once the eight colours are used), facets are small multiples with shared axes and one shared colour
scale, axes carry the metric's name, and nothing is cut — a model is a panel or a series, never dropped.
Every figure is FIG_W pixels wide and FIG_H pixels tall per row of panels.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections import defaultdict

import matplotlib

from tpa_dist.report.palette import LINE_STYLES, OKABE_ITO, Palette  # noqa: F401 - the figures' colours
from tpa_dist.text import cell_number, printable

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tpa_dist.report import hover  # noqa: E402

FIG_W, FIG_H, DPI = 1000, 500, 100
PANEL_COLUMNS = 2  # small multiples of line plots, histograms and ESDs
ANNOTATE_CELLS = (40, 12)  # heatmap cells carry their values up to 40 rows × 12 columns


def _layout(fig: object, **kwargs: object) -> None:
    """tight_layout, after every text of the figure is made printable: a tensor or model name cannot put a control
    character on the figure (nor into matplotlib's missing-glyph warning on the terminal). The layout is then fixed:
    tight_layout leaves a placeholder layout engine behind, for which savefig draws the whole figure once more
    before it draws it into the PNG (a small report's 17 figures: 34 whole-figure draws, now 21; the same bytes)."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        if getattr(text, "tpa_printable", False):  # composed of escaped parts, its line breaks meant (_lines_title)
            continue
        raw = text.get_text()
        clean = printable(raw)
        if clean != raw:
            text.set_text(clean)
    fig.tight_layout(**kwargs)
    fig.set_layout_engine(None)


def _lines_title(fig: object, lines: list[str], **kwargs: object) -> None:
    """A title of several lines, each already made printable: its line breaks stay line breaks (_layout would
    escape them as it escapes a name's)."""
    title = fig.suptitle("\n".join(lines), **kwargs)
    title.tpa_printable = True


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _decade(x: float, _pos: object = None) -> str:
    """A log axis's tick label as plain text, 10 and a superscript exponent: matplotlib's default writes it in
    mathtext, whose parsing costs ~0.13 s per figure (a third of a log-log figure's drawing)."""
    if not x > 0 or not math.isfinite(x):
        return ""
    exponent = math.log10(x)
    if abs(exponent - round(exponent)) > 1e-9:  # an axis spanning less than a decade ticks between them
        return f"{x:.3g}"
    return "10" + str(int(round(exponent))).translate(_SUPERSCRIPT)


def _log_axes(ax) -> None:  # noqa: ANN001
    """Both axes logarithmic, labelled at the decades (minor log ticks cost seconds in layout and add little)."""
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.minorticks_off()
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(_decade))


def panel_grid(panels: int, columns: int = PANEL_COLUMNS) -> tuple[int, int]:
    """(rows, columns) of a small-multiples figure."""
    cols = max(1, min(columns, panels))
    return math.ceil(max(panels, 1) / cols), cols


def figure_size(panels: int, columns: int = PANEL_COLUMNS) -> tuple[int, int]:
    """Pixels of a figure of `panels` small multiples."""
    rows, _ = panel_grid(panels, columns)
    return FIG_W, FIG_H * rows


def _png(fig) -> bytes:  # noqa: ANN001
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    data = hover.attach(buf.getvalue(), fig)  # the points' values, for report.html's hover
    plt.close(fig)
    return data


def _panels(  # noqa: ANN202
    n: int, columns: int = PANEL_COLUMNS, sharex: bool = True, sharey: bool = True, layout: str | None = None
):
    rows, cols = panel_grid(n, columns)
    w, h = figure_size(n, columns)
    fig, axes = plt.subplots(
        rows, cols, figsize=(w / DPI, h / DPI), dpi=DPI, squeeze=False, sharex=sharex, sharey=sharey, layout=layout
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    for ax in flat[:n]:  # every panel keeps its own tick labels (a panel with none below it would have none)
        ax.tick_params(labelbottom=True, labelleft=True)
    return fig, flat[:n]


#: axis titles in words for the columns sections draw (anything else: its name with spaces)
AXIS_NAMES = {
    "layer_index": "layer",
    "svd_90_percent_ratio": "90 % energy rank / full rank",
    "alpha": "heavy-tail exponent α",
    "depth": "relative depth (layer / last layer)",
    "k": "number of clusters k",
    "sv_index": "index k (σ_k in descending order)",
    "block_type": "block type",
    "relative_update": "‖ΔW‖_F / ‖W_base‖_F",
    "sparsity": "AlphaPruning sparsity",
    "singular_value": "singular value σ",
    "eigenvalue": "eigenvalue λ = σ²",
    "Δ_r90": "Δ 90 % energy rank ratio",
}


def _label(name: str | None) -> str:
    return AXIS_NAMES.get(name or "", (name or "").replace("_", " "))


def _integer_ticks(ax, values: list) -> None:  # noqa: ANN001 - a matplotlib Axes
    """Whole-number ticks for an axis of whole numbers (layers, checkpoints, k): never "1.5"."""
    from matplotlib.ticker import MaxNLocator

    if values and all(isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer()) for v in values):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _short(name: str, width: int = 24) -> str:
    """A tick label of at most `width` characters: a long model id keeps its end (the step or revision)."""
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _order_key(value: object) -> tuple[int, str]:
    """Block types in their canonical in-layer order (q, k, v, o, gate, up, down, …); other values by name."""
    from tpa_dist.checkpoint.classify import BLOCK_ORDER

    return (BLOCK_ORDER.index(value), "") if value in BLOCK_ORDER else (len(BLOCK_ORDER), str(value))


def _legend(ax, title: str | None = None) -> None:  # noqa: ANN001
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, loc="best", ncol=2 if len(handles) > 6 else 1, title=title, title_fontsize=7)


def _groups(cols: list[str], rows: list[tuple], key: str | None) -> dict[object, list[dict]]:
    out: dict[object, list[dict]] = defaultdict(list)
    for r in rows:
        d = dict(zip(cols, r))
        out[d[key] if key else None].append(d)
    return out


def heatmap(
    title: str,
    cols: list[str],
    rows: list[tuple],
    x: str,
    y: str,
    value: str,
    facet: str | None,
    label: str | None = None,
    center: float | None = None,
) -> bytes:
    """One heatmap per facet (one per model), all on one colour scale; cells show their values when the grid is
    small enough to read. With `center` (differences: 0) the scale diverges from it — symmetric limits, the centre
    a neutral white, the two signs in two hues — so that no change is the quietest colour, not the loudest."""
    groups = _groups(cols, rows, facet)
    names = list(groups) if facet else [None]  # the section's order (the report's model order)
    values = [d[value] for part in groups.values() for d in part if d[value] is not None]
    vmin, vmax = (min(values), max(values)) if values else (0.0, 1.0)
    cmap = "viridis"
    if center is not None:
        reach = max((abs(v - center) for v in values), default=0.0) or 1.0
        vmin, vmax, cmap = center - reach, center + reach, "RdBu_r"
    fig, axes = _panels(len(names), columns=1, sharex=False, sharey=False, layout="constrained")
    im = None
    for ax, name in zip(axes, names):
        part = groups[name]
        xs = sorted({d[x] for d in part}, key=_order_key)
        ys = sorted({d[y] for d in part})
        grid = np.full((len(ys), len(xs)), np.nan)
        for d in part:
            if d[value] is not None:
                grid[ys.index(d[y]), xs.index(d[x])] = d[value]
        im = ax.imshow(grid, aspect="auto", cmap=cmap, interpolation="nearest", vmin=vmin, vmax=vmax)
        im.tpa_names = ([str(v) for v in xs], [f"{_label(y)} {v}" for v in ys], _label(label or value))  # hover.py
        ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=30, ha="right", fontsize=8)
        step = max(1, len(ys) // 16)
        ax.set_yticks(range(0, len(ys), step), [str(v) for v in ys[::step]], fontsize=8)
        ax.set_xlabel(_label(x))
        ax.set_ylabel(_label(y))
        ax.set_title(f"{title} — {name}" if name is not None else title, fontsize=10)
        if len(ys) <= ANNOTATE_CELLS[0] and len(xs) <= ANNOTATE_CELLS[1]:
            mid = (vmin + vmax) / 2
            for (i, j), v in np.ndenumerate(grid):
                if not np.isnan(v):
                    if center is None:
                        ink = "white" if v < mid else "black"
                    else:  # dark ink on the pale middle of a diverging scale, white on its saturated ends
                        ink = "white" if abs(v - center) > 0.6 * (vmax - center) else "black"
                    ax.text(j, i, cell_number(v, 2), ha="center", va="center", fontsize=8, color=ink)
    if im is not None:
        shared = " (one scale for all panels)" if len(names) > 1 else ""
        fig.colorbar(im, ax=axes, label=_label(label or value) + shared, fraction=0.04, pad=0.01, aspect=40)
    return _png(fig)


def lines(
    title: str,
    cols: list[str],
    rows: list[tuple],
    x: str,
    y: str,
    series: str,
    log: bool = False,
    facet: str | None = None,
    color: str | None = None,
    ylabel: str | None = None,
    sharey: bool = True,
    palette: Palette | None = None,
    xticks: str | None = None,
) -> bytes:
    """Line plots, one panel per facet (shared axes unless `sharey` is off for panels of different metrics), one
    line per series; lines of the same `color` value (a model) share a colour in every panel and every figure.
    With `xticks`, a column naming each x value (checkpoints by model id), the x axis is ticked by those names.
    Panels of one line each (one model) are drawn as one panel with a line per facet, not as one-line panels."""
    palette = palette or Palette()
    panels = _groups(cols, rows, facet)
    if facet and sharey and len(panels) > 1 and all(len({d[series] for d in p}) == 1 for p in panels.values()):
        # one line in every panel (one model's spectra by role): one panel instead, a line per facet, in its colour
        f, s = cols.index(facet), cols.index(series)
        merged = [(*r, f"{r[f]}: {r[s]}") for r in rows]
        return lines(title, [*cols, "line"], merged, x, y, "line", log, None, "line", ylabel, True, Palette(), xticks)
    names = sorted(panels, key=lambda v: _order_key(v)) if facet else [None]
    fig, axes = _panels(len(names), sharey=sharey)
    variants: dict[str, list[str]] = defaultdict(list)  # colour key -> its series: the n-th gets the n-th line style
    for ax, name in zip(axes, names):
        groups: dict[str, list[tuple[float, float, object]]] = defaultdict(list)
        for d in panels[name]:
            if d[x] is not None and d[y] is not None and (not log or d[y] > 0):
                groups[str(d[series])].append((d[x], d[y], d[color] if color else d[series]))
        drawn: dict[tuple, str] = {}  # a line's points -> the series drawn with them: coinciding lines are said
        for key in sorted(groups):
            pts = sorted(groups[key], key=lambda p: p[:2])
            own = variants[str(pts[0][2])]
            if key not in own:
                own.append(key)
            st = {**palette.style(pts[0][2]), "linestyle": LINE_STYLES[own.index(key) % len(LINE_STYLES)]}
            label = key
            same = drawn.setdefault(tuple((p[0], p[1]) for p in pts), key)
            if same != key:  # exactly on top of another line: dashed over it, and the legend says so
                st["linestyle"] = (0, (3, 3))
                label = f"{key} (identical to {same}: dashed over it)"
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker=None if log else "o",
                markersize=3,
                label=label,
                **st,
            )
        if log:
            _log_axes(ax)
        ax.set_title(f"{_label(facet)}: {name}" if name is not None else title, fontsize=9)
        if xticks:
            named = dict(sorted({d[x]: str(d[xticks]) for d in panels[name] if d[x] is not None}.items()))
            ax.set_xticks(list(named), [_short(n) for n in named.values()], rotation=20, ha="right", fontsize=7)
        elif not log:
            _integer_ticks(ax, [d[x] for d in panels[name] if d[x] is not None])
        ax.set_xlabel(_label(x))
        ax.set_ylabel(_label(ylabel or (name if facet and not sharey else y)))
        ax.grid(alpha=0.3)
        if not facet:
            _legend(ax)
    if facet:
        fig.suptitle(title, fontsize=10)
        return _png_with_legend(fig, axes)
    _layout(fig)
    return _png(fig)


def _png_with_legend(fig, axes: list) -> bytes:  # noqa: ANN001
    """One legend for all panels (labels are long: model and matrix names): in the grid's empty slot when the
    panels leave one (3 metrics on a 2 × 2 grid), else below them."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    empty = [ax for ax in fig.axes if not ax.get_visible()]
    if empty and len(seen) <= 24:
        _layout(fig, rect=(0, 0, 1, 0.97))
        box = empty[0].get_position()
        fig.legend(
            list(seen.values()),
            list(seen),
            loc="center",
            bbox_to_anchor=(box.x0, box.y0, box.width, box.height),
            ncol=1 if len(seen) <= 12 else 2,
            fontsize=7,
            frameon=False,
        )
        return _png(fig)
    ncol = 2 if max((len(s) for s in seen), default=0) > 45 else 3
    rows = math.ceil(len(seen) / ncol)
    height = fig.get_size_inches()[1] * DPI
    legend_frac = min(0.5, (rows * 14 + 16) / height)
    fig.legend(list(seen.values()), list(seen), loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    _layout(fig, rect=(0, legend_frac, 1, 0.97))
    return _png(fig)


def histogram(
    title: str, cols: list[str], rows: list[tuple], value: str, series: str, palette: Palette | None = None
) -> bytes:
    """One histogram per series (a model) as small multiples with shared bins and axes."""
    palette = palette or Palette()
    groups: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        d = dict(zip(cols, r))
        if d[value] is not None:
            groups[str(d[series])].append(d[value])
    names = sorted(groups)
    allv = [v for vs in groups.values() for v in vs]
    bins = np.linspace(min(allv), max(allv), 30) if allv and max(allv) > min(allv) else 10
    fig, axes = _panels(len(names))
    for ax, name in zip(axes, names):
        st = palette.style(name)
        ax.hist(groups[name], bins=bins, color=st["color"], alpha=0.8, label=f"{name} (n = {len(groups[name])})")
        if value == "alpha":
            for edge in (2, 6):
                ax.axvline(edge, color="#555", linestyle="--", linewidth=1)
            ax.axvspan(2, 6, color="#ccc", alpha=0.25, label="2 ≤ alpha ≤ 6")
        ax.set_xlabel(_label(value))
        ax.set_ylabel("matrices")
        ax.set_title(name, fontsize=9)
        _legend(ax)
    fig.suptitle(title, fontsize=10)
    _layout(fig)
    return _png(fig)


def esd(
    title: str,
    cols: list[str],
    rows: list[tuple],
    value: str,
    series: str,
    alpha: str,
    xmin: str,
    facet: str | None = None,
    palette: Palette | None = None,
    bulk_max: str | None = None,
    q: str | None = None,
) -> bytes:
    """The empirical spectral density of one matrix per panel (log-log), with its power-law fit drawn in the
    histogram's colour from xmin; with `bulk_max` and `q` columns (--rmt), also the fitted Marchenko–Pastur density
    and its bulk edge λ+."""
    palette = palette or Palette()
    groups: dict[str, dict] = {}
    for r in rows:
        d = dict(zip(cols, r))
        g = groups.setdefault(
            str(d[series]),
            {
                "values": [],
                "alpha": d[alpha],
                "xmin": d[xmin],
                "model": d[facet] if facet else d[series],
                "edge": d[bulk_max] if bulk_max else None,
                "q": d[q] if q else None,
            },
        )
        if d[value] and d[value] > 0:
            g["values"].append(d[value])
    names = list(groups)  # the section's order (the report's model order)
    fig, axes = _panels(len(names))
    for ax, name in zip(axes, names):
        g = groups[name]
        lam = np.asarray(g["values"])
        color = palette.style(g["model"])["color"]
        if lam.size >= 2:
            bins = np.logspace(np.log10(lam.min()), np.log10(lam.max()), 40)
            ax.hist(lam, bins=bins, density=True, alpha=0.5, color=color, label="ESD")
            if g["alpha"] and g["xmin"]:
                a, lo = g["alpha"], g["xmin"]
                xs = np.logspace(np.log10(lo), np.log10(lam.max()), 50)
                tail = float(np.mean(lam >= lo))
                ax.plot(
                    xs,
                    tail * (a - 1) / lo * (xs / lo) ** (-a),
                    "--",
                    color=color,
                    linewidth=2,
                    label=f"power law α = {a:.2f}, xmin = {lo:.3g}",
                )
            if g["edge"] and g["q"]:
                _marchenko_pastur(ax, lam, float(g["edge"]), float(g["q"]))
        _log_axes(ax)
        ax.set_xlabel("eigenvalue λ = σ²")
        ax.set_ylabel("density")
        ax.set_title(name if len(name) <= 80 else name[:38] + " … " + name[-38:], fontsize=8)
        _legend(ax)
    fig.suptitle(title, fontsize=10)
    _layout(fig)
    return _png(fig)


def _marchenko_pastur(ax, lam: np.ndarray, edge: float, q: float) -> None:  # noqa: ANN001 - a matplotlib Axes
    """The MP density whose upper edge is the fitted bulk edge λ+ (aspect ratio q = N/M ≥ 1), scaled to the share
    of eigenvalues inside the bulk, and λ+ as a vertical line."""
    y = 1.0 / q
    s2 = edge / (1 + np.sqrt(y)) ** 2  # the element variance the fit implies, in the ESD's units
    lo = s2 * (1 - np.sqrt(y)) ** 2
    xs = np.logspace(np.log10(max(lo, lam.min())), np.log10(edge), 200)[1:-1]
    density = np.sqrt(np.clip((edge - xs) * (xs - lo), 0, None)) / (2 * np.pi * s2 * y * xs)
    ax.plot(xs, float(np.mean(lam <= edge)) * density, "-", color="black", linewidth=1.2, label="Marchenko–Pastur fit")
    ax.axvline(edge, color="black", linestyle=":", linewidth=1.2, label=f"bulk edge λ+ = {edge:.3g}")


def embedding_projection(model_id: str, results: list) -> bytes:  # noqa: ANN001 - EmbeddingResult
    """Each embedding's rows (a sample of ≤ 5,000) on their top two principal axes: coloured by cluster of the
    chosen k (left) and by token class (right)."""
    fig, axes = plt.subplots(
        max(1, len(results)), 2, figsize=(FIG_W / DPI, FIG_H * max(1, len(results)) / DPI), dpi=DPI, squeeze=False
    )
    for (left, right), res in zip(axes, results):
        if not res.projection:
            for ax in (left, right):
                ax.text(0.5, 0.5, "no projection stored (analyzed before it existed)", ha="center", va="center")
                ax.set_axis_off()
            continue
        cluster = dict(zip(res.row_ids.tolist(), res.labels.tolist()))
        classes = res.classes or []
        ids = [p[0] for p in res.projection]
        xs = np.array([p[1] for p in res.projection])
        ys = np.array([p[2] for p in res.projection])
        labels = np.array([cluster.get(i, -1) for i in ids])
        cmap = plt.get_cmap("tab20")
        left.scatter(xs, ys, s=3, c=[cmap(c % 20) for c in labels], alpha=0.6, linewidths=0)
        left.set_title(f"{res.param_name}: by cluster (k = {res.chosen_k}, {res.metric})", fontsize=8)
        kinds = [classes[i] if i < len(classes) and classes[i] else "unknown" for i in ids]
        for j, kind in enumerate(sorted(set(kinds), key=kinds.count, reverse=True)):
            mask = np.array([k == kind for k in kinds])
            right.scatter(xs[mask], ys[mask], s=3, color=OKABE_ITO[j % len(OKABE_ITO)], alpha=0.6, linewidths=0,
                          label=f"{kind} ({int(mask.sum()):,})")  # fmt: skip
        right.set_title(f"{res.param_name}: by token class", fontsize=8)
        right.legend(loc="best", fontsize=7, markerscale=3)
        for ax in (left, right):
            ax.set_xlabel("principal axis 1", fontsize=8)
            ax.set_ylabel("principal axis 2", fontsize=8)
            ax.grid(alpha=0.3)
    fig.suptitle(f"{model_id}: token embeddings on their top two principal axes", fontsize=9)
    _layout(fig)
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
    warnings = []
    for i, res in enumerate(results):
        ks = [r["k"] for r in res.sweep]
        color = OKABE_ITO[i % len(OKABE_ITO)]
        label = f"{res.param_name} ({res.rows:,} of {res.vocab_rows:,} rows × {res.cols})"
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
        if res.recommended_k is not None:
            rec = res.recommended_k
            for ax in axes:
                ax.axvline(rec, linestyle=":", color=color, linewidth=1.5)
            words = "one cloud: no k gives real clusters" if rec == 1 else f"recommended k = {rec}"
            axes[1].annotate(
                f"{words} (gap statistic)",
                (max(rec, ks[0]), 0.05),
                xycoords=("data", "axes fraction"),
                ha="left",
                va="bottom",
                fontsize=8,
                color=color,
            )
        elif res.verdict == "no preferred number":
            axes[1].annotate(
                f"gap statistic: no preferred number of clusters (its gap still rises at k = {len(res.gaps)})",
                (ks[0], 0.05),
                xycoords=("data", "axes fraction"),
                ha="left",
                va="bottom",
                fontsize=8,
                color=color,
            )
        if res.degenerate:
            warnings.append(
                f"{printable(res.param_name)}: k = {res.chosen_k} is degenerate — {printable(res.degenerate)}"
            )
    axes[-1].set_xlabel("number of clusters k")
    axes[0].legend(loc="best", fontsize=7)
    title = (
        f"{printable(model_id)}: k-means of the token embeddings (chosen k = argmax F, dashed; recommended k, dotted)"
    )
    lines = [title, *(line for w in warnings for line in textwrap.wrap(w, 140))]
    _lines_title(fig, lines, fontsize=9, color="#a00" if warnings else "black")
    _layout(fig)
    return _png(fig)
