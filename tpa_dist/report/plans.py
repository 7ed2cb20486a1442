"""Plans made from the stored measurements, as files a training script takes as they are: which modules to fine-tune
(Spectrum's SNR rule → Axolotl's `unfrozen_parameters` YAML), how much to prune each matrix (AlphaPruning's
sparsities from the heavy-tail alpha → JSON), and how far each matrix can be factored (its rank at an energy, or
under a parameter budget → JSON or CSV). Each reads the database's plan views (sql/views.sql) — the stored spectra
and metrics, nothing recomputed."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from tpa_dist.db.query import plan_objects, show_latest
from tpa_dist.db.sandbox import close, open_sandbox
from tpa_dist.errors import StoreError
from tpa_dist.files import OutputPathError, prepare_output, write_atomic


@dataclass(frozen=True)
class ModelKey:
    model_id: str
    revision: str


def _connect(db: str | Path) -> duckdb.DuckDBPyConnection:
    con = open_sandbox(db)
    show_latest(con)  # each model's latest revision
    plan_objects(con)  # the plan views, also in databases stored before they existed
    return con


def _rows(con: duckdb.DuckDBPyConnection, query: str, params: dict) -> list[dict]:
    cur = con.execute(query, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _one_model(con: duckdb.DuckDBPyConnection, model: str | None) -> ModelKey:
    """The model a single-file plan is for: the one asked for, or the database's only one."""
    known = con.execute("SELECT model_id, revision FROM latest_revisions ORDER BY 1").fetchall()
    if model is not None:
        match = [k for k in known if k[0] == model]
        if not match:
            raise StoreError(f"no model {model!r} in the database; known: {', '.join(k[0] for k in known) or 'none'}")
        return ModelKey(*match[0])
    if len(known) != 1:
        names = ", ".join(k[0] for k in known) or "none"
        raise StoreError(f"the database holds {len(known)} models ({names}): give --model, one plan is for one model")
    return ModelKey(*known[0])


# -- Spectrum ----------------------------------------------------------------------------------------------------------
def unfreeze_yaml(db: str | Path, top_percent: float, model: str | None = None) -> tuple[str, ModelKey]:
    """Spectrum's `unfrozen_parameters` YAML for one model: its output head and input embedding always, then per
    weight type (sorted) the top int(n · top_percent / 100) modules by SNR, highest first — Spectrum's own format,
    with the model's own names."""
    if not 0 <= top_percent <= 100:
        raise StoreError(f"--top-percent must be between 0 and 100, got {top_percent}")
    con = _connect(db)
    try:
        key = _one_model(con, model)
        params = {"model_id": key.model_id, "revision": key.revision, "p": float(top_percent)}
        rows = _rows(
            con,
            "SELECT weight_type, module, snr, unfrozen FROM plan_unfreeze($p) "
            "WHERE model_id = $model_id AND revision = $revision ORDER BY weight_type, place",
            params,
        )
        always = _rows(
            con,
            "SELECT param_name FROM matrix_analysis WHERE model_id = $model_id AND revision = $revision "
            "AND kind = 'matrix' AND block_type IN ('output', 'embedding') AND matrix_key = param_name "
            "ORDER BY block_type = 'embedding', param_name",
            {k: v for k, v in params.items() if k != "p"},
        )
    finally:
        close(con)
    intended = [f"^{r['param_name']}$" for r in always]
    lines = ["unfrozen_parameters:"] + [_yaml_item(name) for name in intended]
    types = list(dict.fromkeys(r["weight_type"] for r in rows))
    for weight_type in types:
        lines.append(f"# {_comment(weight_type)} layers")
        chosen = [r["module"] for r in rows if r["weight_type"] == weight_type and r["unfrozen"]]
        lines += [_yaml_item(name) for name in chosen]
        intended += chosen
    text = "\n".join(lines) + "\n"
    if _yaml_list(text) != intended:  # the names are data: the file must read back as exactly these names
        raise StoreError("the unfreeze plan's YAML does not read back as its names; please report this")
    return text, key


def _yaml_item(name: str) -> str:
    """One list item of a block sequence, its scalar written by PyYAML (quoted whenever the name needs it: a
    newline, `: `, `#`, a quote, a leading `- `, a tag …), on one line."""
    import yaml

    return yaml.safe_dump([name], default_flow_style=False, allow_unicode=True, width=1 << 30).rstrip("\n")


def _comment(text: str) -> str:
    """A YAML comment's text: no line breaks or control characters (they would end the comment)."""
    return "".join(c if c.isprintable() else " " for c in text)


def _yaml_list(text: str) -> list | None:
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return doc.get("unfrozen_parameters") if isinstance(doc, dict) else None


# -- AlphaPruning ------------------------------------------------------------------------------------------------------
def prune_plan(
    db: str | Path, sparsity: float, epsilon: float = 0.2, model: str | None = None, per_block: bool = False
) -> dict:
    """AlphaPruning's layer-wise sparsities for one model (the published linear mapping of alpha into [1 − ε, 1 + ε],
    scaled to a parameter-weighted mean of `sparsity`; `per_block`: each transformer layer's matrices share their
    mean alpha, AlphaPruning's block-wise mapping). A sparsity the mapping puts outside [0, 1] is clipped and the
    others scaled again, so the mean stays the target (said in `clipped`)."""
    if not 0 <= sparsity <= 1 or not 0 <= epsilon < 1:
        raise StoreError(f"--sparsity must be in [0, 1] and --epsilon in [0, 1), got {sparsity} and {epsilon}")
    con = _connect(db)
    try:
        key = _one_model(con, model)
        rows = _rows(
            con,
            "SELECT param_name, layer_index, block_type, alpha, params FROM plan_prune($s, $e) "
            "WHERE model_id = $model_id AND revision = $revision ORDER BY layer_index, param_name",
            {"model_id": key.model_id, "revision": key.revision, "s": float(sparsity), "e": float(epsilon)},
        )
    finally:
        close(con)
    if not rows:
        raise StoreError(f"{key.model_id}: no matrix of its transformer layers has an alpha to plan from")
    scores = [r["alpha"] for r in rows]
    if per_block:
        by_layer: dict[int, list[float]] = {}
        for r in rows:
            by_layer.setdefault(r["layer_index"], []).append(r["alpha"])
        scores = [sum(by_layer[r["layer_index"]]) / len(by_layer[r["layer_index"]]) for r in rows]
    out = alpha_sparsities(scores, [r["params"] for r in rows], sparsity, epsilon)
    clipped = sum(1 for s in out if s in (0.0, 1.0)) if out else 0
    matrices = [
        {"param_name": r["param_name"], "alpha": r["alpha"], "params": r["params"], "sparsity": s}
        for r, s in zip(rows, out)
    ]
    total = sum(r["params"] for r in rows)
    return {
        "model_id": key.model_id,
        "revision": key.revision,
        "method": "AlphaPruning (Lu et al., NeurIPS 2024): alpha mapped linearly into [1 - epsilon, 1 + epsilon]",
        "mapping": "block_wise" if per_block else "per_matrix",
        "target_sparsity": sparsity,
        "epsilon": epsilon,
        "mean_sparsity": sum(m["sparsity"] * m["params"] for m in matrices) / total,
        "clipped": clipped,
        "matrices": matrices,
    }


def alpha_sparsities(scores: list[float], params: list[int], target: float, epsilon: float) -> list[float]:
    """AlphaPruning's `ww_sparsity`: ratios (score − min)/(max − min) · 2ε + (1 − ε), scaled by
    Σ params · target / Σ params · ratio; then kept inside [0, 1] (clipping and scaling the rest again)."""
    lo, hi = min(scores), max(scores)
    ratios = [((s - lo) / (hi - lo) if hi > lo else 0.5) * 2 * epsilon + (1 - epsilon) for s in scores]
    fixed: dict[int, float] = {}
    for _ in range(len(ratios) + 1):
        free = [i for i in range(len(ratios)) if i not in fixed]
        want = target * sum(params) - sum(params[i] * v for i, v in fixed.items())
        weight = sum(params[i] * ratios[i] for i in free)
        scale = want / weight if weight > 0 else 0.0
        out = [fixed.get(i, ratios[i] * scale) for i in range(len(ratios))]
        over = [i for i in free if not 0.0 <= out[i] <= 1.0]
        if not over:
            return out
        for i in over:
            fixed[i] = min(1.0, max(0.0, out[i]))
    return out  # pragma: no cover - every pass fixes at least one


# -- low rank ----------------------------------------------------------------------------------------------------------
def lowrank_plan(
    db: str | Path, energy: float | None = None, budget: float | None = None, model: str | None = None
) -> dict:
    """Per matrix the rank that keeps `energy` of its Σσ² and the parameters a rank-r factorization saves; or, with
    `budget` (the fraction of the matrices' parameters to keep), the largest energy — one for every matrix — whose
    plan fits it."""
    if (energy is None) == (budget is None):
        raise StoreError("give --energy E or --budget F (one of them)")
    bound, name = (energy, "--energy") if energy is not None else (budget, "--budget")
    if not 0 < bound <= 1:
        raise StoreError(f"{name} must be in (0, 1], got {bound}")
    con = _connect(db)
    try:
        key = _one_model(con, model)
        params = {"model_id": key.model_id, "revision": key.revision}

        def plan_at(e: float) -> list[dict]:
            return _rows(
                con,
                "SELECT param_name, layer_index, block_type, rows, cols, rank, params, planned_params, factorize, "
                "saved FROM plan_lowrank($e) WHERE model_id = $model_id AND revision = $revision "
                "ORDER BY layer_index NULLS LAST, param_name",
                {**params, "e": e},
            )

        if energy is None:
            energy, rows = _fit_budget(plan_at, budget)
        else:
            rows = plan_at(energy)
    finally:
        close(con)
    total = sum(r["params"] for r in rows)
    planned = sum(r["planned_params"] for r in rows)
    return {
        "model_id": key.model_id,
        "revision": key.revision,
        "energy": energy,
        "budget": budget,
        "params": total,
        "planned_params": planned,
        "kept_fraction": planned / total if total else None,
        "matrices": rows,
    }


def _fit_budget(plan_at, budget: float) -> tuple[float, list[dict]]:  # noqa: ANN001 - energy -> rows
    """The largest energy (to 1e-4, by bisection: the planned parameters grow with it) whose plan keeps at most
    `budget` of the parameters."""

    def fraction(rows: list[dict]) -> float:
        total = sum(r["params"] for r in rows)
        return sum(r["planned_params"] for r in rows) / total if total else 0.0

    lo, hi = 0.0, 1.0
    best = (0.0, plan_at(0.0))
    top = plan_at(1.0)
    if fraction(top) <= budget:
        return 1.0, top
    while hi - lo > 1e-4:
        mid = (lo + hi) / 2
        rows = plan_at(mid)
        if fraction(rows) <= budget:
            lo, best = mid, (mid, rows)
        else:
            hi = mid
    return best


def lora_plan(db: str | Path, model: str | None = None, base: str | None = None) -> dict:
    """With a base: the ΔW plan that exists already (the lora_plan view): per block type and captured energy, the
    LoRA rank and the adapter's parameters."""
    con = _connect(db)
    try:
        key = _one_model(con, model)
        rows = _rows(
            con,
            "SELECT * FROM lora_plan WHERE model_id = $model_id AND revision = $revision "
            + ("AND base_model_id = $base " if base else "")
            + "ORDER BY base_model_id, block_rank(block_type), energy",
            {"model_id": key.model_id, "revision": key.revision, **({"base": base} if base else {})},
        )
    finally:
        close(con)
    if not rows:
        raise StoreError(f"{key.model_id}: no ΔW analysis stored against {base or 'a base'} (submit --base first)")
    return {"model_id": key.model_id, "revision": key.revision, "base": base, "blocks": rows}


def write_plan(plan: dict | str, out: str | Path, overwrite: bool = False) -> Path:
    """A plan to its file, whole or not at all, by the rules of every output file (files.prepare_output: a regular
    file only, replaced only with `overwrite`, a missing folder created): YAML text as it is; a dict as JSON, or
    its matrices as CSV when `out` ends in .csv."""
    try:
        target = prepare_output(out, overwrite)
    except OutputPathError as exc:
        raise StoreError(str(exc)) from None
    if isinstance(plan, str):
        return write_atomic(target, plan)
    if target.suffix == ".csv":
        rows = plan.get("matrices") or plan.get("blocks") or []
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
        return write_atomic(target, buf.getvalue())
    return write_atomic(target, json.dumps(plan, indent=1, default=str) + "\n")
