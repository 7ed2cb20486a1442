"""`tpa-dist compare A B`: model B against model A by block type and relative depth — Δalpha, Δ(90 % energy rank
ratio), Δstable rank (the SQL macro compare_models in sql/views.sql) — and the places where they differ most."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from tpa_dist.db.query import plan_objects, show_latest
from tpa_dist.db.sandbox import close, open_sandbox
from tpa_dist.errors import ReportError
from tpa_dist.text import cell_number

METRICS = ("alpha", "r90", "stable_rank")


@dataclass
class Comparison:
    a: str
    b: str
    columns: list[str]
    rows: list[dict]
    largest: dict[str, list[dict]] = field(default_factory=dict)  # per metric, rows by |Δ| descending


def compare(db: str | Path, a: str, b: str, top: int = 5) -> Comparison:
    """B against A from the database (each model's latest revision); either name unknown is a ReportError naming
    the stored models."""
    from tpa_dist.report.render import check_models

    if a == b:
        raise ReportError(f"both names are the same model ({a!r}): give two different models to compare")
    con = open_sandbox(db)
    try:
        check_models(con, db, [a, b])
        show_latest(con)
        plan_objects(con)
        rel = con.execute("SELECT * FROM compare_models(?, ?)", [a, b])
        columns = [d[0] for d in rel.description]
        rows = [dict(zip(columns, r)) for r in rel.fetchall()]
    finally:
        close(con)
    if not rows:
        raise ReportError(f"{a} and {b} share no block type at any relative depth: nothing to compare")
    largest = {  # only differences that are there: an equal block is no "largest Δ"
        m: sorted((r for r in rows if _differs(r, m)), key=lambda r: -abs(r[f"d_{m}"]))[:top] for m in METRICS
    }
    return Comparison(a, b, columns, rows, largest)


def _differs(row: dict, metric: str) -> bool:
    """The metric differs beyond rounding noise (1e-12 of its size) between the two models in this row."""
    d, a = row[f"d_{metric}"], row[f"{metric}_a"]
    return d is not None and abs(d) > 1e-12 * max(abs(a or 0.0), 1e-300)


def _num(v: object) -> str:
    return "" if v is None else cell_number(v, 3) if isinstance(v, float) else str(v)


def format_comparison(c: Comparison, fmt: str = "table") -> str:
    """The comparison as an aligned table with the largest differences after it, or csv / json."""
    if fmt == "json":
        return json.dumps({"a": c.a, "b": c.b, "rows": c.rows, "largest": c.largest}, indent=1, default=str)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(c.columns)
        writer.writerows([r[k] for k in c.columns] for r in c.rows)
        return buf.getvalue()
    shown = ["block_type", "depth_from", "depth_to", "layers_a", "layers_b", "d_alpha", "d_r90", "d_stable_rank"]
    cells = [shown] + [[_num(r[k]) for k in shown] for r in c.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(shown))]
    lines = [f"{c.b} against {c.a} (Δ = {c.b} − {c.a}), by block type and relative depth (layer / last layer):"]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    words = {"alpha": "alpha", "r90": "90 % energy rank ratio", "stable_rank": "stable rank"}
    for metric, rows in c.largest.items():
        lines.append(f"\nlargest Δ {words[metric]}:" + ("" if rows else " none (equal in every block and depth)"))
        for r in rows:
            lines.append(
                f"  {r['block_type']} at depth {r['depth_from']:.1f}–{r['depth_to']:.1f} (layers {r['layers_a']} of "
                f"{c.a}, {r['layers_b']} of {c.b}): {_num(r[metric + '_a'])} → {_num(r[metric + '_b'])} "
                f"(Δ {cell_number(r['d_' + metric], 3, sign=True)})"
            )
    return "\n".join(lines)
