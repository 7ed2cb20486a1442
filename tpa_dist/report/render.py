"""Report generators: every section is a `.sql` file (sql/reports/NN_name.sql, plus users' --sql-dir), whose header
says its title, what it shows and how it is drawn; this module runs them on a sandboxed read-only connection and
writes report.md (plots as PNG files beside it) and a self-contained interactive report.html (page.py).

The first section is the per-model summary, followed by a table of contents. A section may return a `caption`
column: its distinct values are printed under the plot (what a sampled plot chose, why a partition is degenerate).
All text is escaped for display: decoded tokens with control characters or broken bytes never reach the files raw.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import duckdb

from tpa_dist.db.query import fetch_capped, plan_objects, show_latest
from tpa_dist.db.sandbox import close, interruptible, open_sandbox
from tpa_dist.db.sqlfiles import sql_text
from tpa_dist.errors import ReportError, StoreError
from tpa_dist.files import read_bytes_limited, read_text_limited, write_atomic
from tpa_dist.report.drawing import Drawing, Figure, Result, write_figures
from tpa_dist.report.page import page
from tpa_dist.report.palette import Palette
from tpa_dist.report.picker import picker_data
from tpa_dist.report.sections import (
    Rendered,
    Section,
    cell_text,
    hint,
    lead,
    load_sections,
    slug,
)
from tpa_dist.text import printable

MAX_TABLE_ROWS = 60
MAX_FETCH_ROWS = 2_000_000  # a section's result is fetched up to this many rows / bytes, then cut with a note
MAX_FETCH_BYTES = 512 << 20
MAX_FIGURE_MODELS = 16  # models drawn in one figure (panels or lines); the tables keep every model
SECTION_TIMEOUT_S = 300.0  # a section's query still running after this is interrupted (its section fails)


def _draw(sec: Section, cols: list[str], rows: list[tuple], palette: Palette) -> bytes | None:
    """One section's figure (run where figures are drawn: drawing.py; matplotlib is imported there)."""
    o = sec.options
    if sec.draw == "table" or not rows:
        return None
    from tpa_dist.report import plots

    if sec.draw == "heatmap":
        center = float(o["center"]) if "center" in o else None
        return plots.heatmap(sec.title, cols, rows, o["x"], o["y"], o["value"], o.get("facet"), o.get("label"), center)
    if sec.draw in ("lines", "loglog"):
        return plots.lines(
            sec.title,
            cols,
            rows,
            o["x"],
            o["y"],
            o["series"],
            log=sec.draw == "loglog",
            facet=o.get("facet"),
            color=o.get("color"),
            ylabel=o.get("label"),
            sharey=o.get("sharey", "true") != "false",
            palette=palette,
            xticks=o.get("xticks"),
        )
    if sec.draw == "map":  # one point per model, one fixed-size figure
        from tpa_dist.report import cohort_map

        return cohort_map.draw(sec.title, cols, rows, o["point"], o["feature"], o["value"])
    if sec.draw == "histogram":
        return plots.histogram(sec.title, cols, rows, o["value"], o["series"], palette)
    return plots.esd(
        sec.title,
        cols,
        rows,
        o["value"],
        o["series"],
        o["alpha"],
        o["xmin"],
        o.get("facet"),
        palette,
        bulk_max=o.get("bulk_max"),
        q=o.get("q"),
    )


def render(con: duckdb.DuckDBPyConnection, sections: list[Section], models: list[str]) -> list[Rendered]:
    """Run every section's query, then draw the figures."""
    out = query(con, sections, models)
    draw(out, models=models)
    return out


def _needs_met(con: duckdb.DuckDBPyConnection, sec: Section, models: list[str], known: dict[str, bool]) -> bool:
    """Whether an optional section's `-- needs:` hold (tables with rows, checked once per report; models>N)."""
    for need in sec.needs:
        if need.startswith("models>"):
            if len(models) <= int(need[len("models>") :]):
                return False
            continue
        if need not in known:
            try:
                rows = con.execute("SELECT EXISTS (SELECT 1 FROM query_table($t))", {"t": need}).fetchall()
                known[need] = bool(rows[0][0])
            except duckdb.Error:  # no such table here: the query itself will say so
                known[need] = True
        if not known[need]:
            return False
    return True


def query(
    con: duckdb.DuckDBPyConnection, sections: list[Section], models: list[str], known: dict[str, bool] | None = None
) -> list[Rendered]:
    """Every section's rows (a failed query is that section's error); an optional section whose `needs` do not hold
    has none, unqueried. `known`: tables found empty or not so far (shared by a report's calls)."""
    out = []
    known = {} if known is None else known
    for sec in sections:
        r = Rendered(sec)
        if sec.needs and not _needs_met(con, sec, models, known):
            out.append(r)
            continue
        try:
            params = {"models": models} if "$models" in sec.query else None
            work = partial(fetch_capped, con, sec.query, params, MAX_FETCH_ROWS, MAX_FETCH_BYTES)
            result = interruptible(con, work, SECTION_TIMEOUT_S)
            r.columns, r.rows, r.note = result.columns, result.rows, result.note
            if "caption" in r.columns:
                i = r.columns.index("caption")
                r.captions = list(dict.fromkeys(str(row[i]) for row in r.rows if row[i] is not None))
                r.columns = r.columns[:i] + r.columns[i + 1 :]
                r.rows = [row[:i] + row[i + 1 :] for row in r.rows]
            if sec.draw == "table" and "pivot" in sec.options:
                r.columns, r.rows = pivot(r.columns, r.rows, sec.options["pivot"], sec.options["value"])
        except (duckdb.Error, StoreError, KeyError, ValueError, TypeError) as exc:
            r.error = f"{sec.name}: {type(exc).__name__}: {exc}"
        out.append(r)
    return out


def draw(
    rendered: list[Rendered],
    figures: Sequence[Figure] = (),
    before: Callable[[], None] | None = None,
    models: Sequence[str] = (),
    cached: Callable[[Rendered, str], bytes | None] = lambda _r, _key: None,
) -> list[Result]:
    """Draw the sections' figures and `figures` (other PNGs of the run) side by side on several cores
    (drawing.py), every model in its colour (the report's model order); returns what each of `figures` gave. A
    section whose figure `cached(rendered, key)` still has (the same key: the same rows, options and colours) is not
    drawn again; `Rendered.key` keeps the key."""
    drawing = SectionDrawing(figures, before, models, cached)
    for r in rendered:
        drawing.add(r)
    return drawing.finish()


class SectionDrawing:
    """`draw`, a section at a time: each section's figure goes to the drawing children as soon as its query returned
    (`add`), while the caller runs the next queries; `figures` are sent first (their data is ready)."""

    def __init__(
        self,
        figures: Sequence[Figure] = (),
        before: Callable[[], None] | None = None,
        models: Sequence[str] = (),
        cached: Callable[[Rendered, str], bytes | None] = lambda _r, _key: None,
        workers: int = 2,
    ) -> None:
        self.palette = Palette(list(models))
        self.cached = cached
        self.todo: list[Rendered] = []
        self.figures = len(figures)
        self.drawing = Drawing((KeyError, ValueError, TypeError), before, workers=workers)
        for f in figures:
            self.drawing.add((f.draw, f.args))

    def add(self, r: Rendered) -> None:
        """A queried section: its figure drawn unless it has none or `cached` still has it."""
        if r.error is not None or r.section.draw == "table" or not r.rows:
            return
        rows = _figure_rows(r)
        r.key = figure_key(r, rows, self.palette)
        r.png = self.cached(r, r.key)
        if r.png is None:
            self.todo.append(r)
            self.drawing.add((_draw, (r.section, r.columns, rows, self.palette)))

    def finish(self) -> list[Result]:
        """Each section's PNG (or its error) into its Rendered; what each of `figures` gave."""
        drawn = self.drawing.results()
        for r, png in zip(self.todo, drawn[self.figures :]):
            if isinstance(png, Exception):
                r.error = f"{r.section.name}: {type(png).__name__}: {png}"
            else:
                r.png = png
        return drawn[: self.figures]

    def stop(self) -> None:
        self.drawing.stop()


FIGURE_VERSION = "2"  # bumped when the drawing code changes what a figure of the same rows looks like


def figure_key(r: Rendered, rows: list[tuple], palette: Palette) -> str:
    """What a section's figure shows, as a digest: its draw kind and options, title, columns, rows and the colours of
    the models in it (tpa-dist's version included, so an upgrade redraws)."""
    import hashlib

    from tpa_dist import __version__

    digest = hashlib.sha256()
    for part in (__version__, FIGURE_VERSION, r.section.draw, sorted(r.section.options.items()), r.section.title):
        digest.update(repr(part).encode())
    digest.update(repr(r.columns).encode())
    for row in rows:
        digest.update(repr(row).encode())
    digest.update(repr(palette.order).encode())
    return digest.hexdigest()


def _figure_rows(r: Rendered) -> list[tuple]:
    """The rows a figure draws: those of the first MAX_FIGURE_MODELS models (in the report's order) when the section
    has more — every model keeps its panel or line up to there, and the caption says what was left to the tables
    (the red team's 300-model report spent 13 minutes drawing 300 panels per figure no one could read)."""
    if "model_id" not in r.columns or r.section.draw == "map":  # the map: a point per model, never more pixels
        return r.rows
    i = r.columns.index("model_id")
    models = list(dict.fromkeys(row[i] for row in r.rows))
    if len(models) <= MAX_FIGURE_MODELS:
        return r.rows
    kept = set(models[:MAX_FIGURE_MODELS])
    r.captions.append(
        f"The figure shows the first {MAX_FIGURE_MODELS} of {len(models)} models (the tables list all; "
        "tpa-dist report --models A,B,… chooses which)."
    )
    return [row for row in r.rows if row[i] in kept]


def pivot(cols: list[str], rows: list[tuple], on: str, value: str) -> tuple[list[str], list[tuple]]:
    """Spread `value` over one column per distinct `on` (in first-seen order); the other columns key the rows."""
    i, j = cols.index(on), cols.index(value)
    keys = [c for n, c in enumerate(cols) if n not in (i, j)]
    spread = list(dict.fromkeys(str(r[i]) for r in rows))
    table: dict[tuple, dict[str, object]] = {}
    for r in rows:
        key = tuple(v for n, v in enumerate(r) if n not in (i, j))
        table.setdefault(key, {})[str(r[i])] = r[j]
    return keys + [f"{s} ({value})" for s in spread], [k + tuple(v.get(s) for s in spread) for k, v in table.items()]


def _md_text(s: str) -> str:
    """Text for report.md: control characters escaped, and no raw HTML (a CommonMark renderer would run a tensor
    name or token `<img onerror=…>`): `&`, `<`, `>` as entities, `|` escaped for tables."""
    return html.escape(printable(s), quote=False).replace("|", "\\|")


def _markdown(rendered: list[Rendered], models: list[str]) -> str:
    lines = ["# tpa-dist report", "", f"Models: {_md_text(', '.join(models))}", ""]
    for i, r in enumerate(rendered):
        lines += [
            f'<a id="{slug(r.section)}"></a>',
            "",
            f"## {_md_text(r.section.title)}",
            "",
            f"_{_md_text(r.section.shows)}_",
            "",
        ]
        if r.error:
            lines += [f"**Error:** {_md_text(r.error)}", ""]
        else:
            if r.png:
                lines += [f"![{_md_text(r.section.title)}]({slug(r.section)}.png)", ""]
            lines += [f"> {_md_text(c)}" for c in r.captions] + ([""] if r.captions else [])
            if r.section.draw == "table" or not r.png:
                lines += _md_table(r, models)
        if i == lead(rendered) - 1:  # the findings and the summary, then the table of contents
            lines += (
                ["## Contents", ""]
                + [f"- [{_md_text(x.section.title)}](#{slug(x.section)})" for x in rendered[lead(rendered) :]]
                + [""]
            )
    return "\n".join(lines)


def _md_table(r: Rendered, models: list[str]) -> list[str]:
    if not r.rows:
        return ["(no rows)", ""]
    out = ["| " + " | ".join(_md_text(c) for c in r.columns) + " |", "|" + " --- |" * len(r.columns)]
    for row in r.rows[:MAX_TABLE_ROWS]:
        out.append("| " + " | ".join(_md_text(cell_text(v)) for v in row) + " |")
    if len(r.rows) > MAX_TABLE_ROWS:
        out.append(f"\n… {len(r.rows) - MAX_TABLE_ROWS} more rows (`{hint(r, models)}` for all)")
    if r.note:
        out.append(f"\n({r.note})")
    return out + [""]


def _picker_rows(con: duckdb.DuckDBPyConnection, models: list[str]) -> tuple[list[str], list[tuple]]:
    """Every reported matrix with its spectrum, for report.html's picker (none when the query fails: the page says)."""
    work = partial(
        fetch_capped, con, sql_text("html/matrices.sql"), {"models": models}, MAX_FETCH_ROWS, MAX_FETCH_BYTES
    )
    try:
        result = interruptible(con, work, SECTION_TIMEOUT_S)
    except (duckdb.Error, StoreError):
        return [], []
    return result.columns, result.rows


def check_models(
    con: duckdb.DuckDBPyConnection, db: str | Path, models: list[str] | None, run: tuple[str, list[str]] | None = None
) -> list[str]:
    """The models to report: every model stored with results (matrices, or ΔW for an adapter) in the order they were
    first analyzed (sql/outputs/report_models.sql), or the ones asked for — each of which must be stored (a typo is an
    error naming the models there are, never an empty report). `run` (a run's id and its models in its job's order):
    the models that run stored first come last, in that order."""
    tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}
    if not {"models", "matrix_analysis"} <= tables:
        raise ReportError(
            f"{db}: not a tpa-dist database (it has no models or matrix_analysis table): analyze models into it "
            f"first with `tpa-dist submit --db {db} --models ...`"
        )
    known = [
        m for (m,) in con.execute("SELECT DISTINCT model_id FROM models WHERE status = 'ok' ORDER BY 1").fetchall()
    ]
    if not known:
        raise ReportError(f"{db}: no model was analyzed into it (`tpa-dist status --db {db}` shows the runs)")
    if not models:
        stored = con.execute(sql_text("outputs/report_models.sql")).fetchall()
        if run is None:
            return [m for m, _ in stored] or known
        run_id, order = run
        new = {m for m, first in stored if first == run_id}
        return [m for m, _ in stored if m not in new] + [m for m in dict.fromkeys(order) if m in new] or known
    unknown = [m for m in models if m not in known]
    if unknown:
        shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
        raise ReportError(f"{db}: no analyzed model named {', '.join(map(repr, unknown))}; stored: {shown}")
    return models


FIGURE_KEYS = ".figure-keys.json"  # beside the PNGs: each figure's key (figure_key), so an unchanged one is kept


def _figure_keys(out: Path) -> dict[str, str]:
    try:
        keys = json.loads(read_text_limited(out / FIGURE_KEYS, 1 << 20))
    except (OSError, ValueError):
        return {}
    return (
        {k: v for k, v in keys.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(keys, dict) else {}
    )


def _cached(out: Path, keys: dict[str, str], r: Rendered, key: str) -> bytes | None:
    """The PNG written for `r` by an earlier report, when it shows the same thing (its key matches)."""
    path = out / f"{slug(r.section)}.png"
    if keys.get(slug(r.section)) != key:
        return None
    try:
        return read_bytes_limited(path, 64 << 20)
    except (OSError, ValueError):
        return None


def keep_other_report(out: Path, models: list[str]) -> Path | None:
    """A report of another set of models in `out` is moved to out/previous/<its models>/ (report.md, report.html and
    its figures) before this one is written, and said in the log: a report never silently replaces another."""
    import logging
    import shutil

    from tpa_dist.files import name_for_path, open_regular

    old = out / "report.md"
    if not old.is_file():
        return None
    with open_regular(old) as fh:  # its first lines only, whatever the file has become
        head = fh.read(1 << 16).decode("utf-8", errors="replace").splitlines()[:3]
    line = next((h for h in head if h.startswith("Models: ")), None)
    if line is None or line == f"Models: {_md_text(', '.join(models))}":
        return None
    if set(line.removeprefix("Models: ").split(", ")) <= {_md_text(m) for m in models}:
        return None  # the new report shows every model the old one did (a submit adding to the database)
    target = out / "previous" / name_for_path(line.removeprefix("Models: "))
    target.mkdir(parents=True, exist_ok=True)
    for path in [old, out / "report.html", *out.glob("[0-9][0-9]_*.png")]:
        if path.is_file():
            shutil.move(str(path), target / path.name)
    logging.getLogger("tpa_dist").warning("the report of other models (%s) was kept in %s", line[8:], target)
    return target


def write_report(
    db: str | Path,
    out_dir: str | Path,
    models: list[str] | None = None,
    sql_dirs: tuple[str | Path, ...] = (),
    figures: Sequence[Figure] = (),
    on_stage: Callable[[str], None] | None = None,
    all_revisions: bool = False,
    run: tuple[str, list[str]] | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> list[Rendered]:
    """Render every section for `models` (default: all stored, `run`'s new models last in its order) into
    out_dir/report.md and report.html; `figures` (the run's other PNGs) are drawn beside the report's and written too
    (a failed one is a section error). `meanwhile()` runs once the queries are done, while the figures are drawn."""
    out = Path(out_dir)
    sections = load_sections(sql_dirs)
    if on_stage is not None:
        on_stage("report")
    con = open_sandbox(db)
    drawing: SectionDrawing | None = None
    try:
        out.mkdir(parents=True, exist_ok=True)  # once the database opened: a report that cannot run leaves no folder
        models = check_models(con, db, models, run)
        show_latest(con, latest=not all_revisions)
        plan_objects(con)  # the plan views, also in databases stored before they existed
        keys = _figure_keys(out)
        figured = sum(s.draw != "table" for s in sections) + len(figures)
        before = partial(on_stage, "figures") if on_stage is not None else None  # where each figure is drawn
        drawing = SectionDrawing(figures, before, models, partial(_cached, out, keys), figured)
        order = sorted(range(len(sections)), key=lambda i: sections[i].draw == "table")  # figures' queries first
        done: dict[int, Rendered] = {}
        known: dict[str, bool] = {}
        for i in order:  # each figure drawn as soon as its query returned, while the next ones run
            (done[i],) = query(con, [sections[i]], models, known)
            drawing.add(done[i])
        rendered = [done[i] for i in range(len(sections))]  # the sections' order
        matrices = picker_data(*_picker_rows(con, models[:MAX_FIGURE_MODELS]))  # a census: the first models only
        matrices["models_shown"] = min(len(models), MAX_FIGURE_MODELS)
        matrices["models_left_out"] = max(0, len(models) - MAX_FIGURE_MODELS)
    except BaseException:
        if drawing is not None:
            drawing.stop()
        raise
    finally:
        close(con)
    try:
        if meanwhile is not None:
            meanwhile()
    except BaseException:
        drawing.stop()
        raise
    drawn = drawing.finish()
    rendered = [r for r in rendered if r.rows or r.error or not r.section.optional]
    for figure, message in zip(figures, write_figures(figures, drawn)):
        if message:  # shown as a failed section, and counted as the run's failure by the driver
            rendered.append(
                Rendered(Section(Path(figure.path.name), figure.path.name, "", "table", {}, ""), error=message)
            )
    keep_other_report(out, models)
    for r in rendered:  # each file whole or not at all, and a link planted in the folder replaced, never followed
        if r.png:
            write_atomic(out / f"{slug(r.section)}.png", r.png)
    write_atomic(out / FIGURE_KEYS, json.dumps({slug(r.section): r.key for r in rendered if r.png and r.key}))
    write_atomic(out / "report.md", _markdown(rendered, models))
    write_atomic(out / "report.html", page(rendered, models, matrices))
    return rendered
