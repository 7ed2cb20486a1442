"""The seed tool's console summary after a run: LAYER-BY-LAYER MATRIX ANALYSIS, compact."""

from __future__ import annotations

from pathlib import Path

from tpa_dist.db.query import show_latest
from tpa_dist.db.sqlfiles import sql_text
from tpa_dist.db.store import connect_db

RULE = "=" * 80


def layer_summary(db: str | Path, models: list[str]) -> str:
    """Per model, per layer, per block type: shape, rank, 90 % energy rank, sparsity, μ, σ."""
    con = connect_db(db, read_only=True)
    try:
        show_latest(con)
        rows = con.execute(sql_text("console/layer_summary.sql"), {"models": models}).fetchall()
    finally:
        con.close()
    out = [RULE, "LAYER-BY-LAYER MATRIX ANALYSIS", RULE]
    current: tuple | None = None
    for model, layer, block, n, shape, rank, design, r90, sparsity, mean, std in rows:
        if (model, layer) != current:
            current = (model, layer)
            out += ["", f"🔹 {model} — " + (f"LAYER {layer}" if layer is not None else "NON-LAYER"), "-" * 50]
        name = f"{block} ×{n}" if n > 1 else block
        out.append(f"  📊 {name:<14}| Shape: {shape:<18}| Rank: {int(rank)}/{design} ({100 * rank / design:.1f}%)")
        out.append(
            f"      SVD 90%: {int(r90):>4}/{design} ({100 * r90 / design:.1f}%) | Sparsity: {100 * sparsity:.1f}% "
            f"| μ={mean: .4f} σ={std: .4f}"
        )
    return "\n".join(out)
