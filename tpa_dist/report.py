"""Report generators: every section is a `.sql` file (sql/reports/NN_name.sql, plus users' --sql-dir),
whose header says its title, what it shows and how it is drawn; this module runs them read-only and
writes report.md (plots as PNG files beside it) and a self-contained report.html (plots embedded)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from . import plots
from .errors import ReportError
from .files import read_text_limited
from .sqlfiles import sql_files
from .store import connect_db

MAX_TABLE_ROWS = 60
_HEADER = re.compile(r"^--\s*(title|shows|draw):\s*(.*)$")


@dataclass
class Section:
    path: Path
    title: str
    shows: str
    draw: str  # table | heatmap | lines | loglog | histogram | esd
    options: dict[str, str]
    query: str


@dataclass
class Rendered:
    section: Section
    columns: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    png: bytes | None = None
    error: str | None = None


def parse_section(path: Path) -> Section:
    """Read a section file: `-- title:`, `-- shows:` (continued by `--` lines), `-- draw: KIND k=v ...`."""
    try:
        text = read_text_limited(path, 1 << 20) if isinstance(path, Path) else path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not UTF-8 text") from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    meta: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        m = _HEADER.match(line)
        if m:
            last = m.group(1)
            meta[last] = m.group(2).strip()
        elif last == "shows":
            meta["shows"] += " " + line.lstrip("- ").strip()
    if "title" not in meta:
        raise ReportError(f"{path}: no `-- title:` header line (see sql/reports/*.sql for the format)")
    kind, *opts = (meta.get("draw") or "table").split()
    if kind not in ("table", "heatmap", "lines", "loglog", "histogram", "esd"):
        raise ReportError(f"{path}: unknown draw kind {kind!r}")
    options = dict(o.split("=", 1) for o in opts if "=" in o)
    return Section(path, meta["title"], meta.get("shows", ""), kind, options, text)


def load_sections(extra_dirs: tuple[str | Path, ...] = ()) -> list[Section]:
    """Built-in sections (sql/reports/NN_*.sql) in order, then every *.sql of each extra folder."""
    paths: list = [f for f in sql_files("reports") if re.match(r"\d\d_", f.name)]
    for folder in extra_dirs:
        found = sorted(Path(folder).glob("*.sql"))
        if not found:
            raise ReportError(f"{folder}: no .sql files for extra report sections")
        paths += found
    return [parse_section(p) for p in paths]


def _draw(sec: Section, cols: list[str], rows: list[tuple]) -> bytes | None:
    o = sec.options
    if sec.draw == "table" or not rows:
        return None
    if sec.draw == "heatmap":
        return plots.heatmap(sec.title, cols, rows, o["x"], o["y"], o["value"], o.get("facet"), o.get("label"))
    if sec.draw in ("lines", "loglog"):
        return plots.lines(sec.title, cols, rows, o["x"], o["y"], o["series"], log=sec.draw == "loglog")
    if sec.draw == "histogram":
        return plots.histogram(sec.title, cols, rows, o["value"], o["series"])
    return plots.esd(sec.title, cols, rows, o["value"], o["series"], o["alpha"], o["xmin"])


def render(con: duckdb.DuckDBPyConnection, sections: list[Section], models: list[str]) -> list[Rendered]:
    out = []
    for sec in sections:
        r = Rendered(sec)
        try:
            params = {"models": models} if "$models" in sec.query else None
            cur = con.execute(sec.query, params) if params else con.execute(sec.query)
            r.columns = [d[0] for d in cur.description or []]
            r.rows = cur.fetchall()
            r.png = _draw(sec, r.columns, r.rows)
        except (duckdb.Error, KeyError, ValueError) as exc:
            r.error = f"{sec.path.name}: {type(exc).__name__}: {exc}"
        out.append(r)
    return out


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _slug(sec: Section) -> str:
    return re.sub(r"[^a-z0-9]+", "_", sec.path.name.removesuffix(".sql").lower()).strip("_")


def _markdown(rendered: list[Rendered], models: list[str]) -> str:
    lines = ["# tpa-dist report", "", f"Models: {', '.join(models)}", ""]
    for r in rendered:
        lines += [f"## {r.section.title}", "", f"_{r.section.shows}_", ""]
        if r.error:
            lines += [f"**Error:** `{r.error}`", ""]
            continue
        if r.png:
            lines += [f"![{r.section.title}]({_slug(r.section)}.png)", ""]
        if r.section.draw == "table" or not r.png:
            if not r.rows:
                lines += ["(no rows)", ""]
                continue
            lines.append("| " + " | ".join(r.columns) + " |")
            lines.append("|" + " --- |" * len(r.columns))
            for row in r.rows[:MAX_TABLE_ROWS]:
                lines.append("| " + " | ".join(_cell(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
            if len(r.rows) > MAX_TABLE_ROWS:
                lines.append(
                    f"\n… {len(r.rows) - MAX_TABLE_ROWS} more rows (`tpa-dist sql` with "
                    f"sql/reports/{r.section.path.name} for all)"
                )
            lines.append("")
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px}
th{background:#f2f2f2}h2{border-bottom:2px solid #446;margin-top:2em}.shows{color:#555;font-style:italic}
img{max-width:100%;border:1px solid #ddd}.error{color:#a00}"""


def _html(rendered: list[Rendered], models: list[str]) -> str:
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>tpa-dist report</title>",
        f"<style>{_CSS}</style></head><body><h1>tpa-dist report</h1>",
        f"<p>Models: {html.escape(', '.join(models))}</p>",
    ]
    for r in rendered:
        parts.append(f"<h2>{html.escape(r.section.title)}</h2><p class='shows'>{html.escape(r.section.shows)}</p>")
        if r.error:
            parts.append(f"<p class='error'>{html.escape(r.error)}</p>")
            continue
        if r.png:
            data = base64.b64encode(r.png).decode()
            parts.append(f"<img alt='{html.escape(r.section.title)}' src='data:image/png;base64,{data}'>")
        if r.section.draw == "table" or not r.png:
            if not r.rows:
                parts.append("<p>(no rows)</p>")
                continue
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in r.columns) + "</tr>")
            for row in r.rows[:MAX_TABLE_ROWS]:
                parts.append("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>")
            parts.append("</table>")
            if len(r.rows) > MAX_TABLE_ROWS:
                parts.append(f"<p>… {len(r.rows) - MAX_TABLE_ROWS} more rows</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    db: str | Path, out_dir: str | Path, models: list[str] | None = None, sql_dirs: tuple[str | Path, ...] = ()
) -> list[Rendered]:
    """Render every section for `models` (default: all stored) into out_dir/report.md and report.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = load_sections(sql_dirs)
    con = connect_db(db, read_only=True, sandbox=True)
    try:
        if not models:
            models = [m for (m,) in con.execute("SELECT DISTINCT model_id FROM matrix_analysis ORDER BY 1").fetchall()]
        rendered = render(con, sections, models)
    finally:
        con.close()
    for r in rendered:
        if r.png:
            (out / f"{_slug(r.section)}.png").write_bytes(r.png)
    (out / "report.md").write_text(_markdown(rendered, models), encoding="utf-8")
    (out / "report.html").write_text(_html(rendered, models), encoding="utf-8")
    return rendered
