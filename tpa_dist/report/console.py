"""The seed tool's console summary after a run: LAYER-BY-LAYER MATRIX ANALYSIS, compact."""

from __future__ import annotations

from pathlib import Path

from tpa_dist.db.query import show_latest
from tpa_dist.db.sqlfiles import sql_text
from tpa_dist.db.store import connect_db
from tpa_dist.text import printable

RULE = "=" * 80
MAX_CONSOLE_MODELS = 16  # models shown layer by layer (a census's console would run to thousands of lines; the
# report's cohort form starts past the same number)


def layer_summary(db: str | Path, models: list[str]) -> str:
    """Per model, per layer, per block type: shape, rank, 90 % energy rank, heavy-tail alpha, sparsity, μ, σ; the
    name and shape columns as wide as their longest entry, so long block names keep the columns aligned. The first
    MAX_CONSOLE_MODELS models are shown; a line says how many more the report and the database hold."""
    shown, more = models[:MAX_CONSOLE_MODELS], len(models) - MAX_CONSOLE_MODELS
    con = connect_db(db, read_only=True)
    try:
        show_latest(con)
        rows = con.execute(sql_text("console/layer_summary.sql"), {"models": shown}).fetchall()
    finally:
        con.close()
    out = [RULE, "LAYER-BY-LAYER MATRIX ANALYSIS", RULE]
    names = [printable(f"{r[2]} ×{r[3]}" if r[3] > 1 else r[2]) for r in rows]  # a name cannot forge lines
    width = max([14, *map(len, names)])
    shape_width = max([18, *(len(r[4]) for r in rows)])
    current: tuple | None = None
    for name, (model, layer, _, _, shape, rank, design, r90, sparsity, mean, std, alpha) in zip(names, rows):
        if (model, layer) != current:
            current = (model, layer)
            out += [
                "",
                f"🔹 {printable(model)} — " + (f"LAYER {layer}" if layer is not None else "NON-LAYER"),
                "-" * 50,
            ]
        tail = f" | α={alpha:.2f}" if alpha is not None else " | α=n/a"
        out.append(
            f"  📊 {name:<{width}}| Shape: {shape:<{shape_width}}| Rank: {int(rank)}/{design} "
            f"({100 * rank / design:.1f}%){tail}"
        )
        out.append(
            f"      SVD 90%: {int(r90):>4}/{design} ({100 * r90 / design:.1f}%) | Sparsity: {100 * sparsity:.1f}% "
            f"| μ={mean: .4f} σ={std: .4f}"
        )
    if more > 0:
        out += [
            "",
            f"… and {more} more model(s), not shown layer by layer: report.html has every model (its cohort "
            "section ranks them), and `tpa-dist sql` every row",
        ]
    return "\n".join(out)
