"""What fine-tuning changed: ΔW spectra, planted ranks and updates, unchanged matrices, intruder dimensions and
principal angles — each checked against float64 numpy/scipy on the stored values."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
import scipy.linalg as sl
from safetensors.numpy import load_file

from tpa_dist.compute.metrics import actual_rank
from tpa_dist.jobs import Job, load_job
from tpa_dist.run.driver import submit
from tpa_dist.sources.synth.derived import FT_PLAN, LORA_RANK
from tpa_dist.sources.synth.derived import write_any as write_synthetic

from .conftest import write_safetensors


def _weights(folder) -> dict[str, np.ndarray]:
    out = {}
    for shard in sorted(folder.glob("*.safetensors")):
        out.update({k: v.astype(np.float64) for k, v in load_file(str(shard)).items()})
    return out


def _reference(tuned: np.ndarray, base: np.ndarray, r: int = 16, k: int = 10, eps: float = 0.5) -> dict:
    """numpy's float64 SVDs: σ(ΔW), principal angles of the smaller side's top-r subspaces, intruders."""
    delta = tuned - base
    side = 1 if tuned.shape[0] >= tuned.shape[1] else 0  # right vectors of a tall matrix, left of a wide one

    def vectors(w: np.ndarray) -> np.ndarray:
        u, _, vh = np.linalg.svd(w, full_matrices=False)
        return vh.T if side else u

    vt, vb = vectors(tuned), vectors(base)
    n = min(tuned.shape)
    angles = np.sort(sl.subspace_angles(vb[:, : min(r, n)], vt[:, : min(r, n)]))
    similarity = np.abs(vt[:, : min(k, n)].T @ vb).max(axis=1)
    sv = sl.svdvals(delta)
    return {
        "sv": sv,
        "angles": angles,
        "intruders": int((similarity < eps).sum()),
        "rank": actual_rank(sv, *tuned.shape),
        "relative": np.linalg.norm(delta) / np.linalg.norm(base),
        "spectral": sv[0] / sl.svdvals(base)[0],
    }


def _rows(db: str, model: str) -> dict[str, dict]:
    con = duckdb.connect(db, read_only=True)
    cur = con.execute(
        "SELECT d.*, s.singular_values FROM delta_analysis d LEFT JOIN delta_spectra s "
        "USING (model_id, revision, base_model_id, base_revision, settings_id, matrix_key) WHERE d.model_id = ?",
        [model],
    )
    cols = [c[0] for c in cur.description]
    out = {r[cols.index("matrix_key")]: dict(zip(cols, r)) for r in cur.fetchall()}
    con.close()
    return out


@pytest.fixture(scope="module")
def finetunes(ray_session, tmp_path_factory):
    work = tmp_path_factory.mktemp("delta")
    job = Job.create(
        models=("synth:tiny-llama-ft", "synth:tiny-llama-lora"),
        base="synth:tiny-llama",
        db=str(work / "d.duckdb"),
        output_dir=str(work / "out"),
        progress=False,
        embedding=False,
    )
    summary = submit(job)
    assert summary.ok, summary.describe()
    return job, summary, work


def test_planted_ranks_updates_and_unchanged_matrices(finetunes, tmp_path):
    job, summary, _ = finetunes
    base = _weights(write_synthetic("tiny-llama", tmp_path / "b"))
    tuned = _weights(write_synthetic("tiny-llama-ft", tmp_path / "t"))
    rows = _rows(job.db, "synth:tiny-llama-ft")
    assert set(rows) == {k for k, w in base.items() if w.ndim == 2}
    for key, row in rows.items():
        ref = _reference(tuned[key], base[key])
        assert row["status"] == "ok", row["error"]
        if key in FT_PLAN:
            assert row["actual_rank"] == ref["rank"] == FT_PLAN[key], key
            assert row["energy_rank_99"] == FT_PLAN[key]
            assert row["relative_update"] == pytest.approx(ref["relative"], rel=1e-9)
            assert row["spectral_update"] == pytest.approx(ref["spectral"], rel=1e-9)
            sv = np.asarray(row["singular_values"])
            np.testing.assert_allclose(sv[: FT_PLAN[key]], ref["sv"][: FT_PLAN[key]], rtol=1e-9)
            np.testing.assert_allclose(sv, ref["sv"], atol=1e-6 * ref["sv"][0])
        else:  # stored bit-identical: ΔW = 0
            assert row["actual_rank"] == 0 and row["frobenius_norm"] == 0 and row["relative_update"] == 0, key
            assert row["intruders"] == 0
        np.testing.assert_allclose(row["principal_angles"], ref["angles"], atol=1e-6)
        assert row["intruders"] == ref["intruders"], key


def test_lora_update_adds_intruder_dimensions(finetunes, tmp_path):
    job, _, _ = finetunes
    base = _weights(write_synthetic("tiny-llama", tmp_path / "b"))
    tuned = _weights(write_synthetic("tiny-llama-lora", tmp_path / "t"))
    rows = _rows(job.db, "synth:tiny-llama-lora")
    targets = [k for k in rows if ".q_proj." in k or ".v_proj." in k]
    assert len(targets) == 4
    for key in targets:
        ref = _reference(tuned[key], base[key])
        row = rows[key]
        assert row["actual_rank"] == LORA_RANK and row["intruders"] == ref["intruders"] >= LORA_RANK, key
        assert row["max_principal_angle"] == pytest.approx(ref["angles"].max(), abs=1e-6)
    others = [row for k, row in rows.items() if k not in targets]
    assert others and all(r["intruders"] == 0 and r["actual_rank"] == 0 for r in others)


def test_lora_plan_view(finetunes):
    job, _, _ = finetunes
    con = duckdb.connect(job.db, read_only=True)
    plan = con.execute("SELECT * FROM lora_plan WHERE model_id = 'synth:tiny-llama-ft' AND energy = 0.9").df()
    con.close()
    q = plan[plan.block_type == "q_proj"].iloc[0]
    # one changed q_proj of rank 2 and one unchanged: per-matrix ranks 2 + 0, uniform rank 2 for both
    assert q.uniform_rank == 2 and q.per_matrix_params == 2 * (64 + 64) and q.uniform_params == 2 * 2 * (64 + 64)


def test_resumed_pairs_are_not_recomputed(finetunes):
    job, first, _ = finetunes
    again = submit(job.with_overrides(report=False))  # the report of the same rows was written by the first
    assert again.ok and again.done == 0 and again.reused == first.total


def test_spectra_only_pairs_take_the_stored_base_norms(ray_session, tmp_path):
    """Subspace metrics off and the base analyzed before: each pair's pass accumulates ΔᵀΔ alone, ‖W_b‖_F and ‖W_b‖₂
    come with the task from the base's stored rows, and the updates still equal numpy's on the stored values."""
    from tpa_dist.db.store import Store
    from tpa_dist.run.planning import plan_job

    common = dict(db=str(tmp_path / "d.duckdb"), output_dir=str(tmp_path / "out"), progress=False, embedding=False)
    assert submit(Job.create(report=False, models=("synth:tiny-llama",), **common)).ok
    job = Job.create(report=False, models=("synth:tiny-llama-ft",), base="synth:tiny-llama", subspace=False, **common)
    store = Store(job.db)
    try:
        planner = plan_job(job, store, run_id="plan-only")
    finally:
        store.close()
    assert len(planner.delta_tasks) == 16
    assert all(t.base_norms is not None and t.grams == 1 for t in planner.delta_tasks)
    assert submit(job).ok
    base = _weights(write_synthetic("tiny-llama", tmp_path / "b"))
    tuned = _weights(write_synthetic("tiny-llama-ft", tmp_path / "t"))
    con = duckdb.connect(job.db, read_only=True)
    query = "SELECT matrix_key, frobenius_norm FROM matrix_analysis WHERE kind = 'matrix' AND model_id = ?"
    stored = dict(con.execute(query, ["synth:tiny-llama"]).fetchall())
    con.close()
    rows = _rows(job.db, "synth:tiny-llama-ft")
    for key, row in rows.items():
        assert row["base_frobenius_norm"] == stored[key] and row["principal_angles"] is None, key
        if key in FT_PLAN:
            ref = _reference(tuned[key], base[key])
            assert row["relative_update"] == pytest.approx(ref["relative"], rel=1e-9)
            assert row["spectral_update"] == pytest.approx(ref["spectral"], rel=1e-9)
            assert row["actual_rank"] == FT_PLAN[key]


def test_unmatched_tensors_are_listed_not_errors(ray_session, tmp_path):
    rng = np.random.default_rng(0)
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    base.mkdir()
    tuned.mkdir()
    w = rng.standard_normal((16, 8)).astype(np.float32)
    write_safetensors(
        base / "model.safetensors",
        {
            "model.embed_tokens.weight": ("F32", rng.standard_normal((40, 8)).astype(np.float32), (40, 8)),
            "model.layers.0.mlp.up_proj.weight": ("F32", w, (16, 8)),
            "model.layers.0.mlp.gate_proj.weight": ("F32", w, (16, 8)),
        },
    )
    write_safetensors(
        tuned / "model.safetensors",
        {
            "model.embed_tokens.weight": ("F32", rng.standard_normal((44, 8)).astype(np.float32), (44, 8)),  # resized
            "model.layers.0.mlp.up_proj.weight": ("F32", w + 1.0, (16, 8)),
            "model.layers.0.mlp.new_proj.weight": ("F32", w, (16, 8)),
        },
    )
    job = Job.create(
        report=False,
        models=(str(tuned),),
        base=str(base),
        db=str(tmp_path / "u.duckdb"),
        output_dir=str(tmp_path / "out"),
        progress=False,
        embedding=False,
    )
    summary = submit(job)
    assert summary.ok, summary.describe()
    rows = _rows(job.db, "tuned")
    assert rows["model.layers.0.mlp.up_proj.weight"]["status"] == "ok"
    reasons = {k: (r["status"], r["error"]) for k, r in rows.items() if r["status"] != "ok"}
    assert reasons == {
        "model.embed_tokens.weight": (
            "skipped",
            "tensor model.embed_tokens.weight: shapes differ: tuned (44, 8), base (40, 8)",
        ),
        "model.layers.0.mlp.new_proj.weight": (
            "skipped",
            "tensor model.layers.0.mlp.new_proj.weight: only in the tuned model",
        ),
        "model.layers.0.mlp.gate_proj.weight": (
            "skipped",
            "tensor model.layers.0.mlp.gate_proj.weight: only in the base model",
        ),
    }


def test_checkpoints_over_training_with_base_previous(ray_session, tmp_path):
    steps = tuple(f"step{i}=synth:tiny-llama-step{i}" for i in range(1, 5))
    job = Job.create(
        models=steps,
        base="previous",
        db=str(tmp_path / "t.duckdb"),
        output_dir=str(tmp_path / "o"),
        progress=False,
        embedding=False,
    )
    summary = submit(job)
    assert summary.ok, summary.describe()
    con = duckdb.connect(job.db, read_only=True)
    alphas = con.execute(
        "SELECT model_id, median(alpha) FROM matrix_analysis WHERE kind = 'matrix' AND layer_index IS NOT NULL "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    pairs = con.execute("SELECT DISTINCT model_id, base_model_id FROM delta_analysis ORDER BY 1").fetchall()
    con.close()
    values = [a for _, a in alphas]
    assert [m for m, _ in alphas] == ["step1", "step2", "step3", "step4"]
    assert all(b < a for a, b in zip(values, values[1:])), values  # alpha falls monotonically over training
    assert pairs == [("step2", "step1"), ("step3", "step2"), ("step4", "step3")]
    from tpa_dist.report import hover

    points = hover.read((tmp_path / "o" / "20_over_training.png").read_bytes())["p"]
    ticks = {text.split(" · ")[-2] for _, _, text in points}  # "... · checkpoint stepN · alpha v": named ticks
    assert {f"checkpoint step{i}" for i in range(1, 5)} <= ticks, sorted(ticks)[:8]


def test_job_file_and_flag_bases(tmp_path):
    path = tmp_path / "j.toml"
    path.write_text('models = [{ id = "synth:tiny-llama-ft", base = "synth:tiny-llama" }, "synth:tiny-gpt2"]\n')
    job = load_job(path)
    assert job.base_of("synth:tiny-llama-ft") == "synth:tiny-llama" and job.base_of("synth:tiny-gpt2") is None
    prev = Job.create(models=("a", "b", "c"), base="previous")
    assert [prev.base_of(m) for m in prev.models] == [None, "a", "b"]
    assert json.loads(json.dumps(prev.bases)) == []


def test_report_has_the_delta_sections(finetunes):
    job, _, work = finetunes
    md = (work / "out" / "report.md").read_text(encoding="utf-8")
    for title in (
        "What fine-tuning changed (ΔW against the base)",
        "Which layers moved: relative update by layer",
        "LoRA plan: the adapter rank the update needs",
    ):
        assert f"## {title}" in md
    summary = md.split("## What fine-tuning changed", 1)[1].split("\n## ", 1)[0]
    assert "synth:tiny-llama-ft" in summary and "synth:tiny-llama-lora" in summary and "(no rows)" not in summary
    assert (work / "out" / "18_delta_by_layer.png").is_file()


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    return np.linalg.qr(rng.standard_normal((rows, cols)))[0]


@pytest.mark.parametrize("case", ["fine-tune", "lora", "unrelated"])
def test_subspace_metrics_from_the_top_vectors_equal_numpy_full_svds(tmp_path, monkeypatch, case):
    """Matrices large enough that the singular vectors come from LAPACK's MRRR for the top ones only: the principal
    angles, each top tuned vector's largest |cos| with all base vectors, and the intruder count equal numpy's full
    SVDs. A fine-tune's tuned vectors are decided by the base's top vectors and the norm bound; LoRA intruders and
    an unrelated pair (vectors spread over many base vectors) take the full decomposition of W_b."""
    from tpa_dist.checkpoint.catalog import open_model
    from tpa_dist.checkpoint.reader import Region
    from tpa_dist.compute import delta as delta_mod
    from tpa_dist.settings import DeltaSettings

    rng = np.random.default_rng(11)
    m, n = 700, 300  # n > 4 · BASE_TOP: the base's top vectors alone first, as for real layers
    base = (_orthonormal(rng, m, n) * (10.0 * np.arange(1, n + 1) ** -0.6)) @ _orthonormal(rng, n, n).T
    noise = rng.standard_normal((m, n)) * 0.01 * np.linalg.norm(base) / np.sqrt(m * n)
    tuned = {
        "fine-tune": base + noise,
        "lora": base + noise + (_orthonormal(rng, m, 3) * [30.0, 25.0, 20.0]) @ _orthonormal(rng, n, 3).T,
        "unrelated": rng.standard_normal((m, n)),
    }[case]
    regions = {}
    for name, w in (("tuned", tuned), ("base", base)):
        folder = tmp_path / name
        folder.mkdir()
        write_safetensors(folder / "model.safetensors", {"w": ("F32", w.astype(np.float32), (m, n))})
        (info,) = open_model(str(folder)).tensors()
        regions[name] = Region("w", info.path, info.start, info.dtype, m, n)
    full, whole = [], delta_mod._eigh_desc
    monkeypatch.setattr(delta_mod, "_eigh_desc", lambda g: full.append(len(g)) or whole(g))
    res = delta_mod.delta_spectrum(regions["tuned"], regions["base"], DeltaSettings(), 1 << 20)
    t64, b64 = tuned.astype(np.float32).astype(np.float64), base.astype(np.float32).astype(np.float64)
    ref = _reference(t64, b64)
    vt = np.linalg.svd(t64, full_matrices=False)[2].T
    vb = np.linalg.svd(b64, full_matrices=False)[2].T
    similarity = np.abs(vt[:, :10].T @ vb).max(axis=1)
    assert np.allclose(res.principal_angles, ref["angles"], atol=1e-7)
    assert np.allclose(res.intruder_similarity, similarity, atol=1e-7)
    assert res.intruders == ref["intruders"] == {"fine-tune": 0, "lora": 3, "unrelated": 10}[case]
    assert full == ([] if case == "fine-tune" else [n])  # the full decomposition only where the bound cannot decide
