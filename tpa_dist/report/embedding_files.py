"""The per-model embedding files of a run's output directory — clustering_results.json, cluster_representatives.json,
<model>_embedding.csv and anova_curve.png (the seed's) — made from the stored rows, each written whole or not at all,
in a folder named after the model (never a path: files.name_for_path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tpa_dist.report.drawing import Figure

if TYPE_CHECKING:  # (the analysis module brings scipy.linalg: 0.2 s that a run without embeddings never needs)
    from tpa_dist.compute.embedding_analysis import EmbeddingResult


def stored_results(db: str | Path, model_id: str, revision: str) -> list[EmbeddingResult]:
    """The embedding analyses of one (model, revision) as the database holds them: what the per-model files and
    figure are made from, so that they always match the stored rows (and are rewritten from them when missing)."""
    from tpa_dist.compute.embedding_analysis import EmbeddingResult
    from tpa_dist.db.sqlfiles import sql_text
    from tpa_dist.db.store import connect_db

    con = connect_db(db, read_only=True)
    try:
        key = {"model_id": model_id, "revision": revision}
        cur = con.execute(sql_text("outputs/embedding_choice.sql"), key)
        names = [d[0] for d in cur.description]
        out = []
        for choice in [dict(zip(names, r)) for r in cur.fetchall()]:
            one = {**key, "param_name": choice["param_name"]}

            def rows(name: str, params: dict = one) -> list[dict]:
                c = con.execute(sql_text(f"outputs/{name}.sql"), params)
                cols = [d[0] for d in c.description]
                return [dict(zip(cols, r)) for r in c.fetchall()]

            sweep = rows("embedding_sweep")
            clusters = [
                {
                    **c,
                    "ids": list(c.pop("representative_ids") or []),
                    "representatives": list(c["representatives"] or []),
                }
                for c in rows("embedding_clusters")
            ]
            tokens = rows("embedding_assignments")
            labels = [(t["token_id"], t["cluster"]) for t in tokens if t["cluster"] is not None]
            out.append(
                EmbeddingResult(
                    param_name=choice["param_name"],
                    rows=choice["rows"],
                    cols=choice["cols"],
                    sweep=sweep,
                    chosen_k=choice["chosen_k"],
                    rule=choice["rule"],
                    elbow_k=choice["elbow_k"],
                    clusters=clusters,
                    labels=np.array([c for _, c in labels], dtype=np.int64),
                    tokens=[t["token"] for t in tokens],
                    seconds=choice["seconds"],
                    row_ids=np.array([i for i, _ in labels], dtype=np.int64),
                    excluded={t["token_id"]: t["excluded"] for t in tokens if t["excluded"] is not None},
                    silhouette_k=choice["silhouette_k"],
                    degenerate=choice["degenerate"],
                    include_special=bool(choice["include_special"]),
                    metric=choice["metric"] or "euclidean",
                    recommended_k=choice["recommended_k"],
                    gaps=rows("embedding_gap"),
                    verdict=choice["verdict"],
                    verdict_words=choice["verdict_words"],
                    gap_subsamples=choice["gap_subsamples"] or 0,
                    classes=[t["token_class"] for t in tokens],
                    projection=[(p["token_id"], p["pc1"], p["pc2"]) for p in rows("embedding_projection")],
                    phases=json.loads(choice["phase_seconds"]) if choice["phase_seconds"] else {},
                )
            )
        return out
    finally:
        con.close()


def model_folder(out_dir: Path, model_id: str) -> tuple[Path, str]:
    """The per-model output folder and the name its files carry (never a path: files.name_for_path)."""
    from tpa_dist.files import name_for_path

    name = name_for_path(model_id)
    return out_dir / name, name


def model_files(out_dir: Path, model_id: str) -> list[Path]:
    """The per-model files a run with embeddings leaves (anova_curve.png included)."""
    folder, name = model_folder(out_dir, model_id)
    names = ["clustering_results.json", "cluster_representatives.json", f"{name}_embedding.csv", "anova_curve.png"]
    return [folder / n for n in names] + [folder / "embedding_projection.png"]


def anova_figure(out_dir: Path, model_id: str, results: list[EmbeddingResult]) -> Figure:
    """The seed's anova_curve.png (F, silhouette and inertia against k), to be drawn with the report's figures."""
    return Figure(model_folder(out_dir, model_id)[0] / "anova_curve.png", _draw_anova, (model_id, results))


def projection_figure(out_dir: Path, model_id: str, results: list[EmbeddingResult]) -> Figure:
    """embedding_projection.png: the rows on their top two principal axes, by cluster and by token class."""
    return Figure(
        model_folder(out_dir, model_id)[0] / "embedding_projection.png", _draw_projection, (model_id, results)
    )


def _draw_anova(model_id: str, results: list[EmbeddingResult]) -> bytes:
    """anova_curve.png's bytes, where figures are drawn (matplotlib is imported there, never in the run itself)."""
    from tpa_dist.report.plots import anova_curve

    return anova_curve(model_id, results)


def _draw_projection(model_id: str, results: list[EmbeddingResult]) -> bytes:
    """embedding_projection.png's bytes, where figures are drawn."""
    from tpa_dist.report.plots import embedding_projection

    return embedding_projection(model_id, results)


def write_files(out_dir: Path, model_id: str, results: list[EmbeddingResult]) -> list[Path]:
    """The seed's data files: clustering_results.json, cluster_representatives.json, <model>_embedding.csv (in a
    folder per model; its anova_curve.png comes from anova_figure), each written whole or not at all."""
    import csv
    import io

    from tpa_dist.compute.embedding_analysis import _public
    from tpa_dist.files import write_atomic

    folder, name = model_folder(out_dir, model_id)
    folder.mkdir(parents=True, exist_ok=True)
    summary = [
        {
            "tensor": r.param_name,
            "rows": r.rows,
            "vocab_rows": r.vocab_rows,
            "cols": r.cols,
            "excluded": {
                reason: sum(1 for v in r.excluded.values() if v == reason)
                for reason in sorted(set(r.excluded.values()))
            },
            "chosen_k": r.chosen_k,
            "rule": r.rule,
            "metric": r.metric,
            "recommended_k": r.recommended_k,
            "verdict": r.verdict,
            "verdict_words": r.verdict_words,
            "gap_subsamples": r.gap_subsamples,
            "gap": r.gaps,
            "phase_seconds": r.phases,
            "silhouette_k": r.silhouette_k,
            "elbow_k": r.elbow_k,
            "degenerate": r.degenerate,
            "sweep": [_public(s) for s in r.sweep],
            "seconds": r.seconds,
        }
        for r in results
    ]
    write_atomic(folder / "clustering_results.json", json.dumps(summary, indent=1))
    reps = {
        r.param_name: [{k: c[k] for k in ("cluster", "size", "centroid_norm", "representatives")} for c in r.clusters]
        for r in results
    }
    write_atomic(folder / "cluster_representatives.json", json.dumps(reps, indent=1, ensure_ascii=False))
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(["tensor", "token_id", "token", "cluster", "excluded", "token_class"])
    for r in results:
        cluster = dict(zip(r.row_ids.tolist(), r.labels.tolist()))
        classes = r.classes or [None] * r.vocab_rows
        writer.writerows(
            (r.param_name, i, r.tokens[i], cluster.get(i, ""), r.excluded.get(i, ""), classes[i] or "")
            for i in range(r.vocab_rows)
        )
    csv_path = write_atomic(folder / f"{name}_embedding.csv", buf.getvalue())
    return [folder / "clustering_results.json", folder / "cluster_representatives.json", csv_path]
