"""Fault isolation: hostile models in one submit beside a good one. Whatever one file, tensor or tokenizer does,
the good model's rows equal a standalone run, nothing hangs, the run's record tells the truth."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import duckdb
import numpy as np
import pytest
import scipy.linalg as sl

from tpa_dist.jobs import Job
from tpa_dist.run.driver import submit

from .conftest import write_safetensors

#: columns that legitimately differ between two runs of the same model
VOLATILE = {"run_id", "created_at", "seconds", "node", "worker", "revision", "model_id"}


def _raw_header(path: Path, header_json: str, data: bytes = b"") -> None:
    raw = header_json.encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def _embedding_model(folder: Path, tokenizer: str | None = None, fifo: bool = False) -> Path:
    """A tiny Llama-named model with a token embedding, config.json and (optionally) a tokenizer.json."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(folder.name))
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "vocab_size": 48}))
    write_safetensors(
        folder / "model.safetensors",
        {
            "model.embed_tokens.weight": ("F32", rng.standard_normal((48, 8)).astype(np.float32), (48, 8)),
            "model.layers.0.mlp.down_proj.weight": ("F32", rng.standard_normal((8, 24)).astype(np.float32), (8, 24)),
        },
    )
    if fifo:
        os.mkfifo(folder / "tokenizer.json")
    elif tokenizer is not None:
        (folder / "tokenizer.json").write_text(tokenizer)
    return folder


def _hostile(root: Path) -> dict[str, Path]:
    """name -> folder of a model that attacks one part of the pipeline."""
    rng = np.random.default_rng(7)
    out: dict[str, Path] = {}

    def folder(name: str) -> Path:
        out[name] = root / name
        out[name].mkdir(parents=True)
        return out[name]

    _raw_header(
        folder("surrogate") / "model.safetensors",
        '{"bad\\ud800.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}',
        b"\0" * 16,
    )
    _raw_header(
        folder("huge-dim") / "model.safetensors",
        '{"w": {"dtype": "F32", "shape": [0, 18446744073709551616], "data_offsets": [0, 0]}}',
    )
    good = rng.standard_normal((8, 4)).astype(np.float32)
    for name, make in (("config-dir", lambda p: p.mkdir()), ("config-fifo", os.mkfifo)):
        f = folder(name)
        write_safetensors(f / "model.safetensors", {"model.layers.0.mlp.up_proj.weight": ("F32", good, (8, 4))})
        make(f / "config.json")
    f = folder("index-fifo")
    write_safetensors(f / "model-00001-of-00001.safetensors", {"a.weight": ("F32", good, (8, 4))})
    os.mkfifo(f / "model.safetensors.index.json")
    # GPTQ: 1-D scales (a planning crash before), g_idx with -5 (a worker crash before)
    q = rng.integers(0, 2**31, (4, 16), dtype=np.int64).astype(np.int32)
    zeros = np.zeros((2, 2), np.int32)
    f = folder("gptq-1d-scales")
    (f / "config.json").write_text(json.dumps({"quantization_config": {"bits": 4}}))
    write_safetensors(
        f / "model.safetensors",
        {
            "model.layers.0.self_attn.q_proj.qweight": ("I32", q, (4, 16)),
            "model.layers.0.self_attn.q_proj.qzeros": ("I32", zeros, (2, 2)),
            "model.layers.0.self_attn.q_proj.scales": ("F16", np.ones(16, np.float16), (16,)),
            "model.layers.0.self_attn.k_proj.weight": ("F32", good, (8, 4)),
        },
    )
    f = folder("gptq-bad-gidx")
    (f / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "gptq", "bits": 4}}))
    write_safetensors(
        f / "model.safetensors",
        {
            "model.layers.0.self_attn.q_proj.qweight": ("I32", q, (4, 16)),
            "model.layers.0.self_attn.q_proj.qzeros": ("I32", zeros, (2, 2)),
            "model.layers.0.self_attn.q_proj.scales": ("F16", np.ones((2, 16), np.float16), (2, 16)),
            "model.layers.0.self_attn.q_proj.g_idx": ("I32", np.full(32, -5, np.int32), (32,)),
            "model.layers.0.self_attn.k_proj.weight": ("F32", good, (8, 4)),
        },
    )
    # a tensor stored in two shards; the index names the second
    f = folder("dup-shards")
    write_safetensors(
        f / "model-00001-of-00002.safetensors",
        {"x.weight": ("F32", good * 0, (8, 4)), "y.weight": ("F32", good, (8, 4))},
    )
    write_safetensors(f / "model-00002-of-00002.safetensors", {"x.weight": ("F32", good, (8, 4))})
    (f / "model.safetensors.index.json").write_text(
        json.dumps(
            {
                "weight_map": {
                    "x.weight": "model-00002-of-00002.safetensors",
                    "y.weight": "model-00001-of-00002.safetensors",
                }
            }
        )
    )
    # tokenizers that used to crash the run after the analysis
    vocab = {f"t{i}": i for i in range(48)}
    model = {"type": "BPE", "vocab": vocab, "merges": []}
    out["tok-added-5"] = _embedding_model(root / "tok-added-5", json.dumps({"model": model, "added_tokens": 5}))
    out["tok-deep"] = _embedding_model(root / "tok-deep", "[" * 100_000 + "]" * 100_000)
    out["tok-fifo"] = _embedding_model(root / "tok-fifo", fifo=True)
    return out


def _rows(db: str, model_id: str) -> list[dict]:
    con = duckdb.connect(db, read_only=True)
    cur = con.execute("SELECT * FROM matrix_analysis WHERE model_id = ? ORDER BY matrix_key", [model_id])
    cols = [d[0] for d in cur.description]
    rows = [{c: v for c, v in zip(cols, r) if c not in VOLATILE} for r in cur.fetchall()]
    con.close()
    return rows


def test_hostile_models_never_cost_the_good_one(ray_session, synth_models, tmp_path):
    hostile = _hostile(tmp_path / "hostile")
    good = str(synth_models["tiny-gpt2"])
    common = dict(progress=False, k_min=2, k_max=4)
    alone = submit(
        Job.create(
            models=(good,), db=str(tmp_path / "alone.duckdb"), output_dir=str(tmp_path / "o1"), report=False, **common
        )
    )
    assert alone.ok, alone.describe()
    models = tuple(str(p) for p in hostile.values()) + (good,)
    job = Job.create(models=models, db=str(tmp_path / "mixed.duckdb"), output_dir=str(tmp_path / "o2"), **common)
    summary = submit(job)
    text = summary.describe()
    assert not summary.ok
    assert _rows(job.db, "tiny-gpt2") == _rows(str(tmp_path / "alone.duckdb"), "tiny-gpt2")

    expect_failed = {  # model folder -> what its one failure says
        "surrogate": "is not valid Unicode",
        "huge-dim": "has a dimension over 2^63 - 1",
        "index-fifo": "FIFO",
        "gptq-bad-gidx": "g_idx holds group indices outside",
    }
    for name, words in expect_failed.items():
        mine = [f for f in summary.failures if name in f or (name == "gptq-bad-gidx" and "g_idx" in f)]
        assert len(mine) == 1 and words in mine[0], (name, summary.failures)
    assert len(summary.failures) == len(expect_failed), text
    assert any("also stored in model-00001-of-00002.safetensors" in w for w in summary.warnings), text

    con = duckdb.connect(job.db, read_only=True)
    status = dict(con.execute("SELECT model_id, status FROM models").fetchall())
    by_model = dict(
        con.execute(
            "SELECT model_id, list(matrix_key || ':' || status ORDER BY matrix_key) FROM matrix_analysis GROUP BY 1"
        ).fetchall()
    )
    runs = con.execute("SELECT status FROM runs").fetchall()
    emb = dict(con.execute("SELECT model_id, count(*) FROM embedding_choice GROUP BY 1").fetchall())
    dup = con.execute(
        "SELECT mean FROM matrix_analysis WHERE model_id = 'dup-shards' AND matrix_key = 'x.weight'"
    ).fetchall()
    con.close()
    assert runs == [("failed",)]
    for name in ("surrogate", "huge-dim", "index-fifo"):
        assert status[str(hostile[name])] == "error"
    assert by_model["config-dir"] == by_model["config-fifo"] == ["model.layers.0.mlp.up_proj.weight:ok"]
    assert by_model["gptq-1d-scales"] == [
        "model.layers.0.self_attn.k_proj.weight:ok",
        "model.layers.0.self_attn.q_proj.qweight:skipped",
        "model.layers.0.self_attn.q_proj.qzeros:skipped",
        "model.layers.0.self_attn.q_proj.scales:skipped",
    ]
    assert by_model["gptq-bad-gidx"] == [
        "model.layers.0.self_attn.k_proj.weight:ok",
        "model.layers.0.self_attn.q_proj.qweight:error",
    ]
    assert len(dup) == 1 and dup[0][0] != 0  # the index's copy, not the stray zero one
    for name in ("tok-added-5", "tok-deep", "tok-fifo"):  # clustered, tokens shown as ids where unusable
        assert emb.get(name) == 1, (name, emb)
    assert (tmp_path / "o2" / "report.html").is_file()
    assert (tmp_path / "o2" / "transformer_matrix_analysis.csv").is_file()


@pytest.mark.parametrize("device", ["cpu", "torch-cpu"])
@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e-100, 1.0, 1e100, 1e200, 1e300])
def test_float64_extremes_are_exact(tmp_path, scale, device):
    """σ of F64 matrices from 1e-300 to 1e300: the Gram is scaled by a power of two, never under/overflows (numpy, and
    the GPU workers' torch path run on the CPU)."""
    from tpa_dist.checkpoint.catalog import open_model
    from tpa_dist.compute.analysis import analyze_task
    from tpa_dist.compute.tasks import plan_tasks
    from tpa_dist.settings import AnalysisSettings

    base = np.random.default_rng(3).standard_normal((16, 8))
    a = base * scale
    write_safetensors(tmp_path / "model.safetensors", {"model.layers.0.mlp.up_proj.weight": ("F64", a, (16, 8))})
    cat = open_model(tmp_path)
    (task,) = plan_tasks("m", "r", cat.tensors(), {})
    row, sv = analyze_task(task, AnalysisSettings(sparsity_threshold=0.0), device=device, block_bytes=128)  # blocks
    reference = sl.svdvals(base) * scale  # scipy on the scaled copy: exact scaling by a constant
    assert row["status"] == "ok", row["error"]
    np.testing.assert_allclose(sv, reference, rtol=1e-12, atol=0)
    assert row["actual_rank"] == 8 and row["energy_rank_90"] == int(
        np.searchsorted(np.cumsum(sl.svdvals(base) ** 2), 0.9 * np.sum(sl.svdvals(base) ** 2)) + 1
    )
    assert row["spectral_norm"] == pytest.approx(reference[0], rel=1e-12)
    assert row["stable_rank"] == pytest.approx(np.sum(sl.svdvals(base) ** 2) / sl.svdvals(base)[0] ** 2, rel=1e-12)
    assert row["mean"] == pytest.approx(a.mean(), rel=1e-12)


@pytest.mark.parametrize("rows,cols", [(16, 8), (4096, 2)])
def test_the_largest_finite_values_keep_their_rank_and_norms(tmp_path, rows, cols):
    """One entry 1.797e308 (the red team's): before, σ_max · max(m, n) · 2⁻²³ overflowed and the matrix was stored ok
    with actual_rank 0. Rank and norms now equal numpy's on an exactly scaled copy."""
    from tpa_dist.checkpoint.catalog import open_model
    from tpa_dist.compute.analysis import analyze_task
    from tpa_dist.compute.tasks import plan_tasks

    a = np.random.default_rng(5).standard_normal((rows, cols))
    a[0, 0] = 1.797e308
    write_safetensors(tmp_path / "model.safetensors", {"model.layers.0.mlp.up_proj.weight": ("F64", a, (rows, cols))})
    cat = open_model(tmp_path)
    (task,) = plan_tasks("m", "r", cat.tensors(), {})
    row, sv = analyze_task(task, block_bytes=1 << 12)
    scale = 2.0**-1000  # exact: a power of two
    ref = sl.svdvals(a * scale)
    assert row["status"] == "ok", row["error"]
    assert row["actual_rank"] == np.linalg.matrix_rank(a * scale, tol=ref[0] * max(rows, cols) * 2**-23) == 1
    assert row["spectral_norm"] == pytest.approx(ref[0] / scale, rel=1e-12)
    assert row["frobenius_norm"] == pytest.approx(np.linalg.norm(a * scale) / scale, rel=1e-12)
    assert row["max"] == 1.797e308


def test_values_rewritten_under_the_same_header_size_and_mtime_are_a_new_revision(ray_session, tmp_path):
    """The red team rewrote a shard's values keeping its header, size and mtime: the stale rows were reused. And
    with a new revision, the report and console showed both (each matrix twice, `q_proj ×2`). Now the ctime makes
    it a new revision, its matrices are recomputed, and reports show each model's latest revision only."""
    from tpa_dist.jobs import Job
    from tpa_dist.report.console import layer_summary
    from tpa_dist.report.render import write_report
    from tpa_dist.run.driver import submit
    from tpa_dist.sources.synth.writer import write_synthetic

    folder = write_synthetic("tiny-llama", tmp_path / "m")
    db = tmp_path / "r.duckdb"
    job = Job.create(  # the reports this test reads are written below
        models=(f"llama={folder}",),
        db=str(db),
        output_dir=str(tmp_path / "o"),
        progress=False,
        embedding=False,
        report=False,
    )
    first = submit(job)
    shard = next(folder.glob("*.safetensors"))
    st = shard.stat()
    data = bytearray(shard.read_bytes())
    data[-64:] = bytes(64)  # the last values of the last tensor: zeros now; header and size unchanged
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))  # the mtime put back
    assert shard.stat().st_mtime_ns == st.st_mtime_ns and shard.stat().st_size == st.st_size
    second = submit(job)
    assert first.ok and second.ok and second.reused == 0 and second.done == first.done  # recomputed, not reused
    con = duckdb.connect(str(db), read_only=True)
    revisions = con.execute("SELECT count(DISTINCT revision), count(*) FROM matrix_analysis").fetchone()
    con.close()
    assert revisions == (2, 2 * first.total)  # both stored ...
    rendered = write_report(db, tmp_path / "report", ["llama"])
    layers = next(r for r in rendered if r.section.name.startswith("04_"))
    keys = [(row[0], row[3]) for row in layers.rows]  # (model_id, matrix_key)
    assert len(keys) == len(set(keys)), "a matrix shown twice"  # ... the report shows the latest only
    assert "×2" not in layer_summary(db, ["llama"])
    everything = write_report(db, tmp_path / "all", ["llama"], all_revisions=True)
    assert len(next(r for r in everything if r.section.name.startswith("04_")).rows) > len(layers.rows)
