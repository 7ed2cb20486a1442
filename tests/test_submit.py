"""End to end on Ray: submit writes exactly one row per matrix / expert slice; resume; errors isolated."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from safetensors import safe_open

from tpa_dist.cli import main
from tpa_dist.jobs import Job, load_job
from tpa_dist.run.driver import submit
from tpa_dist.sources.synth.writer import MANIFEST

from .conftest import SEED_COLUMNS, write_safetensors

FOUR = ["tiny-llama", "tiny-mixtral", "tiny-gpt2", "tiny-bert"]


def _expected_matrices(folder) -> set[str]:
    """Matrix keys computed with the safetensors library, independently of the catalog."""
    keys = set()
    for shard in sorted(folder.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as fh:
            for name in fh.keys():
                shape = fh.get_slice(name).get_shape()
                if len(shape) == 2:
                    keys.add(name)
                elif len(shape) == 3 and "expert" in name:
                    keys.update(f"{name}[{e}]" for e in range(shape[0]))
    return keys


@pytest.fixture(scope="module")
def four_run(ray_session, synth_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    job = Job.create(
        models=tuple(str(synth_models[n]) for n in FOUR),
        db=str(out / "tpa.duckdb"),
        output_dir=str(out / "outputs"),
        progress=False,
        report=False,  # the report is test_report's; the per-model embedding files are written without it
    )
    return job, submit(job)


def test_every_matrix_exactly_once_and_planted_ranks(four_run, synth_models):
    job, summary = four_run
    assert summary.ok, summary.describe()
    con = duckdb.connect(job.db, read_only=True)
    try:
        for name in FOUR:
            folder = synth_models[name]
            rows = con.execute(
                "SELECT matrix_key, count(*) FROM matrix_analysis WHERE model_id = ? AND kind = 'matrix' "
                "GROUP BY matrix_key",
                [folder.name],
            ).fetchall()
            assert {k for k, _ in rows} == _expected_matrices(folder)
            assert all(c == 1 for _, c in rows)
            planted = json.loads((folder / MANIFEST).read_text())["planted_ranks"]
            assert planted
            for key, rank in planted.items():
                got = con.execute(
                    "SELECT actual_rank FROM matrix_analysis WHERE model_id = ? AND matrix_key = ?", [folder.name, key]
                ).fetchone()
                assert got == (rank,), key
        # every matrix has its whole spectrum, descending, length min(rows, cols)
        bad = con.execute("""SELECT count(*) FROM matrix_analysis m JOIN spectra s USING (model_id, revision,
                             settings_id, matrix_key) WHERE len(s.singular_values) != m.design_rank
                             OR s.singular_values[1] != m.spectral_norm""").fetchone()[0]
        assert bad == 0
        n_spectra, n_mat = con.execute(
            "SELECT (SELECT count(*) FROM spectra), (SELECT count(*) FROM matrix_analysis WHERE kind = 'matrix')"
        ).fetchone()
        assert n_spectra == n_mat
        # 1-D tensors: statistics only
        vec = con.execute(
            "SELECT count(*), count(actual_rank), count(mean) FROM matrix_analysis WHERE kind = 'vector'"
        ).fetchone()
        assert vec[0] > 0 and vec[1] == 0 and vec[2] == vec[0]
        run = con.execute("SELECT status, matrices_done, matrices_failed, versions FROM runs").fetchone()
        assert run[0] == "ok" and run[2] == 0 and "ray" in json.loads(run[3])
    finally:
        con.close()


def test_seed_csv_and_view(four_run):
    job, _ = four_run
    import csv

    with open(f"{job.output_dir}/transformer_matrix_analysis.csv") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        body = list(reader)
    assert header == SEED_COLUMNS
    for model in {r[1] for r in body}:
        layers = [r[4] for r in body if r[1] == model]
        numeric = [int(x) for x in layers if x != ""]
        assert numeric == sorted(numeric) and 0 in numeric
        assert layers[len(numeric) :] == [""] * (len(layers) - len(numeric))  # non-layer rows last


def test_resume_reuses_and_force_recomputes(four_run):
    job, first = four_run
    again = submit(job)
    assert again.ok and again.done == 0 and again.reused == first.total
    forced = submit(job.with_overrides(force=True, models=job.models[:1], embedding=False))
    assert forced.done == forced.total > 0
    con = duckdb.connect(job.db, read_only=True)
    dupes = con.execute(
        "SELECT count(*) - count(DISTINCT (model_id, revision, settings_id, matrix_key)) FROM matrix_analysis"
    ).fetchone()[0]
    con.close()
    assert dupes == 0


def test_bad_tensor_and_bad_model_do_not_lose_the_rest(ray_session, synth_models, tmp_path):
    good = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    nan = good.copy()
    nan[2, 3] = np.nan
    model = tmp_path / "mixed"
    model.mkdir()
    write_safetensors(
        model / "model.safetensors",
        {
            "model.layers.0.self_attn.q_proj.weight": ("F32", good, (16, 8)),
            "model.layers.0.self_attn.k_proj.weight": ("F32", nan, (16, 8)),
            "model.layers.0.self_attn.v_proj.weight": ("F32", b"", (0, 8)),
        },
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"\xff" * 4)
    job = Job.create(
        report=False,
        models=(str(model), str(broken), str(synth_models["tiny-gpt2"])),
        db=str(tmp_path / "t.duckdb"),
        output_dir=str(tmp_path / "out"),
        progress=False,
        embedding=False,
    )
    summary = submit(job)
    assert not summary.ok
    text = summary.describe()
    assert "k_proj.weight: contains NaN or Inf" in text and "zero-sized dimension" in text
    assert "broken" in text and "too short" in text
    con = duckdb.connect(job.db, read_only=True)
    rows = dict(con.execute("SELECT matrix_key, status FROM matrix_analysis WHERE model_id = 'mixed'").fetchall())
    assert rows == {
        "model.layers.0.self_attn.q_proj.weight": "ok",
        "model.layers.0.self_attn.k_proj.weight": "error",
        "model.layers.0.self_attn.v_proj.weight": "error",
    }
    gpt2 = con.execute("SELECT count(*) FROM matrix_analysis WHERE model_id = 'tiny-gpt2' AND status = 'ok'").fetchone()
    assert gpt2[0] == 30
    assert con.execute("SELECT status FROM models WHERE model_id = ?", [str(broken)]).fetchone() == ("error",)
    con.close()


def test_cli_submit_sql_inspect_synth(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    t0 = time.monotonic()
    res = runner.invoke(main, ["submit", "--models", "synth:tiny-qwen3,synth:tiny-moe-fused", "--no-progress"])
    took = time.monotonic() - t0
    assert res.exit_code == 0, res.output
    assert "0 failed" in res.output
    # the command called from a program: its start-up is its own, not the age of the process that called it
    whole = float(re.search(r"whole run ([\d.]+)s", res.output).group(1))
    assert whole <= took + 0.1, res.output  # (the whole run counts its start-up)
    res = runner.invoke(
        main,
        [
            "sql",
            "--db",
            "data/tpa.duckdb",
            "--format",
            "json",
            "SELECT matrix_key, actual_rank FROM matrix_analysis WHERE actual_rank < design_rank ORDER BY matrix_key",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == [
        {"matrix_key": "model.layers.1.mlp.down_proj.weight", "actual_rank": 7},
        {"matrix_key": "model.layers.1.mlp.experts.down_proj[1]", "actual_rank": 5},
        {"matrix_key": "model.layers.1.self_attn.v_proj.weight", "actual_rank": 0},
    ]
    res = runner.invoke(main, ["sql", "--db", "data/tpa.duckdb", "SELECT count(*) AS n FROM spectra"])
    assert res.exit_code == 0 and "(1 row)" in res.output
    res = runner.invoke(main, ["sql", "--db", "data/nope.duckdb", "SELECT 1"])
    assert res.exit_code == 2 and "no such database" in res.output
    res = runner.invoke(main, ["report", "--db", "data/nope.duckdb", "--out", "nope-report"])
    assert res.exit_code == 2 and "no such database" in res.output
    assert not (tmp_path / "nope-report").exists()  # a report that cannot run leaves no folder behind
    res = runner.invoke(main, ["inspect", "synth:tiny-mixtral"])
    assert res.exit_code == 0 and "block_sparse_moe.experts.3.w2.weight" in res.output and "router" in res.output
    res = runner.invoke(main, ["synth", "tiny-gpt2", "--out", "g2"])
    assert res.exit_code == 0 and (tmp_path / "g2" / "model.safetensors").exists()


def test_job_file(tmp_path):
    job = load_job("jobs/smoke.toml")
    assert "synth:tiny-llama" in job.models and job.workers.cpu_only and job.workers.threads_per_worker == 1
    pair = load_job("jobs/qwen3-vs-llama2.toml")
    assert pair.models == ("Qwen/Qwen3-4B@main", "meta-llama/Llama-2-7b-hf@main")
    bad = tmp_path / "bad.toml"
    bad.write_text('models = ["synth:tiny-llama"]\n[workers]\nnum_wrokers = 2\n')
    from tpa_dist.errors import JobFileError

    with pytest.raises(JobFileError, match=r"unknown setting \[workers\].num_wrokers"):
        load_job(bad)
    assert math.isclose(job.with_overrides(sparsity_threshold=1e-6).analysis.sparsity_threshold, 1e-6)


def test_embedding_tables_and_files(four_run):
    job, _ = four_run
    con = duckdb.connect(job.db, read_only=True)
    try:
        choice = con.execute(
            "SELECT model_id, param_name, chosen_k, rule FROM embedding_choice ORDER BY 1, 2"
        ).fetchall()
        assert {(m, t) for m, t, _, _ in choice} == {
            ("tiny-bert", "bert.embeddings.word_embeddings.weight"),
            ("tiny-gpt2", "wte.weight"),
            ("tiny-llama", "lm_head.weight"),
            ("tiny-llama", "model.embed_tokens.weight"),
            ("tiny-mixtral", "lm_head.weight"),
            ("tiny-mixtral", "model.embed_tokens.weight"),
        }
        assert all(rule == "max_f" for *_, rule in choice)
        for model, tensor, k, _ in choice:
            best = con.execute(
                "SELECT k FROM embedding_sweep WHERE model_id = ? AND param_name = ? ORDER BY f_stat DESC LIMIT 1",
                [model, tensor],
            ).fetchone()[0]
            assert best == k
            n_clusters, size = con.execute(
                "SELECT count(*), sum(size) FROM embedding_clusters WHERE model_id = ? AND param_name = ?",
                [model, tensor],
            ).fetchone()
            rows = con.execute(
                "SELECT count(*) FROM embedding_assignments WHERE model_id = ? AND param_name = ? AND cluster IS NOT NULL",
                [model, tensor],
            ).fetchone()[0]
            assert n_clusters == k and size == rows > 0
    finally:
        con.close()
    for model in FOUR:
        folder = Path(job.output_dir) / model
        png = (folder / "anova_curve.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        results = json.loads((folder / "clustering_results.json").read_text())
        assert results[0]["chosen_k"] >= 2
        assert (folder / "cluster_representatives.json").exists()
        assert (folder / f"{model}_embedding.csv").read_text().startswith("tensor,token_id,token,cluster")
