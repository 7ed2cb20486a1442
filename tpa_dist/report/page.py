"""report.html: one self-contained, interactive page (no network, no CDN: the script and style are inlined from
report/assets/). Every figure is its PNG with the values of its points (hover.py) shown under the pointer; every
table sorts by a click on its header and filters as one types; model toggles hide a model everywhere; the matrix
picker draws any matrix's spectrum and ESD, every shown model overlaid, from the stored singular values.
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources

from tpa_dist.report import hover
from tpa_dist.report.palette import OKABE_ITO
from tpa_dist.report.sections import Rendered, cell_text, hint, lead, slug
from tpa_dist.text import printable

MAX_HTML_ROWS = 1_000  # rows a table carries into the page (sortable and filterable); report.md shows 60


def _esc(s: str) -> str:
    return html.escape(printable(s), quote=True)


def _asset(name: str) -> str:
    return resources.files("tpa_dist.report").joinpath("assets", name).read_text(encoding="utf-8")


def _json(value: object, element_id: str) -> str:
    """A JSON data island: `<` escaped so no text in it (a token, a model name) can close the script element."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")
    return f"<script type='application/json' id='{element_id}'>{text}</script>"


def _table(r: Rendered, models: list[str]) -> list[str]:
    if not r.rows:
        return ["<p>(no rows)</p>"]
    m = r.columns.index("model_id") if "model_id" in r.columns else None
    out = [
        f"<div class='tablewrap'><table class='data' id='t-{slug(r.section)}'><thead><tr>"
        + "".join(f"<th title='sort'>{_esc(c)}</th>" for c in r.columns)
        + "</tr></thead><tbody>"
    ]
    for row in r.rows[:MAX_HTML_ROWS]:
        model = "" if m is None else f" data-model='{_esc(str(row[m]))}'"
        out.append(f"<tr{model}>" + "".join(f"<td>{_esc(cell_text(v))}</td>" for v in row) + "</tr>")
    out.append("</tbody></table></div>")
    if len(r.rows) > MAX_HTML_ROWS:
        out.append(f"<p>… {len(r.rows) - MAX_HTML_ROWS} more rows (<code>{_esc(hint(r, models))}</code> for all)</p>")
    if r.note:
        out.append(f"<p>({_esc(r.note)})</p>")
    return out


def _figure(r: Rendered) -> list[str]:
    data = base64.b64encode(r.png).decode()
    points = hover.read(r.png)
    name = slug(r.section)
    if not points:
        return [f"<img class='fig' alt='{_esc(r.section.title)}' src='data:image/png;base64,{data}'>"]
    return [
        f"<img class='fig' data-hover='h-{name}' alt='{_esc(r.section.title)}' src='data:image/png;base64,{data}'>",
        _json(points, f"h-{name}"),
    ]


def _toggles(models: list[str]) -> str:
    boxes = "".join(
        f"<label><input type='checkbox' checked value='{_esc(m)}'>"
        f"<span class='swatch' style='background:{OKABE_ITO[i % len(OKABE_ITO)]}'></span>{_esc(m)}</label>"
        for i, m in enumerate(models)
    )
    return f"<fieldset id='model-toggles'><legend>Models shown</legend>{boxes}</fieldset>"


def _picker(data: dict) -> str:
    note = f"<p>({data['left_out']} more matrices are not offered here.)</p>" if data["left_out"] else ""
    if data.get("models_left_out"):
        note += (
            f"<p>(The picker holds the first {data.get('models_shown')} models of the report; "
            f"{data['models_left_out']} more are in the tables — <code>tpa-dist report --models A,B,…</code> "
            "chooses which.)</p>"
        )
    return (
        "<section id='picker'><h2 id='matrix-picker'>Matrix picker</h2>"
        "<p class='shows'>Any analyzed matrix: its singular values σ_k (log-log) and the empirical spectral density of "
        "λ = σ² with its power-law fit from xmin, every shown model overlaid; hover for values.</p>"
        "<label>Matrix <select id='picker-matrix'></select></label> "
        "<input id='picker-search' type='search' placeholder='find a matrix…'>"
        f"{note}<table id='picker-info' class='info'></table>"
        "<div class='charts'><div id='picker-spectrum' class='chart'></div><div id='picker-esd' class='chart'></div>"
        f"</div>{_json(data, 'tpa-picker')}</section>"
    )


def page(rendered: list[Rendered], models: list[str], picker: dict) -> str:
    """The whole report.html."""
    first = lead(rendered)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>tpa-dist report</title>",
        f"<style>{_asset('report.css')}</style></head><body><h1>tpa-dist report</h1>",
        f"<p>Models: {_esc(', '.join(models))}</p>",
        _json(models, "tpa-models"),
        _json(list(OKABE_ITO), "tpa-colors"),
        _toggles(models),
    ]
    for i, r in enumerate(rendered):
        parts.append(
            f"<h2 id='{slug(r.section)}'>{_esc(r.section.title)}</h2><p class='shows'>{_esc(r.section.shows)}</p>"
        )
        if r.error:
            parts.append(f"<p class='error'>{_esc(r.error)}</p>")
        else:
            if r.png:
                parts += _figure(r)
            parts += [f"<p class='caption'>{_esc(c)}</p>" for c in r.captions]
            if r.section.draw == "table" or not r.png:
                parts += _table(r, models)
        if i == first - 1:
            links = "<li><a href='#matrix-picker'>Matrix picker</a></li>" + "".join(
                f"<li><a href='#{slug(x.section)}'>{_esc(x.section.title)}</a></li>" for x in rendered[first:]
            )
            parts.append(f"<nav><h2>Contents</h2><ol>{links}</ol></nav>")
            parts.append(_picker(picker))
    parts.append(f"<div id='tip' class='tip' hidden></div><script>{_asset('report.js')}</script></body></html>")
    return "\n".join(parts)
