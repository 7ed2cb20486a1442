"""PEFT LoRA adapters read as what they change: ΔW = scale · B·A analyzed from the factors (never the m × n product
whole), equal to the ΔW of the merged model against the same base; DoRA and other methods refused by name."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import tpa_dist
from tpa_dist.sources.synth.writer import write_synthetic

MODULES = ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.v_proj", "model.layers.1.mlp.down_proj"]


def _adapter(
    folder: Path,
    base: Path,
    rank: int,
    alpha: float,
    rslora: bool = False,
    modules: dict[str, str] | None = None,
    fan_in_fan_out: bool = False,
    **extra: object,
) -> dict:
    """A LoRA adapter folder in PEFT's on-disk format (trained-like: B is not zero); returns base weight -> ΔW in
    the base's stored orientation. `modules`: PEFT's module name -> the base weight it adapts."""
    weights = load_file(str(base / "model.safetensors")) if (base / "model.safetensors").exists() else {}
    for shard in sorted(base.glob("*.safetensors")):
        weights.update(load_file(str(shard)))
    rng = np.random.default_rng(rank)
    tensors, deltas = {}, {}
    scale = alpha / math.sqrt(rank) if rslora else alpha / rank
    for module, weight in (modules or {m: f"{m}.weight" for m in MODULES}).items():
        shape = weights[weight].shape if weight in weights else (48, 64)
        out, inp = shape[::-1] if fan_in_fan_out else shape
        a = (rng.standard_normal((rank, inp)) / math.sqrt(inp)).astype(np.float32)
        b = (rng.standard_normal((out, rank)) * 0.02).astype(np.float32)
        tensors[f"base_model.model.{module}.lora_A.weight"] = a
        tensors[f"base_model.model.{module}.lora_B.weight"] = b
        delta = scale * (b.astype(np.float64) @ a.astype(np.float64))
        deltas[weight] = delta.T if fan_in_fan_out else delta
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": alpha,
        "use_rslora": rslora,
        "target_modules": ["q_proj", "v_proj", "down_proj"],
        "base_model_name_or_path": str(base),
        "fan_in_fan_out": fan_in_fan_out,
        **extra,
    }
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return deltas


def _merged(folder: Path, base: Path, deltas: dict) -> None:
    """merge_and_unload by PEFT's formula, W + scale · B·A, every tensor stored as float64 (so that the merged
    model's ΔW is the adapter's own, not a rounding of it)."""
    folder.mkdir(parents=True)
    for shard in sorted(base.glob("*.safetensors")):
        weights = {k: v.astype(np.float64) for k, v in load_file(str(shard)).items()}
        for weight, delta in deltas.items():
            if weight in weights:
                weights[weight] = weights[weight] + delta
        save_file(weights, str(folder / shard.name))
    for extra in base.iterdir():
        if extra.suffix != ".safetensors":
            shutil.copy(extra, folder / extra.name)


def _deltas(db: Path, model: str) -> dict[str, dict]:
    con = tpa_dist.connect(db)
    cur = con.execute(
        "SELECT d.*, s.singular_values FROM delta_analysis d LEFT JOIN delta_spectra s USING "
        "(model_id, revision, base_model_id, base_revision, settings_id, matrix_key) WHERE d.model_id = ?",
        [model],
    )
    cols = [c[0] for c in cur.description]
    out = {r[cols.index("matrix_key")]: dict(zip(cols, r)) for r in cur.fetchall()}
    con.close()
    return out


@pytest.mark.parametrize("rslora", [False, True], ids=["lora", "rslora"])
def test_an_adapters_delta_equals_the_merged_models(ray_session, tmp_path, rslora):
    base = write_synthetic("tiny-llama", tmp_path / "base")
    deltas = _adapter(tmp_path / "adapter", base, rank=4, alpha=8, rslora=rslora)
    _merged(tmp_path / "merged", base, deltas)
    db = tmp_path / "a.duckdb"
    job = tpa_dist.Job.create(
        models=(f"lora={tmp_path / 'adapter'}", f"merged={tmp_path / 'merged'}"),
        base=str(base),
        db=str(db),
        output_dir=str(tmp_path / "out"),
        progress=False,
        embedding=False,
        report=not rslora,  # the report of an adapter's ΔW written once (summary.ok says it was), not twice
    )
    summary = tpa_dist.submit(job)
    assert summary.ok, summary.describe()
    lora, merged = _deltas(db, "lora"), _deltas(db, "merged")
    assert sorted(lora) == sorted(f"{m}.weight" for m in MODULES)  # the adapted matrices, nothing else
    for key, row in lora.items():
        ref = merged[key]
        assert row["status"] == ref["status"] == "ok" and row["dtype"] == "lora-r4"
        exact = np.linalg.svd(deltas[key], compute_uv=False)
        np.testing.assert_allclose(row["singular_values"][:4], exact[:4], rtol=1e-12)
        assert row["singular_values"][4:] == [0.0] * (len(row["singular_values"]) - 4)  # rank 4 exactly
        np.testing.assert_allclose(row["singular_values"][:4], ref["singular_values"][:4], rtol=1e-9)
        for col in ("actual_rank", "energy_rank_50", "energy_rank_90", "energy_rank_99", "intruders"):
            assert row[col] == ref[col], (key, col)
        for col in (
            "spectral_norm",
            "frobenius_norm",
            "stable_rank",
            "relative_update",
            "spectral_update",
            "base_frobenius_norm",
            "tuned_frobenius_norm",
            "max_principal_angle",
        ):
            assert row[col] == pytest.approx(ref[col], rel=1e-9, abs=1e-12), (key, col)
        # the adapter's nuclear norm is the exact one; the merged model's, from the Gram of ΔW, carries its float64
        # floor: n tail values of about sqrt(eps)·σ₁ each
        assert row["nuclear_norm"] == pytest.approx(exact.sum(), rel=1e-12)
        floor = len(exact) * math.sqrt(np.finfo(np.float64).eps) * exact[0]
        assert abs(ref["nuclear_norm"] - exact.sum()) <= floor
        np.testing.assert_allclose(row["principal_angles"], ref["principal_angles"], rtol=1e-7, atol=1e-9)
    con = tpa_dist.connect(db)
    arch = con.execute("SELECT architecture FROM models WHERE model_id = 'lora'").fetchone()[0]
    con.close()
    assert arch.startswith("PEFT LoRA adapter (r=4)")


def test_a_gpt2_adapter_on_the_base_its_config_names(ray_session, tmp_path):
    """GPT-2's Conv1D stores W as [in, out] (fan_in_fan_out: ΔW = (B·A)ᵀ), PEFT names its modules transformer.h.…
    where the checkpoint saved h.…; the base comes from the adapter's config (no --base); a module the base lacks
    is a skipped row that names it."""
    base = write_synthetic("tiny-gpt2", tmp_path / "gpt2")
    modules = {
        "transformer.h.0.attn.c_attn": "h.0.attn.c_attn.weight",
        "transformer.h.1.mlp.c_fc": "h.1.mlp.c_fc.weight",
    }
    deltas = _adapter(
        tmp_path / "adapter",
        base,
        rank=2,
        alpha=16,
        modules={**modules, "transformer.h.7.mlp.c_fc": "h.7.mlp.c_fc.weight"},
        fan_in_fan_out=True,
        target_modules=["c_attn", "c_fc"],
    )
    db = tmp_path / "g.duckdb"
    job = tpa_dist.Job.create(
        models=(f"chat={tmp_path / 'adapter'}",),
        db=str(db),
        output_dir=str(tmp_path / "out"),
        progress=False,
        embedding=False,
    )
    summary = tpa_dist.submit(job)
    assert summary.ok, summary.describe()
    assert any("1 adapted module(s) not compared" in w for w in summary.warnings), summary.warnings
    rows = _deltas(db, "chat")
    assert set(rows) == {"h.0.attn.c_attn.weight", "h.1.mlp.c_fc.weight", "transformer.h.7.mlp.c_fc.weight"}
    for weight in modules.values():
        row = rows[weight]
        exact = np.linalg.svd(deltas[weight], compute_uv=False)
        assert row["status"] == "ok" and row["base_model_id"] == "gpt2"
        np.testing.assert_allclose(row["singular_values"][:2], exact[:2], rtol=1e-12)
        assert row["frobenius_norm"] == pytest.approx(np.linalg.norm(deltas[weight]), rel=1e-12)
    lost = rows["transformer.h.7.mlp.c_fc.weight"]
    assert lost["status"] == "skipped" and "adapted by the LoRA adapter but not in gpt2" in lost["error"]


def test_other_adapters_are_refused_by_name(tmp_path):
    base = write_synthetic("tiny-llama", tmp_path / "base")
    _adapter(tmp_path / "dora", base, rank=4, alpha=8, use_dora=True)
    _adapter(tmp_path / "ia3", base, rank=4, alpha=8, peft_type="IA3")
    job = tpa_dist.Job.create(
        models=(f"dora={tmp_path / 'dora'}", f"ia3={tmp_path / 'ia3'}"),
        db=str(tmp_path / "r.duckdb"),
        output_dir=str(tmp_path / "out"),
        progress=False,
        embedding=False,
    )
    summary = tpa_dist.submit(job)
    assert not summary.ok
    text = "\n".join(summary.failures)
    assert "a DoRA adapter: its magnitude vector rescales each column of W itself" in text
    assert "a PEFT adapter of type IA3: only LoRA adapters" in text


def test_hostile_adapter_configs_fail_alone_in_one_line_each(tmp_path):
    """Round 4: a DoRA adapter without use_dora (its magnitude vector saved), an invalid and a pathological
    alpha_pattern, non-finite and absurd lora_alpha — each refused by name, within seconds, and the good adapter of
    the same submit is analyzed. A NaN in lora_B is blamed on lora_B."""
    import time

    base = write_synthetic("tiny-llama", tmp_path / "base")
    _adapter(tmp_path / "good", base, rank=4, alpha=8)
    _adapter(tmp_path / "dora", base, rank=4, alpha=8)
    dora = load_file(str(tmp_path / "dora" / "adapter_model.safetensors"))
    dora[f"base_model.model.{MODULES[0]}.lora_magnitude_vector"] = np.ones(64, np.float32)
    save_file(dora, str(tmp_path / "dora" / "adapter_model.safetensors"))
    long_module = {"model.layers.0.self_attn." + "a" * 40 + "c": "model.layers.0.self_attn.q_proj.weight"}
    _adapter(tmp_path / "bracket", base, rank=4, alpha=8, alpha_pattern={"[": 3})
    _adapter(tmp_path / "redos", base, rank=4, alpha=8, modules=long_module, alpha_pattern={"(a|a)+b": 3})
    _adapter(tmp_path / "huge", base, rank=4, alpha=1e308)
    _adapter(tmp_path / "nan", base, rank=4, alpha=8)
    text = (tmp_path / "nan" / "adapter_config.json").read_text().replace('"lora_alpha": 8', '"lora_alpha": NaN')
    (tmp_path / "nan" / "adapter_config.json").write_text(text)
    _adapter(tmp_path / "nanb", base, rank=4, alpha=8)
    nanb = load_file(str(tmp_path / "nanb" / "adapter_model.safetensors"))
    nanb[f"base_model.model.{MODULES[0]}.lora_B.weight"][0, 0] = np.nan
    save_file(nanb, str(tmp_path / "nanb" / "adapter_model.safetensors"))
    names = ["good", "dora", "bracket", "redos", "huge", "nan", "nanb"]
    job = tpa_dist.Job.create(
        models=tuple(f"{n}={tmp_path / n}" for n in names),
        db=str(tmp_path / "h.duckdb"),
        output_dir=str(tmp_path / "out"),
        progress=False,
        report=False,
        embedding=False,
    )
    t0 = time.monotonic()
    summary = tpa_dist.submit(job)
    assert time.monotonic() - t0 < 120
    text = "\n".join(summary.failures)
    assert "a DoRA adapter (it saves a magnitude vector)" in text and "lora_magnitude_vector" in text, text
    assert "alpha_pattern key '[' is not a regular expression" in text, text
    assert "alpha_pattern did not match the 1 module names within 1 s" in text, text
    assert "lora_alpha = 1e+308 is not an adapter's scale" in text, text
    assert "lora_alpha must be a finite number, got nan" in text, text
    assert f"{MODULES[0]}.lora_B.weight: the adapter's factor contains NaN or Inf values" in text, text
    assert "lora_A" not in text.split("lora_B.weight: the adapter's factor")[0].splitlines()[-1]
    assert all("\n" not in f for f in summary.failures)
    con = duckdb.connect(str(tmp_path / "h.duckdb"), read_only=True)
    good = con.execute("SELECT count(*) FROM delta_analysis WHERE model_id = 'good' AND status = 'ok'").fetchone()[0]
    con.close()
    assert good == len(MODULES)
