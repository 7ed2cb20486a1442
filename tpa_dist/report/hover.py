"""Hover values of a drawn figure: every data point's pixel position and its values in words, carried inside the
PNG itself (a compressed zTXt chunk), so report.html can show the value under the pointer on every figure without
a plotting library in the page — and every figure keeps the exact look of its PNG.

The points are read off the matplotlib artists after the figure is laid out (lines, histogram bars, heatmap cells,
scatter points), so no plot function has to list them; a line of many points is thinned to MAX_PER_ARTIST.
"""

from __future__ import annotations

import json
import math
import struct
import zlib

import numpy as np

from tpa_dist.text import cell_number

KEY = b"tpa-hover"
MAX_PER_ARTIST = 400  # points kept per line / scatter (evenly spaced), enough to hover along a 1000-pixel curve
MAX_POINTS = 40_000  # per figure


def _fmt(v: object) -> str:
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isfinite(v) and v.is_integer() and abs(v) < 1e15:
            return str(int(v + 0.0))  # never "-0"
        return cell_number(v)
    return str(v)


def _tick_names(labels: list, positions: np.ndarray) -> dict[float, str]:
    """Category names of an axis whose ticks are words (block types, checkpoints): position -> name."""
    out = {}
    for pos, lab in zip(positions, labels):
        text = lab.get_text()
        if text.startswith("$"):  # a mathtext number (log axes: 10^k)
            continue
        try:
            float(text.replace("−", "-"))
        except ValueError:
            if text:
                out[float(pos)] = text
    return out


def _axis_value(v: float, names: dict[float, str]) -> str:
    return names.get(float(v), _fmt(v)) if names else _fmt(v)


def _thin(n: int, cap: int) -> np.ndarray:
    return np.arange(n) if n <= cap else np.unique(np.linspace(0, n - 1, cap).round().astype(int))


def points(fig) -> list[list]:  # noqa: ANN001 - a laid-out matplotlib Figure
    """[x_pixel, y_pixel, text] for every data point of every visible axes (pixels from the PNG's top-left)."""
    height = fig.bbox.height
    out: list[list] = []
    for ax in fig.axes:
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        xl, yl, title = ax.get_xlabel() or "x", ax.get_ylabel() or "y", ax.get_title()
        xnames = _tick_names(ax.get_xticklabels(), ax.get_xticks())
        ynames = _tick_names(ax.get_yticklabels(), ax.get_yticks())
        prefix = f"{title} · " if title else ""

        def add(xy: np.ndarray, texts: list[str], ax=ax) -> None:  # noqa: ANN001
            pix = ax.transData.transform(xy)
            box = ax.bbox
            for (px, py), text in zip(pix, texts):
                if (
                    np.isfinite(px)
                    and np.isfinite(py)
                    and box.x0 - 1 <= px <= box.x1 + 1
                    and box.y0 - 1 <= py <= box.y1 + 1
                ):
                    out.append([round(float(px), 1), round(float(height - py), 1), text])

        for line in ax.get_lines():
            if not line.get_visible() or line.get_transform() != ax.transData:
                continue  # reference lines drawn in axes coordinates (axvline) carry no data values
            xy = np.asarray(line.get_xydata(), dtype=float)
            if xy.ndim != 2 or not len(xy):
                continue
            label = line.get_label()
            name = "" if label.startswith("_") else f"{label} · "
            keep = _thin(len(xy), MAX_PER_ARTIST)
            add(
                xy[keep],
                [f"{prefix}{name}{xl} {_axis_value(x, xnames)} · {yl} {_axis_value(y, ynames)}" for x, y in xy[keep]],
            )
        for container in ax.containers:
            label = container.get_label()
            name = "" if not label or label.startswith("_") else f"{label} · "
            bars = [p for p in container.patches if p.get_height()]
            xy = np.array([[p.get_x() + p.get_width() / 2, p.get_y() + p.get_height()] for p in bars]).reshape(-1, 2)
            texts = [
                f"{prefix}{name}{xl} {_fmt(p.get_x())} – {_fmt(p.get_x() + p.get_width())} · {yl} {_fmt(p.get_height())}"
                for p in bars
            ]
            add(xy, texts)
        for image in ax.images:
            grid = np.ma.asarray(image.get_array())
            if grid.ndim != 2:
                continue
            ys, xs = np.nonzero(~np.ma.getmaskarray(grid))
            # a heatmap names its rows, columns and value (plots.heatmap sets `tpa_names`); else the tick words
            cx, cy, what = getattr(image, "tpa_names", (None, None, ""))
            texts = [
                f"{prefix}{cx[x] if cx else _axis_value(x, xnames)} · {cy[y] if cy else _axis_value(y, ynames)} · "
                f"{what}{' ' if what else ''}{_fmt(grid[y, x])}"
                for y, x in zip(ys, xs)
            ]
            add(np.column_stack([xs, ys]).astype(float), texts)
        for coll in ax.collections:
            offsets = np.asarray(coll.get_offsets(), dtype=float)
            if offsets.ndim != 2 or len(offsets) < 1 or coll.get_offset_transform() != ax.transData:
                continue
            label = coll.get_label()
            name = "" if not label or label.startswith("_") else f"{label} · "
            labels = getattr(coll, "tpa_labels", None)  # points that are named things (the cohort map's models)
            if labels is not None and len(labels) == len(offsets):
                add(offsets, [f"{labels[i]} · {xl} {_fmt(x)} · {yl} {_fmt(y)}" for i, (x, y) in enumerate(offsets)])
                continue
            keep = _thin(len(offsets), MAX_PER_ARTIST)
            add(offsets[keep], [f"{prefix}{name}{xl} {_fmt(x)} · {yl} {_fmt(y)}" for x, y in offsets[keep]])
    return out[:MAX_POINTS]


def attach(png: bytes, fig) -> bytes:  # noqa: ANN001
    """The PNG with the figure's hover points in a zTXt chunk before IEND (a figure without points is unchanged)."""
    found = points(fig)
    if not found or png[-12:-8] != b"\x00\x00\x00\x00" or png[-8:-4] != b"IEND":
        return png
    body = json.dumps({"w": fig.bbox.width, "h": fig.bbox.height, "p": found}, ensure_ascii=True, separators=(",", ":"))
    data = KEY + b"\x00\x00" + zlib.compress(body.encode("ascii"), 6)
    chunk = struct.pack(">I", len(data)) + b"zTXt" + data + struct.pack(">I", zlib.crc32(b"zTXt" + data))
    return png[:-12] + chunk + png[-12:]


def read(png: bytes) -> dict | None:
    """The hover points a PNG carries ({"w", "h", "p": [[x, y, text], ...]}), or None."""
    pos = 8
    while pos + 8 <= len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        data = png[pos + 8 : pos + 8 + length]
        if kind == b"zTXt" and data.startswith(KEY + b"\x00\x00"):
            try:
                return json.loads(zlib.decompress(data[len(KEY) + 2 :]))
            except (zlib.error, ValueError):
                return None
        if kind == b"IEND":
            break
        pos += 12 + length
    return None
